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
from dataclasses import dataclass

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
class Stage:
    """One stage of work: where its tokens come from, what they are while held, where they go."""

    name: StageName
    claimable: tuple[TokenStatus, ...]  # the statuses a claim of this stage draws from
    in_flight: TokenStatus  # a claimed token's status while its worker holds it
    next_status: TokenStatus  # where a finished token moves
    result_fields: tuple[str, ...]  # what the worker must report for that move


STAGES: dict[StageName, Stage] = {
    stage.name: stage
    for stage in (
        Stage(
            StageName.GENERATION,
            claimable=(TokenStatus.DETECTED, TokenStatus.GENERATING),
            in_flight=TokenStatus.GENERATING,
            next_status=TokenStatus.UPLOADING,
            result_fields=("image_path",),
        ),
        Stage(
            StageName.UPLOAD,
            claimable=(TokenStatus.UPLOADING,),
            in_flight=TokenStatus.UPLOADING,
            next_status=TokenStatus.READY,
            result_fields=("image_cid", "metadata_cid"),
        ),
        Stage(
            StageName.REVEAL,
            claimable=(TokenStatus.READY,),
            in_flight=TokenStatus.READY,
            next_status=TokenStatus.REVEALED,
            result_fields=("tx_hash",),
        ),
    )
}

# The state machine's forward moves: each status and the one a token must be in to reach it.
# A stage moves its in-flight tokens on; a generation claim (or an operator) starts the first.
REQUIRED_BEFORE: dict[TokenStatus, TokenStatus] = {
    TokenStatus.GENERATING: TokenStatus.DETECTED,
    **{stage.next_status: stage.in_flight for stage in STAGES.values()},
}

MAX_BATCH = 1000  # the most tokens one claim, lock or move handles


def stage_named(name: str) -> Stage:
    """The stage called `name`, or InvalidInput naming the stages there are."""
    try:
        return STAGES[StageName(name)]
    except ValueError:
        raise InvalidInput(f"unknown stage {name!r}: expected one of {', '.join(STAGES)}") from None


def check_batch_size(limit: int) -> int:
    """`limit` when it is a batch size glisk accepts (1..MAX_BATCH), else InvalidInput."""
    if not 1 <= limit <= MAX_BATCH:
        raise InvalidInput(f"limit must be between 1 and {MAX_BATCH}, not {limit}")
    return limit
