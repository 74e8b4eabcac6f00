"""The runner's protocol with a job: what goes in (token documents as JSON) and what a job's
answer means for each token (README, "glisk work").

A job answers with one JSON object holding its stage's result fields, which applies to every
token it was given, or, for a batch, with an array of per-token objects carrying `token_id`
(and either the result fields or an `error`). An object with `retry_after` (`"30s"`, or a number
of seconds) says the service it talks to asked to be left alone that long (HTTP 429): the stage
cools down. Anything else is a failed attempt whose error says what was wrong. A few optional
keys go to the history tables; other keys are ignored.
"""

from __future__ import annotations

import contextlib
import json
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from glisk_cli.documents import to_json, token_document
from glisk_cli.durations import parse_duration
from glisk_cli.flow import MAX_COOLDOWN
from glisk_cli.pipeline import Stage
from glisk_cli.repositories.token_records import ClaimedToken

# Why an attempt failed: error_data's `reason`, by which `glisk top` counts failures (with a
# nonzero exit, `glisk top` says "exit N" from the error's exit_status).
TIMEOUT = "timeout"  # --timeout ran out
EXIT = "exit"  # the command exited with a status other than 0
KILLED = "killed"  # a signal ended the command
BAD_ANSWER = "bad_answer"  # not JSON, over the size limit, or missing a result field
JOB_ERROR = "job_error"  # the job answered {"error": …}
EXCEPTION = "exception"  # a Python handler raised (or the runner's driving of the job did)
COULD_NOT_START = "could_not_start"  # the command could not be run


@dataclass(frozen=True)
class Succeeded:
    """The job did the token's work: its result fields, and what the history keeps besides."""

    fields: dict[str, str]
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Failed:
    """The attempt failed: `error` goes to the token's error_data (and the history); the token
    waits out a backoff delay, or is failed once it has used up its attempts."""

    error: dict[str, Any]


@dataclass(frozen=True)
class Interrupted:
    """The runner stopped the job: its lease was lost (`lease_lost`: someone else holds the
    token now) or the runner is shutting down (`shutdown`: released for another runner)."""

    reason: str


@dataclass(frozen=True)
class CoolDown:
    """The job's service said "not now, try again in `delay`": no job of the stage starts
    anywhere until then, and the token goes back with no attempt counted."""

    delay: timedelta


TokenOutcome = Succeeded | Failed | Interrupted | CoolDown


def job_input(tokens: Sequence[ClaimedToken], *, batched: bool) -> bytes:
    """What a job reads on stdin: one token document, or an array of them for a batch."""
    documents = [token_document(token) for token in tokens]
    return to_json(documents if batched else documents[0]).encode()


def read_answer(
    stage: Stage, tokens: Sequence[ClaimedToken], answer: Any, *, batched: bool
) -> dict[uuid.UUID, TokenOutcome]:
    """Each token's outcome from a job's parsed answer."""
    if isinstance(answer, Mapping):
        outcome = _cool_down(answer["retry_after"]) if "retry_after" in answer else None
        outcome = outcome or _outcome(stage, answer)
        return {token.id: outcome for token in tokens}
    if batched and isinstance(answer, list):
        return _per_token(stage, tokens, answer)
    wanted = "a JSON object or an array of them" if batched else "a JSON object"
    return failed_all(tokens, f"the job's answer is not {wanted}", BAD_ANSWER)


def failed_all(
    tokens: Sequence[ClaimedToken], message: str, reason: str, **details: Any
) -> dict[uuid.UUID, TokenOutcome]:
    """The same failure for every token; `reason` is its kind, by which `glisk top` counts."""
    outcome = Failed({"message": _text(message), "reason": reason, **details})
    return {token.id: outcome for token in tokens}


def _per_token(
    stage: Stage, tokens: Sequence[ClaimedToken], answers: list[Any]
) -> dict[uuid.UUID, TokenOutcome]:
    by_token_id = {token.token_id: token for token in tokens}
    outcomes: dict[uuid.UUID, TokenOutcome] = {}
    for answer in answers:
        said = answer.get("token_id") if isinstance(answer, Mapping) else None
        token = by_token_id.get(said) if isinstance(said, int) else None
        if token is None or token.id in outcomes:
            continue  # not one of ours, or said twice: the first answer stands
        outcomes[token.id] = _outcome(stage, answer)
    missing = Failed(
        {"message": "the job's answer has no entry for this token", "reason": BAD_ANSWER}
    )
    return {token.id: outcomes.get(token.id, missing) for token in tokens}


def _cool_down(value: Any) -> TokenOutcome:
    """The outcome of an answer's `retry_after`."""
    delay: timedelta | None = None
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            delay = parse_duration(value)
    elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        delay = timedelta(seconds=max(value, 0))
    if delay is None or not timedelta(0) < delay <= MAX_COOLDOWN:
        return Failed(
            {
                "message": f"the job's retry_after is not a duration up to a day: {_text(value)}",
                "reason": BAD_ANSWER,
            }
        )
    return CoolDown(delay)


def _outcome(stage: Stage, answer: Mapping[str, Any]) -> TokenOutcome:
    if "error" in answer:
        return Failed({"message": _text(answer["error"]), "reason": JOB_ERROR})
    for result in stage.results:
        problem = result.problem(answer.get(result.name))
        if problem is not None:
            return Failed({"message": f"the job's {problem}", "reason": BAD_ANSWER})
    return Succeeded({name: answer[name] for name in stage.result_fields}, _extras(answer))


def _extras(answer: Mapping[str, Any]) -> dict[str, Any]:
    """The optional history keys the answer holds in a usable form (others are dropped)."""
    extras: dict[str, Any] = {}
    for name, limit in (("service", 50), ("external_job_id", 255)):
        if isinstance(answer.get(name), str | int) and not isinstance(answer[name], bool):
            extras[name] = _text(answer[name])[:limit]
    block = answer.get("block_number")
    if isinstance(block, int) and not isinstance(block, bool) and 0 <= block < 2**63:
        extras["block_number"] = block  # a bigint column
    gas = answer.get("gas_price_gwei")
    if isinstance(gas, int | float | str) and not isinstance(gas, bool):
        with contextlib.suppress(InvalidOperation, ValueError):
            price = Decimal(str(gas))
            if price.is_finite() and 0 <= price < Decimal(10) ** 30:  # numeric, sane
                extras["gas_price_gwei"] = price
    return extras


def _text(value: Any) -> str:
    """A job's words as text PostgreSQL can store (no NUL character), at most 2 KB."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text.replace("\x00", "")[:2048]
