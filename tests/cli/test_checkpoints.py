"""Checkpoints: JSON a job records for its tokens under their lease before a side effect — durable
only while the lease holds, all or nothing, handed to the next attempt, cleared by a move."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from glisk_cli.errors import InvalidInput, LeaseLost
from glisk_cli.pipeline import MAX_CHECKPOINT
from tests.cli.outputs import as_json, assert_one_error_line
from tests.conftest import expire_leases, seed_tokens

LEASE = timedelta(minutes=5)


def _claim(uow_factory, limit: int = 2):
    with uow_factory() as uow:
        return uow.tokens.claim("generation", limit, "w", LEASE)


def test_a_checkpoint_lands_under_the_lease_and_the_next_attempt_gets_it(
    session_factory, uow_factory
) -> None:
    seed_tokens(session_factory, 2)
    held = _claim(uow_factory)
    with uow_factory() as uow:
        uow.tokens.checkpoint(held, {"prediction_id": "p-1"})
    with uow_factory() as uow:
        uow.tokens.release(held, error={"message": "GPU gone"}, retry_in=timedelta(0))
    again = _claim(uow_factory)
    assert [token.checkpoint for token in again] == [{"prediction_id": "p-1"}] * 2


def test_a_checkpoint_for_a_token_taken_over_is_refused_and_writes_nothing(
    session_factory, uow_factory
) -> None:
    seed_tokens(session_factory, 2)
    stale = _claim(uow_factory)
    expire_leases(session_factory)
    taker = _claim(uow_factory, 1)  # takes token 1 over; token 2's lease has run out
    with pytest.raises(LeaseLost, match="1, 2"), uow_factory() as uow:
        uow.tokens.checkpoint(stale, {"tx": "0xsigned"})
    with uow_factory() as uow:
        uow.tokens.checkpoint(taker, {"tx": "0xmine"})
        shown = [uow.tokens.get_by_token_id(n) for n in (1, 2)]
    assert [token.checkpoint if token else None for token in shown] == [{"tx": "0xmine"}, None]


def test_a_move_clears_the_checkpoint(session_factory, uow_factory) -> None:
    seed_tokens(session_factory, 1)
    held = _claim(uow_factory, 1)
    with uow_factory() as uow:
        uow.tokens.checkpoint(held, {"prediction_id": "p-9"})
    with uow_factory() as uow:
        uow.tokens.advance([(held[0], {"image_path": "9.png"})])
    with uow_factory() as uow:
        [upload] = uow.tokens.claim("upload", 1, "w", LEASE)
    assert upload.checkpoint is None


@pytest.mark.parametrize(
    "document",
    [["not", "an", "object"], "text", {"big": "x" * MAX_CHECKPOINT}, {"nan": float("nan")}],
    ids=["array", "string", "over-64kB", "nan"],
)
def test_a_checkpoint_that_is_no_small_json_object_is_refused(
    session_factory, uow_factory, document: object
) -> None:
    seed_tokens(session_factory, 1)
    held = _claim(uow_factory, 1)
    with pytest.raises(InvalidInput), uow_factory() as uow:
        uow.tokens.checkpoint(held, document)  # type: ignore[arg-type]


def test_the_command_records_a_checkpoint_and_refuses_a_lost_lease_with_exit_6(
    glisk, session_factory
) -> None:
    seed_tokens(session_factory, 2)
    [lease_id] = {t["lease_id"] for t in as_json(glisk("tokens", "claim", "--json"))}
    signed = '{"tx": "0xf86b", "tx_hash": "0x' + "ab" * 32 + '"}'

    recorded = as_json(
        glisk("tokens", "checkpoint", "--lease-id", lease_id, "1", "2", signed, "--json")
    )
    shown = as_json(glisk("tokens", "show", "2", "--json"))
    expire_leases(session_factory)
    glisk("tokens", "claim", "--limit", "1")  # another claim takes token 1 over
    refused = glisk("tokens", "checkpoint", "--lease-id", lease_id, "1", '{"x": 1}', expect=6)

    assert recorded == {"token_ids": [1, 2], "checkpoint": json.loads(signed)}
    assert shown["checkpoint"] == json.loads(signed)
    assert_one_error_line(refused, "token 1", "not held under the lease")


@pytest.mark.parametrize(
    "arguments",
    [
        ["1", "[1, 2]"],
        ["1", "{nope"],
        ["one", "{}"],
        ["{}"],
        ["1", '{"x": "' + "y" * 70_000 + '"}'],
    ],
    ids=["array", "not-json", "bad-token-id", "no-token", "over-64kB"],
)
def test_the_command_refuses_bad_input_with_exit_2(
    glisk, session_factory, arguments: list[str]
) -> None:
    seed_tokens(session_factory, 1)
    [token] = as_json(glisk("tokens", "claim", "--json"))
    result = glisk("tokens", "checkpoint", "--lease-id", token["lease_id"], *arguments, expect=2)
    assert_one_error_line(result)
    assert as_json(glisk("tokens", "show", "1", "--json"))["checkpoint"] is None


def test_tokens_why_and_show_carry_the_checkpoint_the_next_attempt_resumes_from(
    glisk, session_factory, uow_factory
) -> None:
    seed_tokens(session_factory, 1)
    held = _claim(uow_factory, 1)
    with uow_factory() as uow:
        uow.tokens.checkpoint(held, {"prediction_id": "p-7"})
        uow.tokens.release(held, error={"message": "killed"}, retry_in=timedelta(minutes=1))
    why = as_json(glisk("tokens", "why", "1", "--json"))
    shown = glisk("tokens", "show", "1")
    assert (why["reason"], why["checkpoint"]) == ("retry_delay", {"prediction_id": "p-7"})
    assert "p-7" in shown.stdout
