"""TokenLeases: the workers' path through the token queue — claim, renew, advance, release — as
driver SQL on the Unit of Work's connection, returning frozen records, every step after the
claim fenced by the lease id the claim wrote (docs/architecture.md, "The workers' path below the
ORM"). It loads no ORM model (docs/architecture.md, "A one-shot command loads what it uses").
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Mapping, Sequence
from datetime import timedelta
from typing import Any

from glisk_cli.db.transaction import Transaction
from glisk_cli.errors import InvalidInput, LeaseLost
from glisk_cli.pipeline import (
    ILLEGAL_TRANSITION,
    LEASE_LOST,
    MAX_CHECKPOINT,
    MISSING_FIELD,
    STAGE_IN_FLIGHT,
    TERMINAL_STATUSES,
    Stage,
    TokenStatus,
    check_batch_size,
    check_lease,
    check_retry_delay,
    stage_named,
)
from glisk_cli.policy import QueuePolicy
from glisk_cli.repositories.array_literal import array_literal, random_uuids
from glisk_cli.repositories.token_records import (
    MINT_ORDER,
    AdvanceResult,
    Backlog,
    ClaimedToken,
)
from glisk_cli.repositories.token_sql import (
    ADVANCE,
    CHECKPOINT,
    CHECKPOINT_LEASE_ID,
    LEASE_IDS,
    RELEASE,
    RENEW,
    RENEW_LEASE_ID,
    RESULT_NAMES,
    THROUGH_INDEXES,
    backlog_sql,
    claim_jobs,
    claim_sql,
)


class TokenLeases:
    """The workers' operations of `uow.tokens`, under the Unit of Work's queue policy."""

    def __init__(self, transaction: Transaction, policy: QueuePolicy) -> None:
        self.transaction = transaction
        self.policy = policy

    def claim(
        self,
        stage: str,
        limit: int,
        worker: str,
        lease: timedelta | None = None,
        max_attempts: int | None = None,
        *,
        job_size: int | None = None,
    ) -> list[ClaimedToken]:
        """Hand `worker` up to `limit` tokens of `stage` under new leases, oldest mint first.

        A job is what one worker works on at once, and it holds one lease id: by default the
        whole claim is one job (a batch); with `job_size` (1: every token a job of its own, as
        `glisk work` runs them) the claim is cut into jobs of that many tokens. The stage's
        controls decide how many jobs start: none while the stage is paused or cooling down, no
        more than its concurrency limit leaves room for and its rate limit's bucket holds.
        Tokens whose lease ran out (a dead worker's, or a retry delay's: a lease nobody holds)
        are taken over first, then the oldest mints nobody holds. One statement admits, picks,
        locks, leases and returns them.
        A picked token that already used `max_attempts` claims is failed (reason max_attempts)
        instead of handed out, and the claim goes on for the rest (in jobs of their own), so it
        returns fewer than `limit` only when no more are claimable or admitted. `lease` and
        `max_attempts` default to the Unit of Work's policy (the settings).
        """
        lease = self.policy.lease if lease is None else check_lease(lease)
        wanted = check_batch_size(limit)
        size = wanted if job_size is None else min(check_batch_size(job_size), wanted)
        claimed_stage = stage_named(stage)
        params: dict[str, Any] = {
            "worker": worker,
            "lease": lease,
            "max_attempts": self.policy.max_attempts if max_attempts is None else max_attempts,
        }
        claimed: list[ClaimedToken] = []
        while True:
            left = wanted - len(claimed)
            params["lease_ids"] = random_uuids(claim_jobs(left, size))
            found = ClaimedToken.from_rows(
                self.transaction.rows(claim_sql(claimed_stage, left, size), params)
            )
            handed_out = [token for token in found if token.status is not TokenStatus.FAILED]
            if len(found) == len(handed_out) and not claimed:
                return found  # the usual claim: one round, in mint order already
            claimed += handed_out
            # Tokens that used up their attempts took places in the batch; claim again for those.
            if len(found) == len(handed_out) or len(claimed) == wanted:
                return sorted(claimed, key=MINT_ORDER)  # the rounds' tokens, merged

    def renew(
        self, tokens: Sequence[ClaimedToken], lease: timedelta | None = None
    ) -> list[ClaimedToken]:
        """Extend the leases of `tokens` to `lease` from now; returns those still held (with
        their new expiry). A token another claim took over is left out; a lapsed lease nobody
        took over is renewed (nobody else holds the work)."""
        if not tokens:
            return []
        lease = self.policy.lease if lease is None else check_lease(lease)
        params = {**_fences(tokens), "lease": lease}
        return ClaimedToken.from_rows(self.transaction.rows(RENEW, params))

    def renew_lease(
        self, lease_id: uuid.UUID, lease: timedelta | None = None
    ) -> list[ClaimedToken]:
        """Extend every token still held under `lease_id` (`glisk tokens renew --lease-id`)."""
        lease = self.policy.lease if lease is None else check_lease(lease)
        params = {"lease_id": lease_id, "lease": lease}
        return ClaimedToken.from_rows(self.transaction.rows(RENEW_LEASE_ID, params))

    def advance(self, moves: Sequence[tuple[ClaimedToken, Mapping[str, Any]]]) -> AdvanceResult:
        """Move each token to its stage's next status with the stage's result fields, ending its
        lease; one statement for the whole batch, and one more only when some token did not move,
        to tell why. A token is refused — and the others still move — when it no longer carries
        the lease id it was claimed under (`lease_lost`: another claim took it over, or a move,
        release or operator ended the lease), when it is not in its stage's in-flight status
        (`illegal_transition`), or when a result field is missing (`missing_field`)."""
        refused: dict[int, str] = {}
        valid: list[tuple[ClaimedToken, Stage, Mapping[str, Any]]] = []
        for token, fields in moves:
            stage = STAGE_IN_FLIGHT.get(token.status)
            if stage is None:
                refused[token.token_id] = ILLEGAL_TRANSITION
            elif any(not fields.get(name) for name in stage.result_fields):
                refused[token.token_id] = MISSING_FIELD
            else:
                valid.append((token, stage, fields))
        if not valid:
            return AdvanceResult([], refused)
        params: dict[str, Any] = {
            **_fences([token for token, _, _ in valid]),
            "from_status": array_literal(stage.in_flight.value for _, stage, _ in valid),
            "to_status": array_literal(stage.next_status.value for _, stage, _ in valid),
            # A new stage starts its own count of attempts; a finished token keeps its count.
            "reset": array_literal(
                stage.next_status not in TERMINAL_STATUSES for _, stage, _ in valid
            ),
        }
        for name in RESULT_NAMES:
            params[name] = array_literal(fields.get(name) for _, _, fields in valid)
        moved = {id for (id,) in self.transaction.rows(ADVANCE, params)}
        stayed = [token for token, _, _ in valid if token.id not in moved]
        if stayed:
            ids = array_literal(token.id for token in stayed)
            now = dict(self.transaction.rows(LEASE_IDS, {"ids": ids}))
            for token in stayed:
                held = now.get(token.id) == token.lease_id
                refused[token.token_id] = ILLEGAL_TRANSITION if held else LEASE_LOST
        moved_ids = sorted(token.token_id for token, _, _ in valid if token.id in moved)
        return AdvanceResult(moved_ids, refused)

    def release(
        self,
        tokens: Sequence[ClaimedToken],
        *,
        error: Mapping[str, Any] | None = None,
        retry_in: timedelta | None = None,
    ) -> AdvanceResult:
        """End the leases of `tokens` (those still held) so they can be claimed again.

        A generating token goes back to detected. With `retry_in` (or, for a release with an
        `error` and no `retry_in`, the policy's exponential backoff by attempt) the token is not
        claimable before then. `error` is merged into `error_data` with the attempt number, and
        a token that used up its attempts is failed at once (reason max_attempts; `failed` in
        the result).
        """
        return self.release_each([(token, error) for token in tokens], retry_in=retry_in)

    def release_each(
        self,
        releases: Sequence[tuple[ClaimedToken, Mapping[str, Any] | None]],
        *,
        retry_in: timedelta | None = None,
        uncounted: Collection[uuid.UUID] = (),
    ) -> AdvanceResult:
        """`release`, with an error of its own (or None) for each token; one statement. The
        claims of `uncounted` tokens (ids) do not count as attempts: their work was stopped
        before it could finish (a runner shutting down), through no fault of theirs."""
        if not releases:
            return AdvanceResult()
        fixed = None if retry_in is None else check_retry_delay(retry_in)
        tokens = [token for token, _ in releases]
        params: dict[str, Any] = {
            **_fences(tokens),
            "delays": array_literal(
                fixed
                if fixed is not None or error is None
                else self.policy.retry_delay(token.attempts)
                for token, error in releases
            ),
            "errors": array_literal(error for _, error in releases),
            "uncounted": array_literal(token.id in uncounted for token in tokens),
            "max_attempts": self.policy.max_attempts,
        }
        released = dict(self.transaction.rows(RELEASE, params))
        refused = {t.token_id: LEASE_LOST for t in tokens if t.token_id not in released}
        failed = sorted(token_id for token_id, failed in released.items() if failed)
        return AdvanceResult(sorted(released), refused, failed)

    def checkpoint(
        self, tokens: Sequence[ClaimedToken], checkpoint: Mapping[str, Any]
    ) -> list[ClaimedToken]:
        """Record `checkpoint` (a JSON object of at most 64 kB) for `tokens`, all of them held
        under the leases they were claimed under and not run out; otherwise LeaseLost (a
        Conflict, exit 6) names the others, and the Unit of Work, rolled back, writes nothing.
        A job records one before a side effect; the next attempt reads it and resumes."""
        params = {**_fences(tokens), "checkpoint": check_checkpoint(checkpoint)}
        written = ClaimedToken.from_rows(self.transaction.rows(CHECKPOINT, params))
        _all_held([token.token_id for token in tokens], written)
        return written

    def checkpoint_lease(
        self,
        lease_id: uuid.UUID,
        checkpoint: Mapping[str, Any],
        token_ids: Sequence[int] | None = None,
    ) -> list[ClaimedToken]:
        """`checkpoint`, for the tokens held under `lease_id`: those of `token_ids`, or every
        one (`glisk tokens checkpoint`, and a job of `glisk work`). LeaseLost when a token named
        is not held under it, or, with none named, when no token is."""
        params = {
            "lease_id": lease_id,
            "token_ids": None if token_ids is None else array_literal(token_ids),
            "checkpoint": check_checkpoint(checkpoint),
        }
        written = ClaimedToken.from_rows(self.transaction.rows(CHECKPOINT_LEASE_ID, params))
        if token_ids is not None:
            _all_held(token_ids, written)
        elif not written:
            raise LeaseLost(
                f"no token is held under lease {lease_id}: nothing was recorded, and the side "
                "effect must not happen",
                hint="stop this job; another attempt will resume from the last checkpoint",
            )
        return written

    def backlog(self, stage: str) -> Backlog:
        """What is left of `stage`'s work, anywhere (`glisk work --drain` and its live line)."""
        [row] = self.transaction.rows(backlog_sql(stage_named(stage)), {}, THROUGH_INDEXES)
        return Backlog(*row)


def check_checkpoint(checkpoint: object) -> str:
    """`checkpoint` as the JSON text it is written as (encoded once: its size is the text's),
    when it is a JSON object of at most MAX_CHECKPOINT bytes; else InvalidInput (exit 2)."""
    if not isinstance(checkpoint, Mapping):
        raise InvalidInput('a checkpoint is a JSON object, like {"prediction_id": "…"}')
    try:
        text = json.dumps(checkpoint, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise InvalidInput(f"a checkpoint must be JSON: {error}") from None
    if len(text.encode()) > MAX_CHECKPOINT:
        raise InvalidInput(f"a checkpoint is at most {MAX_CHECKPOINT // 1024} kB of JSON")
    if "\\u0000" in text:  # jsonb cannot hold a NUL character
        raise InvalidInput("a checkpoint cannot hold a NUL character")
    return text


def _all_held(token_ids: Sequence[int], written: Sequence[ClaimedToken]) -> None:
    """Refuse (and so roll back) a checkpoint that did not land on every token it was for."""
    lost = sorted(set(token_ids) - {token.token_id for token in written})
    if lost:
        raise LeaseLost(
            f"token{'s' if len(lost) > 1 else ''} {', '.join(map(str, lost))} "
            "not held under the lease (taken over, moved, released or run out): "
            "nothing was recorded, and the side effect must not happen",
            hint="stop this job; another attempt will resume from the last checkpoint",
        )


def _fences(tokens: Sequence[ClaimedToken]) -> dict[str, str]:
    """The (id, lease id) pairs a fenced statement matches, as two array parameters."""
    return {
        "ids": array_literal(token.id for token in tokens),
        "lease_ids": array_literal(token.lease_id for token in tokens),
    }
