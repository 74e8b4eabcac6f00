"""`glisk mints record`, one mint from options or many from JSON lines (in-process, real
PostgreSQL): idempotent replays, conflicting ones, and bad lines named by number."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from glisk_cli.cli import mint_lines
from tests.cli.mints import MINTER, WALLET, mint_options, record_mint
from tests.cli.outputs import as_json, assert_one_error_line


@pytest.fixture
def author(glisk) -> None:
    glisk("authors", "add", "--wallet", WALLET, "--prompt", "a fox in the snow")


def line(n: int, **changes: Any) -> str:
    """One mint as a JSON line (token n: log 0 of transaction n)."""
    mint = {
        "tx_hash": "0x" + f"{n:064x}",
        "log_index": 0,
        "block_number": 100 + n,
        "block_timestamp": f"2026-01-01T00:00:{n % 60:02d}Z",
        "token_id": n,
        "author": WALLET,
        "minter": MINTER,
    }
    return json.dumps(mint | changes)


def jsonl(tmp_path: Path, *lines: str) -> str:
    path = tmp_path / "mints.jsonl"
    path.write_text("".join(f"{entry}\n" for entry in lines))
    return str(path)


def token_ids(glisk) -> list[int]:
    return [token["token_id"] for token in as_json(glisk("tokens", "list", "--json"))]


def test_recording_the_same_mint_twice_is_a_no_op_success(glisk, author) -> None:
    first = record_mint(glisk, 1)
    # Addresses in another letter case are the same addresses.
    again = record_mint(glisk, 1, author=WALLET.upper().replace("0X", "0x"))
    assert (first["recorded"], again["recorded"]) == (True, False)
    assert again["token"] == first["token"]
    assert token_ids(glisk) == [1]


def test_replaying_a_mint_with_another_token_id_is_a_conflict_naming_the_recorded_mint(
    glisk, author
) -> None:
    record_mint(glisk, 1)
    replay = ["mints", "record", *mint_options(1, token_id=999)]
    result = glisk(*replay, expect=6)

    assert_one_error_line(result, "0x" + f"{1:064x}", "log 0", "for token 1", "token_id 999")
    assert json.loads(glisk(*replay, "--json", expect=6).stderr)["error"]["code"] == "conflict"
    assert token_ids(glisk) == [1]


def test_recording_a_mint_for_an_unknown_author_changes_nothing(glisk) -> None:
    result = glisk("mints", "record", *mint_options(9), expect=5)
    assert_one_error_line(result, f"author {WALLET.lower()} not found")
    assert token_ids(glisk) == []


def test_jsonl_records_every_line_once_and_a_replay_changes_nothing(
    glisk, author, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [line(1), "", line(2, block_timestamp=1767225600), line(3, extra="ignored")]
    source = jsonl(tmp_path, *lines)
    first = as_json(glisk("mints", "record", "--jsonl", source, "--json"))
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(lines) + "\n"))
    again = as_json(glisk("mints", "record", "--jsonl", "-", "--json"))

    assert first == {"recorded": 3, "already_recorded": 0}
    assert again == {"recorded": 0, "already_recorded": 3}
    tokens = as_json(glisk("tokens", "list", "--json"))
    assert [(t["token_id"], t["status"], t["minter_address"]) for t in tokens] == [
        (1, "detected", MINTER),
        (2, "detected", MINTER),
        (3, "detected", MINTER),
    ]
    assert tokens[1]["mint_timestamp"] == "2026-01-01T00:00:00Z"
    assert (
        "recorded 0 mints; 3 already recorded" in glisk("mints", "record", "--jsonl", source).stderr
    )


def test_jsonl_analyzes_the_tables_it_filled(glisk, author, tmp_path: Path, uow_factory) -> None:
    glisk("mints", "record", "--jsonl", jsonl(tmp_path, line(1), line(2), line(3)))
    with uow_factory() as uow:
        estimates = uow.session.execute(
            text(
                "SELECT relname, reltuples FROM pg_class "
                "WHERE relname IN ('mint_events', 'tokens_s0') ORDER BY relname"
            )
        ).all()
    assert [tuple(row) for row in estimates] == [("mint_events", 3), ("tokens_s0", 3)]


BAD_FOURTH_LINES = [
    pytest.param("{not json", 2, "not JSON", id="not-json"),
    pytest.param(line(4, author="0x" + "9" * 40), 5, "not found", id="unknown-author"),
    pytest.param(line(1, token_id=999), 6, "for token 1", id="replay-of-an-earlier-batch"),
    pytest.param(line(3, token_id=999), 6, "for token 3", id="replay-within-its-batch"),
    pytest.param(line(4, token_id=3), 6, "token 3 is recorded already by", id="token-in-batch"),
    pytest.param(
        line(4, token_id=1), 6, f"token 1 is recorded already by mint 0x{1:064x}", id="token-of-1"
    ),
]


@pytest.mark.parametrize(("fourth", "code", "needle"), BAD_FOURTH_LINES)
def test_jsonl_names_a_bad_line_and_writes_nothing_of_its_batch(
    glisk, author, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fourth: str, code: int, needle
) -> None:
    monkeypatch.setattr(mint_lines, "BATCH", 2)  # lines 1-2 commit; 3-4 are one batch
    source = jsonl(tmp_path, line(1), line(2), line(3), fourth, line(5))
    result = glisk("mints", "record", "--jsonl", source, expect=code)

    assert_one_error_line(
        result,
        "line 4: ",
        needle,
        "lines 1-2 are committed (2 recorded, 0 already recorded), nothing from line 3 on",
    )
    assert token_ids(glisk) == [1, 2]


def test_jsonl_replaces_the_options_it_is_given_with(glisk, author, tmp_path: Path) -> None:
    source = jsonl(tmp_path, line(1))
    both = glisk("mints", "record", "--jsonl", source, "--token-id", "1", expect=2)
    neither = glisk("mints", "record", "--token-id", "1", expect=2)
    nothing = glisk("mints", "record", expect=2)
    unreadable = glisk("mints", "record", "--jsonl", str(tmp_path / "absent"), expect=2)

    assert_one_error_line(both, "--jsonl replaces the mint's options: drop --token-id")
    assert_one_error_line(neither, "missing --tx-hash, --log-index", "--jsonl")
    assert_one_error_line(nothing, "missing --tx-hash, --log-index", "--token-id", "--jsonl")
    assert_one_error_line(unreadable, "cannot read")
    assert token_ids(glisk) == []
