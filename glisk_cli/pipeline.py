"""The pipeline's vocabulary: token statuses, the stages that move tokens, and the batch limit.

Every other part of glisk derives its facts from here — the models and their state machine, the
claim statements, the CLI's choices and help — so a new status or stage is added in one place
(docs/architecture.md, "Where a change goes"). This module imports nothing from SQLAlchemy, so
the CLI can build its help from it at no cost.

The migrations keep their own literal copies of these names, as a migration must never change
once written; a test proves the database's `token_status` labels equal `TokenStatus`, in order.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property

from glisk_cli.errors import InvalidInput


class TokenStatus(enum.StrEnum):
    """Pipeline states, in pipeline order (the order of the PostgreSQL enum, too)."""

    DETECTED = "detected"
    GENERATING = "generating"
    UPLOADING = "uploading"
    READY = "ready"
    REVEALED = "revealed"
    FAILED = "failed"


TERMINAL_STATUSES = frozenset({TokenStatus.REVEALED, TokenStatus.FAILED})
ACTIVE_STATUSES = tuple(status for status in TokenStatus if status not in TERMINAL_STATUSES)


class StageName(enum.StrEnum):
    """The three kinds of work a worker claims tokens for."""

    GENERATION = "generation"
    UPLOAD = "upload"
    REVEAL = "reveal"


@dataclass(frozen=True)
class ResultField:
    """A value a stage's worker reports for a finished token: its name in the worker's answer,
    the token column that keeps it, and the form it must have."""

    name: str
    column: str
    pattern: re.Pattern[str] | None = None
    form: str = "a non-empty string"

    def problem(self, value: object) -> str | None:
        """What is wrong with `value` as this field, said of "the job's …"; None if nothing."""
        if not isinstance(value, str) or not value.strip():
            return f"answer has no {self.name} (a non-empty string)"
        if "\x00" in value:  # PostgreSQL text cannot hold it
            return f"{self.name} holds a NUL character"
        if self.pattern is not None and not self.pattern.fullmatch(value):
            return f"{self.name} is not {self.form}"
        return None


TX_HASH = ResultField(
    "tx_hash", "reveal_tx_hash", re.compile(r"0x[0-9a-fA-F]{64}"), "0x and 64 hex digits"
)


@dataclass(frozen=True)
class Stage:
    """One stage of work: where its tokens wait, what they are while held, where they go, and
    what its worker reports to move them there."""

    name: StageName
    queued: TokenStatus  # where a token waits for this stage (and goes back to when released)
    in_flight: TokenStatus  # a claimed token's status while its worker holds it
    next_status: TokenStatus  # where a finished token moves
    results: tuple[ResultField, ...]  # what the worker must report for that move
    # The result whose presence shows the stage's work done, whatever path recorded it: a
    # retried token resumes at the first stage whose output it lacks.
    output: str

    @property
    def claimable(self) -> tuple[TokenStatus, ...]:
        """The statuses a claim of this stage draws from (an in-flight token whose lease ran
        out is claimable again)."""
        return tuple(dict.fromkeys((self.queued, self.in_flight)))

    @cached_property  # read for every token a runner moves
    def result_fields(self) -> tuple[str, ...]:
        return tuple(field.name for field in self.results)

    @property
    def output_column(self) -> str:
        """The token column that holds the stage's output."""
        [column] = [field.column for field in self.results if field.name == self.output]
        return column


STAGES: dict[StageName, Stage] = {
    stage.name: stage
    for stage in (
        Stage(
            StageName.GENERATION,
            queued=TokenStatus.DETECTED,
            in_flight=TokenStatus.GENERATING,
            next_status=TokenStatus.UPLOADING,
            results=(ResultField("image_path", "image_path"),),
            output="image_path",
        ),
        Stage(
            StageName.UPLOAD,
            queued=TokenStatus.UPLOADING,
            in_flight=TokenStatus.UPLOADING,
            next_status=TokenStatus.READY,
            results=(
                ResultField("image_cid", "image_cid"),
                ResultField("metadata_cid", "metadata_cid"),
            ),
            output="metadata_cid",  # what `ready` requires; the image's CID is optional
        ),
        Stage(
            StageName.REVEAL,
            queued=TokenStatus.READY,
            in_flight=TokenStatus.READY,
            next_status=TokenStatus.REVEALED,
            results=(TX_HASH,),
            output=TX_HASH.name,
        ),
    )
}
# Every result field any stage reports, once each: the token columns a move may write.
RESULT_FIELDS = tuple(
    {field.name: field for stage in STAGES.values() for field in stage.results}.values()
)
STAGE_IN_FLIGHT: dict[TokenStatus, Stage] = {stage.in_flight: stage for stage in STAGES.values()}
# The stage that claims from each status: the one a token waits for, or is held for.
STAGE_OF: dict[TokenStatus, Stage] = {
    status: stage for stage in STAGES.values() for status in stage.claimable
}

# The state machine's forward moves: each status and the one a token must be in to reach it.
# A stage moves its in-flight tokens on; a generation claim (or an operator) starts the first.
REQUIRED_BEFORE: dict[TokenStatus, TokenStatus] = {
    TokenStatus.GENERATING: TokenStatus.DETECTED,
    **{stage.next_status: stage.in_flight for stage in STAGES.values()},
}

MAX_BATCH = 1000  # the most tokens one claim, lock or move handles
MAX_CHECKPOINT = 64 * 1024  # bytes of JSON: a checkpoint is a few ids and a signed transaction

# Why a token was not moved or released (`AdvanceResult.refused`).
LEASE_LOST = "lease_lost"  # another claim took the token: its lease id is no longer the one held
ILLEGAL_TRANSITION = "illegal_transition"  # the token is not in its stage's in-flight status
MISSING_FIELD = "missing_field"  # a result field the stage's move needs was not given


def stage_named(name: str) -> Stage:
    """The stage called `name`, or InvalidInput naming the stages there are."""
    stage = STAGES.get(name)  # type: ignore[call-overload]  # a StrEnum key is found by its text
    if stage is None:
        raise InvalidInput(f"unknown stage {name!r}: expected one of {', '.join(STAGES)}")
    return stage


MAX_LEASE = timedelta(days=1)  # longer is a mistake: renew instead (`renew`)
MAX_RETRY_DELAY = timedelta(days=7)


def check_lease(lease: timedelta) -> timedelta:
    """`lease` when it is one glisk accepts (over zero, at most MAX_LEASE), else InvalidInput."""
    if not timedelta(0) < lease <= MAX_LEASE:
        raise InvalidInput(f"lease must be longer than zero and at most {MAX_LEASE}, not {lease}")
    return lease


def check_retry_delay(delay: timedelta) -> timedelta:
    """`delay` when it is a retry delay glisk accepts (0..MAX_RETRY_DELAY), else InvalidInput."""
    if not timedelta(0) <= delay <= MAX_RETRY_DELAY:
        raise InvalidInput(f"retry delay must be between 0 and {MAX_RETRY_DELAY}, not {delay}")
    return delay


def check_batch_size(limit: int) -> int:
    """`limit` when it is a batch size glisk accepts (1..MAX_BATCH), else InvalidInput."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_BATCH:
        raise InvalidInput(f"limit must be a whole number from 1 to {MAX_BATCH}, not {limit!r}")
    return limit


INTEGER_MAX = 2**31 - 1  # a PostgreSQL integer column: token_id, log_index


def token_id_in(text: str) -> int | None:
    """`text` as an on-chain token id (digits only, within tokens_s0.token_id's integer range),
    or None when it is not one."""
    if not text.isascii() or not text.isdigit() or len(text) > len(str(INTEGER_MAX)):
        return None
    value = int(text)
    return value if value <= INTEGER_MAX else None
