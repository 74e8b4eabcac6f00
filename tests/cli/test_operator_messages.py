"""What an operator is told is true: tables that keep their ids on a narrow terminal, errors in
glisk's words, and the documented exit codes where a new user met misleading ones."""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg
import pytest

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


def test_a_token_id_past_the_column_s_range_is_a_usage_error_not_the_database_s(glisk) -> None:
    result = glisk("tokens", "show", "99999999999", expect=2)
    assert_one_error_line(result, "less than or equal to 2147483647")
    assert "rejected by the database" not in result.stderr


def test_a_refused_choice_reads_without_the_validation_library_s_prefix(glisk) -> None:
    result = glisk("tokens", "list", "--status", "nope", expect=2)
    assert_one_error_line(result, "'nope' is not one of 'detected'")
    assert "Value error" not in result.stderr


def test_plain_words_as_a_state_value_suggest_string(glisk) -> None:
    assert_one_error_line(glisk("state", "set", "k", "hello", expect=2), "add --string")


def test_serve_on_an_address_that_is_not_this_machine_s_says_so(glisk) -> None:
    result = glisk("serve", "--host", "999.1.1.1", "--port", "0", expect=2)
    assert_one_error_line(result, "--host must be an address or name of this machine")
    assert "another server" not in result.stderr


def test_db_status_gives_a_url_psql_accepts(glisk) -> None:
    report = json.loads(glisk("db", "status", "--json").stdout)
    assert report["libpq_url"].startswith("postgresql://")
    assert report["libpq_url"] == report["url"].replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(report["libpq_url"]) as connection:  # libpq takes it as it is
        assert connection.execute("SELECT 1").fetchone() == (1,)


def test_every_option_of_every_command_says_what_it_is_for() -> None:
    import typer.main

    from glisk_cli.cli.app import app

    root = typer.main.get_command(app)
    silent: list[str] = []

    def walk(command: Any, path: str) -> None:
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{path} {name}")
        for param in command.params:
            is_option = param.param_type_name == "option"
            if is_option and not getattr(param, "hidden", False) and not param.help:
                silent.append(f"{path} {param.opts[0]}")

    walk(root, "glisk")
    assert silent == []


@pytest.mark.parametrize("token", ["²", "9" * 5000])
def test_a_checkpoint_for_no_token_id_is_a_usage_error_not_a_crash(glisk, token: str) -> None:
    lease = "00000000-0000-0000-0000-000000000000"
    result = glisk("tokens", "checkpoint", "--lease-id", lease, token, "{}", expect=2)
    assert_one_error_line(result, "is not a token id")
