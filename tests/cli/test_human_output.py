"""Human output an operator reads at a glance: the common tables fit 80 columns without wrapping
a cell, times and leases are in words, `stats` and `show` read as their golden texts, and colour
only on a terminal (never piped, never with NO_COLOR)."""

import json
import os
import pty
import re
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.conftest import GLISK, seed_tokens

WORKER = "worker-on-a-rather-long-hostname.example.com:123456"
TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ")


@pytest.fixture
def busy(session_factory, cli, migrated_url: str) -> dict[str, str | None]:
    """A pipeline with long values everywhere: tokens minted 2h05m ago and after, some claimed
    by a worker with a long name, some failed; an author with long handles; a long state."""
    env: dict[str, str | None] = {"DATABASE_URL": migrated_url, "COLUMNS": "80"}
    seed_tokens(session_factory, 12)
    with session_factory() as session, session.begin():
        session.execute(
            text(
                "UPDATE tokens_s0 SET mint_timestamp = now() - interval '2 hours 5 minutes' "
                "+ token_id * interval '1 second'"
            )
        )
        session.execute(
            text(
                "UPDATE tokens_s0 SET status = 'failed', error_data = jsonb_build_object("
                "'reason', 'nsfw', 'message', 'flagged by the image service') "
                "WHERE token_id > 10"
            )
        )
    cli("tokens", "claim", "--limit", "3", "--worker", WORKER, "--lease", "15m", env=env)
    cli(
        "authors",
        "add",
        "--wallet",
        "0x" + "c4" * 20,
        "--prompt",
        "a cat " * 40,
        "--twitter",
        "a_twitter_handle_far_too_long",
        "--farcaster",
        "farcaster.example",
        env=env,
    )
    cli(
        "state",
        "set",
        "indexer.cursor.a.key.that.goes.on.and.on",
        json.dumps({"block": 123456789, "hash": "0x" + "ab" * 32}),
        env=env,
    )
    return env


@pytest.mark.parametrize(
    ("args", "rows"),
    [
        (("tokens", "list"), 12),
        (("tokens", "claim", "--limit", "2", "--worker", WORKER), 2),
        (("tokens", "stats"), 6),
        (("authors", "list"), 2),
        (("state", "list"), 1),
        (("db", "status"), 12),
    ],
)
def test_common_tables_fit_80_columns_without_wrapping_a_cell(
    cli, busy, args: tuple[str, ...], rows: int
) -> None:
    result = cli(*args, env=busy)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    titles = 1 if args[0] == "db" else 0
    extra = 2 if args == ("tokens", "stats") else 0  # the lease and failure lines under it
    assert len(lines) == titles + 1 + rows + extra, lines  # one line per row: nothing wrapped
    assert "\x1b[" not in result.stdout  # piped: no colour


def test_tokens_list_says_how_long_each_lease_has_left(cli, busy) -> None:
    lines = cli("tokens", "list", "--limit", "4", env=busy).stdout.splitlines()
    assert lines[0].split() == ["token", "status", "holder", "lease", "tries"]
    assert re.fullmatch(r"1 +generating +worker-on…m:123456 +in 1[45]m \d\ds +1", lines[1])
    assert re.fullmatch(r"4 +detected +- +- +0", lines[4])


def test_a_wide_terminal_shows_when_tokens_were_minted(cli, busy) -> None:
    lines = cli("tokens", "list", "--limit", "1", env={**busy, "COLUMNS": "120"}).stdout
    assert "minted" in lines.splitlines()[0]
    assert TIME.search(lines)


STATS = """\
status      tokens  oldest  since
detected    7       2h 04m  <time>
generating  3       2h 04m  <time>
uploading   0       -       -
ready       0       -       -
revealed    0       -       -
failed      2       2h 04m  <time>
leases: 3 live, 0 expired, 0 waiting to retry
failed by reason: nsfw 2
"""


def test_stats_reads_as_its_golden_text(cli, busy) -> None:
    out = cli("tokens", "stats", env=busy).stdout
    assert TIME.sub("<time>", out) == STATS


SHOW = """\
                                 token 11
field         value
token         11
status        failed
id            <uuid>
author        <uuid>
minter        0x00000000000000000000000000000000000000bb
minted        <time>
image path    -
image cid     -
metadata cid  -
reveal tx     -
holder        -
lease id      -
lease         -
attempts      0
error         {"reason": "nsfw", "message": "flagged by the image service"}
checkpoint    -
created       <time>
updated       <time>
                                  attempts
stage         started               took    outcome  error
generation    <time>  1m 30s  failed   flagged by the image se…
upload image  <time>  -       pending  -
"""


def test_show_tells_a_tokens_story_as_its_golden_text(cli, busy, session_factory) -> None:
    with session_factory() as session, session.begin():
        session.execute(
            text(
                "INSERT INTO image_generation_jobs (token_id, service, status, error_data, "
                "created_at, completed_at) SELECT id, 'replicate', 'failed', "
                '\'{"message": "flagged by the image service for its content\\\\nmore"}\', '
                "now() - interval '10 minutes', now() - interval '8 minutes 30 seconds' "
                "FROM tokens_s0 WHERE token_id = 11"
            )
        )
        session.execute(
            text(
                "INSERT INTO ipfs_upload_records (token_id, record_type, created_at) "
                "SELECT id, 'image', now() - interval '1 minute' FROM tokens_s0 "
                "WHERE token_id = 11"
            )
        )
    out = cli("tokens", "show", "11", env=busy).stdout
    out = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}", "<uuid>", TIME.sub("<time>", out))
    assert out == SHOW


def test_colour_on_a_terminal_and_none_with_no_color(
    busy, glisk_env: dict[str, str], tmp_path: Path
) -> None:
    def on_a_terminal(extra: dict[str, str]) -> str:
        main, secondary = pty.openpty()
        env = {**glisk_env, **{k: v for k, v in busy.items() if v is not None}, **extra}
        process = subprocess.run(
            [str(GLISK), "tokens", "stats"],
            env=env,
            cwd=tmp_path,
            stdout=secondary,
            stderr=subprocess.PIPE,
            timeout=60,
            check=False,
        )
        os.close(secondary)
        output = b""
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        os.close(main)
        assert process.returncode == 0, process.stderr
        return output.decode()

    assert "\x1b[" in on_a_terminal({})  # 2h waiting: stalled work is coloured
    assert "\x1b[" not in on_a_terminal({"NO_COLOR": "1"})
