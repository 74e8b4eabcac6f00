"""Why a token is not moving (`glisk tokens why`), decided from plain values: the token's own
columns read at the database's `now`, and — for a token waiting for a stage — that stage's
controls and how many tokens the next claims take before it. No database here, so every answer
is tested with plain values (tests/unit/test_why.py); `repositories/token_why.py` reads them.

The reasons, checked in this order (the first that holds is the answer):

- `done`: revealed; `failed`: failed for good, with the reason its error_data records;
- `held`: a worker holds a live lease on it — it is moving, as fast as that worker goes;
- `lease_expired`: a worker held it and its lease ran out: the next claim of the stage takes it
  over — unless the stage starts no job now, which the answer then says too;
- `retry_delay`: released after a failed attempt, claimable again only when its delay is over;
- waiting in its stage's queue: the stage's block, if any (`paused`, `cooling_down`, `at_limit`,
  `rate_limited`: `flow.StageState.blocked`), else `queued`, behind the tokens claims take first.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from glisk_cli.durations import in_words, moment
from glisk_cli.flow import StageState
from glisk_cli.pipeline import STAGE_OF, Stage, TokenStatus
from glisk_cli.redact import redact


@dataclass(frozen=True)
class TokenFacts:
    """What a token's row says about where it is, read at the database's clock (`now`)."""

    token_id: int
    status: TokenStatus
    mint_timestamp: datetime
    attempts: int
    error_data: Mapping[str, Any] | None
    claimed_by: str | None
    lease_id: uuid.UUID | None
    lease_expires_at: datetime | None
    updated_at: datetime
    now: datetime
    checkpoint: Mapping[str, Any] | None = None  # what its last attempt recorded, to resume from

    @property
    def held(self) -> bool:
        """A worker holds a lease that has not run out."""
        return (
            self.claimed_by is not None
            and self.lease_expires_at is not None
            and self.lease_expires_at > self.now
        )

    @property
    def delayed(self) -> bool:
        """Nobody holds it, and it may not be claimed before its retry delay is over."""
        return (
            self.claimed_by is None
            and self.lease_expires_at is not None
            and self.lease_expires_at > self.now
        )


@dataclass(frozen=True)
class Ahead:
    """How many of its stage's tokens claimable now the next claims take before this one: up to
    a cap, past which counting would cost more than the answer is worth (`exact` is False)."""

    count: int
    exact: bool = True

    def __str__(self) -> str:
        return f"{self.count}" if self.exact else f"more than {self.count}"


@dataclass(frozen=True)
class Why:
    """The answer: a reason in a word, one sentence, until when (if that is known), and the
    facts behind it (JSON-ready keys, merged into `document()`)."""

    token_id: int
    status: TokenStatus
    reason: str
    message: str
    until: datetime | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def document(self) -> dict[str, Any]:
        """The one JSON object of `glisk tokens why --json` (its first five keys always)."""
        return {
            "token_id": self.token_id,
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
            "until": self.until,
            **self.details,
        }


def waits_for(token: TokenFacts) -> Stage | None:
    """The stage whose controls the answer needs (its claim is what would move the token next):
    None for a token that is finished, held, or waiting out a retry delay."""
    if token.status in (TokenStatus.REVEALED, TokenStatus.FAILED) or token.held or token.delayed:
        return None
    return STAGE_OF.get(token.status)


def explain(
    token: TokenFacts,
    *,
    lease: timedelta,
    stage: StageState | None = None,
    ahead: Ahead | None = None,
) -> Why:
    """Why `token` is where it is. `lease` is the configured lease (GLISK_LEASE), from which a
    holder's last renewal is worked out; `stage` (the controls of `waits_for(token)`) and `ahead`
    are needed for a token that waits for a claim, and ignored otherwise. The answer carries the
    token's checkpoint, if it has one: where its next attempt resumes."""
    why = _explain(token, lease=lease, stage=stage, ahead=ahead)
    if token.checkpoint is None:
        return why
    return replace(why, details={**why.details, "checkpoint": token.checkpoint})


def _explain(
    token: TokenFacts,
    *,
    lease: timedelta,
    stage: StageState | None = None,
    ahead: Ahead | None = None,
) -> Why:
    name = f"token {token.token_id}"
    if token.status is TokenStatus.REVEALED:
        return Why(token.token_id, token.status, "done", f"{name} is done: it was revealed")
    if token.status is TokenStatus.FAILED:
        return _failed(token, name)
    if token.held:
        return _held(token, name, lease)
    if token.delayed:
        return _delayed(token, name)
    queue = STAGE_OF[token.status]
    if stage is None or stage.stage != queue.name.value:
        raise ValueError(f"{name} waits for stage {queue.name.value}: its controls are needed")
    if token.claimed_by is not None:
        return _expired(token, name, stage)
    return _queued(token, name, stage, ahead)


def failure_reason(error: Mapping[str, Any] | None) -> str:
    """Why a token failed, in a word, from its error_data (as `glisk top` counts failures): its
    `reason` (max_attempts, …), else its `code`, else the exit status of the worker's command."""
    if error:
        for key in ("reason", "code"):
            value = error.get(key)
            if isinstance(value, str) and value:
                return value
        if error.get("exit_status") is not None:
            return f"exit {error['exit_status']}"
    return "unknown"


def last_renewal(
    latest_expiry: datetime | None, updated_at: datetime | None, lease: timedelta, now: datetime
) -> datetime | None:
    """When a worker last claimed or renewed, from its leases' columns.

    A renewal writes only `lease_expires_at` (= then + the lease asked for), and a claim also
    stamps `updated_at`. So the newest expiry minus the configured lease is the last renewal when
    the worker asks for GLISK_LEASE; a worker asking for a shorter lease would look older than it
    is, so the claim's `updated_at` bounds it from below (a renewal never precedes its claim), and
    one asking for a longer lease is capped at now.
    """
    if latest_expiry is None:
        return updated_at
    renewed = latest_expiry - lease
    if updated_at is not None:
        renewed = max(renewed, updated_at)
    return min(renewed, now)


def _failed(token: TokenFacts, name: str) -> Why:
    error = dict(token.error_data or {})
    reason = failure_reason(error)
    stage = error.get("stage")
    where = f" in {stage}" if isinstance(stage, str) else ""
    said = error.get("message")
    said = f": {_one_line(said)}" if isinstance(said, str) and said.strip() else ""
    message = (
        f"{name} failed{where} ({reason}, after {_count(token.attempts, 'attempt')}){said}; "
        f"`glisk tokens retry {token.token_id}` sends it back to the stage that failed"
    )
    details = {"failure": reason, "error_data": error or None}
    return Why(token.token_id, token.status, "failed", message, None, details)


def _held(token: TokenFacts, name: str, lease: timedelta) -> Why:
    assert token.lease_expires_at is not None
    renewed = last_renewal(token.lease_expires_at, token.updated_at, lease, token.now)
    ago = f", last renewed {in_words(token.now - renewed)} ago" if renewed is not None else ""
    stage = STAGE_OF.get(token.status)
    doing = f" for {stage.name.value}" if stage is not None else ""
    message = (
        f"{name} is held by worker {token.claimed_by}{doing} until "
        f"{_until(token.lease_expires_at, token.now, ago)}"
    )
    details = {
        "stage": None if stage is None else stage.name.value,
        "claimed_by": token.claimed_by,
        "lease_id": token.lease_id,
        "lease_expires_at": token.lease_expires_at,
        "last_renewal": renewed,
        "attempts": token.attempts,
    }
    return Why(token.token_id, token.status, "held", message, token.lease_expires_at, details)


def _expired(token: TokenFacts, name: str, stage: StageState) -> Why:
    block = _block(stage)
    ran_out = token.lease_expires_at
    when = (
        f" at {moment(ran_out)} ({in_words(token.now - ran_out)} ago)"
        if ran_out is not None
        else ""
    )
    message = f"{name}'s lease (worker {token.claimed_by}) ran out{when}: "
    if block is None:
        message += f"the next claim of {stage.stage} takes it over"
    else:
        message += f"the next claim of {stage.stage} takes it over, but {block['message']}"
    details = {
        "stage": stage.stage,
        "claimed_by": token.claimed_by,
        "lease_id": token.lease_id,
        "lease_expires_at": ran_out,
        "attempts": token.attempts,
        "blocked": block,
    }
    until = None if block is None else block["until"]
    return Why(token.token_id, token.status, "lease_expired", message, until, details)


def _queued(token: TokenFacts, name: str, stage: StageState, ahead: Ahead | None) -> Why:
    blocked = stage.blocked()
    details: dict[str, Any] = {"stage": stage.stage, "blocked": _block(stage)}
    if ahead is not None:
        details |= {"ahead": ahead.count, "ahead_exact": ahead.exact}
    if blocked is not None:
        message = f"{name} waits in the {stage.stage} queue, and {blocked.message}"
        return Why(token.token_id, token.status, blocked.reason, message, blocked.until, details)
    if ahead is None:
        raise ValueError(f"{name} waits in the {stage.stage} queue: the tokens ahead are needed")
    if ahead.count == 0 and ahead.exact:
        message = f"{name} is next in line for {stage.stage}: the next claim takes it"
    else:
        older = "older token" if ahead.count == 1 and ahead.exact else "older tokens"
        message = f"{name} is next in line for {stage.stage} behind {ahead} {older}"
    return Why(token.token_id, token.status, "queued", message, None, details)


def _block(stage: StageState) -> dict[str, Any] | None:
    """The stage's block as JSON keys (as `glisk stage list --json` has it); None: no block."""
    blocked = stage.blocked()
    if blocked is None:
        return None
    return {"reason": blocked.reason, "message": blocked.message, "until": blocked.until}


def _delayed(token: TokenFacts, name: str) -> Why:
    assert token.lease_expires_at is not None
    stage = STAGE_OF.get(token.status)
    error = token.error_data or {}
    said = error.get("message")
    after = f" after attempt {token.attempts} failed" if token.attempts else ""
    after += f" ({_one_line(said)})" if isinstance(said, str) and said.strip() else ""
    message = (
        f"{name} is waiting out a retry delay{after}: claimable again at "
        f"{_until(token.lease_expires_at, token.now)}"
    )
    details = {
        "stage": None if stage is None else stage.name.value,
        "attempts": token.attempts,
        "retry_at": token.lease_expires_at,
    }
    return Why(
        token.token_id, token.status, "retry_delay", message, token.lease_expires_at, details
    )


def _until(when: datetime, now: datetime, more: str = "") -> str:
    """`2026-12-06T18:00:00Z (in 3m 05s…)`: a time to come, and how far off it is."""
    return f"{moment(when)} (in {in_words(when - now)}{more})"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _one_line(text: str, width: int = 200) -> str:
    """An error's message as one line, cut at `width`, with any password masked."""
    line = redact(" ".join(text.split()))
    return line if len(line) <= width else line[: width - 1] + "…"
