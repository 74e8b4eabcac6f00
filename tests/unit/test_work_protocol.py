"""What a job's answer means for each token it was given (`glisk work`'s protocol)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from glisk_cli.pipeline import STAGES, StageName, TokenStatus
from glisk_cli.repositories.token_records import ClaimedToken
from glisk_cli.work.process import CommandExit
from glisk_cli.work.programs import Command
from glisk_cli.work.protocol import CoolDown, Failed, Succeeded, job_input, read_answer
from tests.unit.records import claimed_token

NOW = datetime(2026, 1, 1, tzinfo=UTC)
REVEAL = STAGES[StageName.REVEAL]
GENERATION = STAGES[StageName.GENERATION]
TX = "0x" + "12" * 32


def _token(token_id: int, status: TokenStatus = TokenStatus.READY) -> ClaimedToken:
    return claimed_token(token_id, status)


def test_one_object_answers_for_the_whole_batch() -> None:
    tokens = [_token(1), _token(2)]
    outcomes = read_answer(REVEAL, tokens, {"tx_hash": TX, "block_number": 9}, batched=True)
    assert list(outcomes.values()) == [Succeeded({"tx_hash": TX}, {"block_number": 9})] * 2


def test_per_token_answers_may_mix_results_and_errors_and_a_missing_token_fails() -> None:
    tokens = [_token(1), _token(2), _token(3)]
    answer = [
        {"token_id": 1, "tx_hash": TX},
        {"token_id": 2, "error": "reverted"},
        {"token_id": 99, "tx_hash": TX},
    ]
    outcomes = read_answer(REVEAL, tokens, answer, batched=True)
    assert outcomes[tokens[0].id] == Succeeded({"tx_hash": TX})
    assert outcomes[tokens[1].id] == Failed({"message": "reverted", "reason": "job_error"})
    missing = outcomes[tokens[2].id]
    assert isinstance(missing, Failed)
    assert "no entry" in missing.error["message"]


def test_a_malformed_result_field_is_a_failed_attempt() -> None:
    [token] = tokens = [_token(1)]
    for answer in ({"tx_hash": "0x12"}, {"tx_hash": 12}, {}, [], "done"):
        outcome = read_answer(REVEAL, tokens, answer, batched=False)[token.id]
        assert isinstance(outcome, Failed), answer


def test_history_extras_are_kept_when_usable_and_dropped_when_not() -> None:
    [token] = tokens = [_token(1, TokenStatus.GENERATING)]
    answer = {
        "image_path": "a.png",
        "service": "replicate",
        "external_job_id": 42,
        "block_number": "nine",
        "gas_price_gwei": "2.5",
        "unknown": 1,
    }
    outcome = read_answer(GENERATION, tokens, answer, batched=False)[token.id]
    assert outcome == Succeeded(
        {"image_path": "a.png"},
        {"service": "replicate", "external_job_id": "42", "gas_price_gwei": Decimal("2.5")},
    )


def test_the_job_input_is_one_document_or_an_array_for_a_batch() -> None:
    tokens = [_token(1), _token(2)]
    single = json.loads(job_input(tokens[:1], batched=False))
    assert single["token_id"] == 1
    assert single["lease_id"] == str(tokens[0].lease_id)
    assert [d["token_id"] for d in json.loads(job_input(tokens, batched=True))] == [1, 2]


@pytest.mark.parametrize(
    ("said", "delay"), [("30s", 30), ("2m", 120), (12, 12), (0.5, 0.5), ("1d", 86400)]
)
def test_retry_after_asks_the_stage_to_cool_down_for_every_token(
    said: object, delay: float
) -> None:
    tokens = [_token(1), _token(2)]
    outcomes = read_answer(REVEAL, tokens, {"retry_after": said}, batched=True)
    assert list(outcomes.values()) == [CoolDown(timedelta(seconds=delay))] * 2


@pytest.mark.parametrize("said", ["soon", 0, -5, "0s", "2d", True, None, float("inf")])
def test_a_retry_after_that_is_no_duration_up_to_a_day_fails_the_attempt(said: object) -> None:
    [outcome] = read_answer(GENERATION, [_token(1)], {"retry_after": said}, batched=False).values()
    assert isinstance(outcome, Failed)
    assert "retry_after" in outcome.error["message"]


def test_one_object_with_an_error_fails_the_attempt_with_the_job_s_words() -> None:
    [outcome] = read_answer(REVEAL, [_token(1)], {"error": "nonce too low"}, batched=False).values()
    assert outcome == Failed({"message": "nonce too low", "reason": "job_error"})


@pytest.mark.parametrize(
    ("status", "answer", "killed", "reason"),
    [
        (1, b"", None, "exit"),
        (-9, b"", "timeout", "timeout"),
        (-11, b"", None, "killed"),
        (0, b"not json", None, "bad_answer"),
        (0, None, None, "bad_answer"),
        (0, b"{}", None, "bad_answer"),
        (0, b'{"error": "no GPU"}', None, "job_error"),
    ],
)
def test_every_failed_attempt_of_a_command_says_what_kind_of_failure_it_was(
    status: int, answer: bytes | None, killed: str | None, reason: str
) -> None:
    [token] = tokens = [_token(1, TokenStatus.DETECTED)]
    exited = CommandExit(status, answer, "", killed, 5.0)
    outcome = Command(["true"]).outcomes(GENERATION, tokens, exited)[token.id]
    assert isinstance(outcome, Failed)
    assert outcome.error["reason"] == reason


def test_an_answer_that_is_not_json_keeps_a_sample_of_what_the_job_printed() -> None:
    [token] = tokens = [_token(1, TokenStatus.DETECTED)]
    exited = CommandExit(0, b"Traceback (most recent call last):\x00 oops", "", None, 1.0)
    outcome = Command(["true"]).outcomes(GENERATION, tokens, exited)[token.id]
    assert isinstance(outcome, Failed)
    assert outcome.error["stdout"] == "Traceback (most recent call last): oops"
