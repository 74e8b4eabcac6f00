"""PipelineView: one reading of the whole pipeline for `glisk top`, as typed records.

Per stage: the tokens waiting (nobody holds them, a lease ran out, or a retry delay), the tokens
in flight (a live lease), what the stage finished in each of the last 60 minutes, and the oldest
waiting mint, and its flow control (`uow.stages`: paused, cooling down, its limits and the jobs
running). Per worker: its live and expired leases. Failures in the last hour by reason and the
newest few. Six statements, each served by an index (`pipeline_view_sql.py`, and the stages'
controls with their live leases, from the lease index), so a refresh costs the same on a
million tokens as on a thousand, whatever history has piled up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from glisk_cli.db.planner import PlannerSettings
from glisk_cli.db.transaction import Transaction
from glisk_cli.flow import StageState
from glisk_cli.pipeline import STAGE_OF, StageName, TokenStatus
from glisk_cli.repositories import pipeline_view_sql as sql
from glisk_cli.repositories.stage_controls import StageControls
from glisk_cli.repositories.token_sql import IN_INDEX_ORDER, THROUGH_INDEXES
from glisk_cli.why import last_renewal

MINUTES = 60  # the history a reading covers, minute by minute


@dataclass
class StageReading:
    stage: StageName
    free: int = 0  # nobody holds them; counted up to COUNT_CAP, estimated beyond
    free_exact: bool = True
    expired: int = 0  # a worker held them and its lease ran out: the next claim takes them over
    retrying: int = 0  # released after a failure, held by nobody until their delay is over
    in_flight: int = 0  # held under a live lease
    oldest_waiting_mint: datetime | None = None
    done_per_minute: list[int] = field(default_factory=lambda: [0] * MINUTES)  # [0]: last minute

    @property
    def waiting(self) -> int:
        return self.free + self.expired + self.retrying


@dataclass
class WorkerReading:
    name: str
    stages: set[StageName] = field(default_factory=set)
    live: int = 0
    expired: int = 0
    soonest_expiry: datetime | None = None  # of its live leases
    last_renewal: datetime | None = None


@dataclass(frozen=True)
class FailureReading:
    at: datetime
    stage: str | None  # None for a token an operator failed outside any stage's work
    token_id: int | None
    error: Any  # the error_data document, as recorded


@dataclass
class PipelineReading:
    at: datetime  # the database clock when it was read
    stages: dict[StageName, StageReading]
    workers: list[WorkerReading]
    failures_by_reason: dict[str, int]
    recent_failures: list[FailureReading]
    controls: dict[StageName, StageState] = field(default_factory=dict)  # flow control


class PipelineView:
    """Reads the pipeline for `glisk top` inside the Unit of Work's transaction."""

    def __init__(self, transaction: Transaction) -> None:
        self.transaction = transaction

    def read(self, lease: timedelta) -> PipelineReading:
        """The pipeline now. `lease` is the configured lease (GLISK_LEASE), from which a
        worker's last renewal is worked out (`why.last_renewal`)."""
        stages = {stage: StageReading(stage) for stage in StageName}
        now: datetime | None = None
        # Counting stops at the cap only if the queue index is read in order, not as a bitmap.
        for name, free, oldest, read_at in self._rows(sql.QUEUES, IN_INDEX_ORDER):
            now = read_at
            reading = stages[StageName(name)]
            reading.free, reading.oldest_waiting_mint = free, oldest
            if free > sql.COUNT_CAP:
                # Counted past the cap, so never fewer, whatever the planner guesses (a table
                # never analysed makes it guess a handful).
                estimate = max(self._estimate(reading.stage), sql.COUNT_CAP + 1)
                reading.free, reading.free_exact = estimate, False
        assert now is not None  # QUEUES has a row per stage
        workers = self._leases(stages, lease, now)
        for name, minute, count in self._rows(sql.DONE):
            if minute < MINUTES:
                stages[StageName(name)].done_per_minute[minute] += int(count)
        by_reason = {str(reason): int(count) for reason, count in self._rows(sql.FAILURES)}
        recent = [FailureReading(*row) for row in self._rows(sql.RECENT)]
        states = StageControls(self.transaction).states()
        controls = {StageName(state.stage): state for state in states}
        return PipelineReading(now, stages, workers, by_reason, recent, controls)

    def _leases(
        self, stages: dict[StageName, StageReading], lease: timedelta, now: datetime
    ) -> list[WorkerReading]:
        workers: dict[str, WorkerReading] = {}
        for row in self._rows(sql.LEASES, THROUGH_INDEXES):  # the lease index: leased tokens
            status, holder, live, expired, retrying, soonest, latest, updated, oldest = row
            stage = STAGE_OF.get(TokenStatus(status))
            if stage is None:  # a finished token never keeps a lease
                continue
            reading = stages[stage.name]
            reading.in_flight += live
            reading.expired += expired
            reading.retrying += retrying
            if oldest is not None and (
                reading.oldest_waiting_mint is None or oldest < reading.oldest_waiting_mint
            ):
                reading.oldest_waiting_mint = oldest
            if holder is None:
                continue
            worker = workers.setdefault(holder, WorkerReading(holder))
            worker.stages.add(stage.name)
            worker.live += live
            worker.expired += expired
            if soonest is not None:
                worker.soonest_expiry = min(filter(None, (worker.soonest_expiry, soonest)))
            renewal = last_renewal(latest, updated, lease, now)
            if renewal is not None:
                worker.last_renewal = max(filter(None, (worker.last_renewal, renewal)))
        return sorted(workers.values(), key=lambda worker: worker.name)

    def _estimate(self, stage: StageName) -> int:
        """PostgreSQL's estimate of a stage's free tokens (planner statistics: no rows read)."""
        ((plan,),) = self._rows(sql.estimate(stage))
        return int(plan[0]["Plan"]["Plan Rows"])

    def _rows(
        self, statement: str, planner: PlannerSettings | None = None
    ) -> list[tuple[Any, ...]]:
        return list(self.transaction.rows(statement, {}, planner))
