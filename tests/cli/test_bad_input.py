"""Bad input: the documented exit code, one line, no traceback.

Every case runs through the error boundary the executable runs (`cli/app.run`), in this
process; the first case of each set also runs as a separate `glisk` process, as a shell script
would run it, and must answer the same.
"""

from __future__ import annotations

import subprocess

import pytest

WALLET = "0x1111111111111111111111111111111111111111"
TX = "0x" + "a" * 64
MINT = [
    "mints",
    "record",
    "--tx-hash",
    TX,
    "--log-index",
    "0",
    "--block-number",
    "1",
    "--block-timestamp",
    "2026-01-01T00:00:00Z",
    "--token-id",
    "1",
    "--author",
    WALLET,
    "--minter",
    WALLET,
]


def with_option(args: list[str], option: str, value: str) -> list[str]:
    changed = list(args)
    changed[changed.index(option) + 1] = value
    return changed


# (name, argv, exit code, text the one error line must contain) — no database needed.
USAGE_CASES = [
    ("limit-zero", ["tokens", "claim", "--limit", "0"], 2, "--limit"),
    ("limit-too-big", ["tokens", "claim", "--limit", "1001"], 2, "--limit"),
    ("unknown-stage", ["tokens", "claim", "--stage", "minting"], 2, "--stage"),
    ("malformed-lease", ["tokens", "claim", "--lease", "soon"], 2, "duration"),
    ("endless-wait", ["tokens", "claim", "--wait", "inf"], 2, "--wait"),
    ("unknown-status", ["tokens", "list", "--status", "lost"], 2, "--status"),
    ("non-numeric-token-id", ["tokens", "show", "abc"], 2, "token_id"),
    ("malformed-wallet", ["authors", "add", "--wallet", "0x123", "--prompt", "p"], 2, "wallet"),
    ("malformed-tx-hash", with_option(MINT, "--tx-hash", "0x12"), 2, "transaction hash"),
    ("malformed-minter", with_option(MINT, "--minter", "0xZZ"), 2, "address"),
    (
        "naive-timestamp",
        with_option(MINT, "--block-timestamp", "2026-01-01T00:00:00"),
        2,
        "no time zone",
    ),
    (
        "unparsable-timestamp",
        with_option(MINT, "--block-timestamp", "yesterday"),
        2,
        "not a timestamp",
    ),
    ("non-json-state-value", ["state", "set", "k", "{oops"], 2, "not valid JSON"),
    ("bad-error-json", ["tokens", "mark", "1", "failed", "--error", "[1]"], 2, "JSON object"),
]


def run_cases(cli, run_glisk, cases, env) -> None:
    _, args, _, _ = cases[0]
    process = run_glisk(*args, env=env)
    results = [(process.returncode, process.stderr)]
    results += [
        (result.exit_code, result.stderr)
        for result in (cli(*args, env=env) for _, args, _, _ in cases)
    ]
    problems = []
    for (name, _, code, needle), (status, stderr) in zip([cases[0], *cases], results, strict=True):
        lines = stderr.strip().splitlines()
        ok = (
            status == code
            and len(lines) == 1
            and lines[0].startswith("error: ")
            and needle in lines[0]
            and "Traceback" not in stderr
        )
        if not ok:
            problems.append(f"{name}: exit {status}, stderr {stderr!r}")
    assert not problems, "\n".join(problems)


def test_malformed_arguments_exit_2_with_one_line(cli, run_glisk) -> None:
    unreachable: dict[str, str | None] = {"DATABASE_URL": "postgresql://u:pw@127.0.0.1:9/none"}
    run_cases(cli, run_glisk, USAGE_CASES, unreachable)


@pytest.fixture
def populated_url(migrated_url: str, uow_factory) -> str:
    from datetime import UTC, datetime, timedelta

    from glisk_cli.models import Author, Token

    with uow_factory() as uow:
        author = uow.authors.add(Author(wallet_address=WALLET, prompt_text="p"))
        uow.tokens.add(
            Token(
                token_id=1,
                author_id=author.id,
                minter_address=WALLET,
                mint_timestamp=datetime(2026, 1, 1, tzinfo=UTC),
            )
        )
        uow.tokens.claim("generation", 1, "owner", timedelta(minutes=5))
    return migrated_url


def test_missing_conflicting_and_unmigrated_exit_5_6_7(
    cli, run_glisk, populated_url: str, database_url: str
) -> None:
    cases = [
        ("unknown-token", ["tokens", "show", "999"], 5, "token 999 not found"),
        ("unknown-key", ["state", "get", "nope"], 5, "not found"),
        ("unknown-author", ["authors", "get", "0x" + "9" * 40], 5, "not found"),
        (
            "illegal-transition",
            ["tokens", "mark", "1", "revealed", "--tx-hash", TX],
            6,
            "Cannot mark revealed from generating. Token must be in ready state.",
        ),
        (
            "foreign-lease",
            ["tokens", "mark", "1", "uploading", "--image-path", "x", "--worker", "intruder"],
            6,
            "leased to owner",
        ),
    ]
    run_cases(cli, run_glisk, cases, {"DATABASE_URL": populated_url})
    unmigrated = [("unmigrated", ["tokens", "claim"], 7, "glisk db upgrade")]
    run_cases(cli, run_glisk, unmigrated, {"DATABASE_URL": database_url})


def test_failed_commands_leave_stored_data_unchanged(run_glisk, cli, populated_url: str) -> None:
    # The failing commands run as real processes; looking at the data before and after does
    # not need to (the in-process runner reads the same database).
    env: dict[str, str | None] = {"DATABASE_URL": populated_url}
    before = cli("tokens", "show", "1", "--json", env=env).stdout
    assert cli("state", "set", "cursor", "7", env=env).exit_code == 0
    failing = [
        ("tokens", "mark", "1", "revealed", "--tx-hash", TX),
        ("state", "set", "cursor", "{broken"),
    ]
    assert [run_glisk(*args, env=env).returncode for args in failing] == [6, 2]
    assert cli("tokens", "show", "1", "--json", env=env).stdout == before
    assert cli("state", "get", "cursor", env=env).stdout.strip() == "7"


def test_unreachable_database_exits_3_for_pipeline_commands_with_password_masked(
    run_glisk,
) -> None:
    env = {"DATABASE_URL": "postgresql://glisk:s3cret-pw@127.0.0.1:9/glisk"}
    result: subprocess.CompletedProcess[str] = run_glisk("state", "get", "cursor", env=env)
    assert result.returncode == 3
    assert result.stderr.count("\n") == 1
    assert "s3cret-pw" not in result.stderr + result.stdout
    assert "glisk:***@127.0.0.1:9" in result.stderr
