"""Writing what jobs came to: every ended job of a loop turn in one Unit of Work — one batch move
for the successes, one release for the rest, the stage's cooldown a job asked for, and the
stage's history rows — fenced by the leases, so an outcome whose lease was lost meanwhile
changes nothing but the history and the cooldown.

Retry-safe: if the commit's fate is unknown (the connection broke during COMMIT) the runner
writes the same outcomes again, and neither the fenced moves nor the history add anything twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from glisk_cli.durations import format_duration
from glisk_cli.pipeline import Stage
from glisk_cli.repositories.token_records import ClaimedToken
from glisk_cli.uow import UnitOfWork
from glisk_cli.work.history import history_of
from glisk_cli.work.jobs import Job
from glisk_cli.work.protocol import CoolDown, Failed, Interrupted, Succeeded, TokenOutcome


@dataclass
class Recorded:
    """What writing the outcomes did to each token (by token id): moved on; an attempt failed,
    to be retried after its backoff, with its error; failed for good (its attempts used up),
    with its error; handed back unfinished (also when its job asked the stage to cool down); or
    dropped, its lease lost."""

    succeeded: list[int] = field(default_factory=list)
    retried: dict[int, dict[str, Any]] = field(default_factory=dict)
    failed: dict[int, dict[str, Any]] = field(default_factory=dict)
    released: list[int] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)


def write_outcomes(uow: UnitOfWork, stage: Stage, jobs: Sequence[Job]) -> Recorded:
    """Apply the outcomes of `jobs`, all ended, in `uow` (which the caller commits)."""
    outcomes: dict[uuid.UUID, TokenOutcome] = {}
    tokens: dict[uuid.UUID, ClaimedToken] = {}
    for job in jobs:
        assert job.outcomes is not None, "only an ended job is written"
        outcomes |= job.outcomes
        tokens |= {token.id: token for token in job.tokens}
    moves = [(tokens[id], o.fields) for id, o in outcomes.items() if isinstance(o, Succeeded)]
    moved = uow.tokens.advance(moves)
    releases = [
        (tokens[id], o.error if isinstance(o, Failed) else None)
        for id, o in outcomes.items()
        if not isinstance(o, Succeeded)  # Interrupted, CoolDown: released at once, no error
    ]
    # A shutdown's attempt gives its claim back: a token on its last attempt must not be failed
    # for a deploy; nor for a service that asked to be left alone a while.
    uncounted = {
        id
        for id, o in outcomes.items()
        if isinstance(o, CoolDown) or (isinstance(o, Interrupted) and o.reason == "shutdown")
    }
    delays = [o.delay for o in outcomes.values() if isinstance(o, CoolDown)]
    if delays:
        asked = max(delays)
        holder = next(iter(tokens.values())).claimed_by
        reason = f"a job of {holder} was asked to retry after {format_duration(asked)}"
        uow.stages.cool_down(stage.name.value, asked, reason=reason, extend=True)
    released = uow.tokens.release_each(releases, uncounted=uncounted)

    recorded = Recorded(succeeded=moved.moved)
    gave_up = set(released.failed)
    final: dict[uuid.UUID, TokenOutcome] = {}
    for id, outcome in outcomes.items():
        token_id = tokens[id].token_id
        refused = moved.refused.get(token_id) or released.refused.get(token_id)
        if refused:
            recorded.lost.append(token_id)
            final[id] = Failed({**_error_of(outcome), "reason": refused})
        elif isinstance(outcome, Failed):
            spent = recorded.failed if token_id in gave_up else recorded.retried
            spent[token_id] = outcome.error
            final[id] = outcome
        elif isinstance(outcome, Interrupted):
            recorded.released.append(token_id)
            final[id] = Failed({"message": f"stopped ({outcome.reason})", "reason": outcome.reason})
        elif isinstance(outcome, CoolDown):
            recorded.released.append(token_id)
            final[id] = Failed(
                {
                    "message": f"asked to retry after {format_duration(outcome.delay)}",
                    "reason": "retry_after",
                }
            )
        else:
            final[id] = outcome
    history_of(stage).ended(uow, jobs, final)
    return recorded


def _error_of(outcome: TokenOutcome) -> dict[str, Any]:
    if isinstance(outcome, Failed):
        return outcome.error
    if isinstance(outcome, Succeeded):
        return {"message": "result dropped: the lease was lost"}
    return {"message": "stopped: the lease was lost"}
