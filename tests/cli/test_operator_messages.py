"""What an operator is told is true: tables that keep their ids on a narrow terminal, errors in
glisk's words, and the documented exit codes where a new user met misleading ones."""

from __future__ import annotations

import uuid

from tests.cli.outputs import assert_one_error_line
from tests.conftest import seed_tokens


def test_db_history_at_80_columns_keeps_every_revision_beside_its_message(glisk) -> None:
    lines = glisk("db", "history", env={"COLUMNS": "80"}).stdout.splitlines()
    assert lines[0].split() == ["revision", "down_revision", "is_head", "message"]
    rows = [line.split(maxsplit=3) for line in lines[1:]]
    assert [row[0] for row in rows][-2:] == ["0002", "0001"]
    assert [row[1] for row in rows][-2:] == ["0001", "-"]
    assert rows[-1][3].startswith("initial schema")
    assert all(len(line) <= 80 for line in lines)


WALLET = "0x" + "ab" * 20


def test_a_duplicate_is_said_in_glisk_s_words_naming_the_row(glisk) -> None:
    glisk("authors", "add", "--wallet", WALLET, "--prompt", "a fox")
    again = glisk(
        "authors", "add", "--wallet", WALLET.upper().replace("0X", "0x"), "--prompt", "x", expect=6
    )
    assert_one_error_line(again, f"author with wallet_address {WALLET} already exists")
    assert "Key (" not in again.stderr


def test_a_claim_s_table_shows_the_lease_id_and_an_empty_claim_says_so(
    glisk, session_factory
) -> None:
    seed_tokens(session_factory, 2)
    lines = glisk("tokens", "claim", "--limit", "2", env={"COLUMNS": "80"}).stdout.splitlines()
    assert lines[0].split() == ["token", "status", "lease", "tries", "lease_id"]
    [shown] = {line.split()[-1] for line in lines[1:]}
    assert str(uuid.UUID(shown)) == shown  # whole, not cut
    empty = glisk("tokens", "claim")
    assert empty.stdout == ""
    assert "no token claimed" in empty.stderr
