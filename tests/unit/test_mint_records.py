"""Recording mints without a database: what a JSON line parses to, and what a batch refuses on
its own — a log given twice with other values, a token id two logs claim."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from glisk_cli.cli.mint_lines import LineProblem, parse_line
from glisk_cli.errors import Conflict
from glisk_cli.models import NaiveDatetimeError
from glisk_cli.repositories.mint_records import Mint, batch_problems, replay_conflict

TX = "0x" + "ab" * 32
MINT = Mint(
    TX, 0, 19_000_000, datetime(2026, 1, 1, tzinfo=UTC), 7, "0x" + "aa" * 20, "0x" + "bb" * 20
)
LINE = {
    "tx_hash": TX,
    "log_index": 0,
    "block_number": 19_000_000,
    "block_timestamp": "2026-01-01T00:00:00Z",
    "token_id": 7,
    "author": "0x" + "aa" * 20,
    "minter": "0x" + "bb" * 20,
}


def test_a_line_parses_as_the_single_form_parses_its_options() -> None:
    assert parse_line(json.dumps(LINE).encode()) == MINT
    assert parse_line(json.dumps(LINE | {"block_timestamp": 1767225600, "x": 1})) == MINT


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"token_id": True}, "token_id: true is not a whole number"),
        ({"token_id": "7"}, 'token_id: "7" is not a whole number'),
        ({"token_id": 2**31}, "token_id: 2147483648 is not a whole number from 0 to"),
        ({"tx_hash": "0x12"}, "tx_hash: '0x12' is not a transaction hash"),
        ({"block_timestamp": "noon"}, "block_timestamp: 'noon' is not a timestamp"),
        ({"author": None}, "author: null is not a string"),
        ({"minter": "0xZZ"}, "minter: '0xZZ' is not an address"),
        ({"block_timestamp": "2026-01-01T00:00:00"}, "block_timestamp: .* has no time zone"),
        ({"log_index": -1}, "log_index: -1 is not a whole number from 0"),
    ],
)
def test_a_bad_field_is_named_with_the_single_forms_words(changes: dict, said: str) -> None:
    with pytest.raises(LineProblem, match=said):
        parse_line(json.dumps(LINE | changes))


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        (b"\xff", "not UTF-8"),
        ('{"token_id": ' + "9" * 5000 + "}", "not JSON we can read"),  # past int()'s limit
    ],
)
def test_a_line_that_is_no_json_object_is_refused(line: str | bytes, said: str) -> None:
    with pytest.raises(LineProblem, match=said):
        parse_line(line)


def test_a_line_missing_fields_names_them_all() -> None:
    with pytest.raises(LineProblem, match="missing tx_hash, author"):
        parse_line(json.dumps({k: v for k, v in LINE.items() if k not in ("tx_hash", "author")}))


def test_a_replay_differs_only_in_what_it_changes_not_in_letter_case() -> None:
    same = replace(MINT, author=MINT.author.upper().replace("0X", "0x"))
    assert replay_conflict(MINT, same) is None
    conflict = replay_conflict(MINT, replace(MINT, token_id=999, block_number=1))
    assert isinstance(conflict, Conflict)
    assert conflict.message == (
        f"mint {TX} log 0 is recorded already, for token 7, and this replay differs: "
        "block_number 1, not 19000000; token_id 999, not 7"
    )


def test_a_batch_writes_a_log_once_and_refuses_what_contradicts_an_earlier_line() -> None:
    other_log = replace(MINT, log_index=1, token_id=8)
    mints = [MINT, other_log, MINT, replace(MINT, token_id=9), replace(MINT, log_index=2)]
    unique, problems = batch_problems(mints)
    assert unique == [0, 1]
    assert sorted(problems) == [3, 4]
    assert "this replay differs: token_id 9, not 7" in problems[3].message
    assert problems[4].message == f"token 7 is recorded already by mint {TX} log 0"


def test_a_mint_at_a_naive_time_is_refused_as_the_models_refuse_one() -> None:
    with pytest.raises(NaiveDatetimeError, match="block_timestamp"):
        Mint("0x" + "1" * 64, 0, 1, datetime(2026, 1, 1, 12), 1, "0x" + "2" * 40, "0x" + "3" * 40)
