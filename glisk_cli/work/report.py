"""What a runner tells people: one log line per attempt (JSON in production, through glisk's
logging), the counts the CLI's live line reads (`cli/work.py` draws it), and at exit a summary.

Counts are of tokens: a batch of ten that succeeds adds ten to `succeeded`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from glisk_cli.logging import log_each, logger
from glisk_cli.repositories.token_records import Backlog
from glisk_cli.work.completer import Written
from glisk_cli.work.flights import Landed
from glisk_cli.work.metrics import RunnerMetrics

log = logger.bind(component="work")


@dataclass
class Counts:
    claimed: int = 0
    succeeded: int = 0
    failed: int = 0  # attempts that failed, whether retried later or failed for good
    retried: int = 0
    exhausted: int = 0  # failed for good: max_attempts used up
    lost: int = 0  # outcomes dropped: the lease was lost while the work ran
    released: int = 0  # handed back unfinished at shutdown
    renewals: int = 0
    started: float = field(default_factory=time.monotonic)


class Report:
    def __init__(self, stage: str, worker: str, metrics: RunnerMetrics | None = None) -> None:
        self.stage, self.worker, self.metrics = stage, worker, metrics
        self.counts = Counts()
        self.running = 0
        self.backlog: Backlog | None = None
        self.database_down_since: float | None = None

    # -- events ----------------------------------------------------------------------------

    def claimed(self, tokens: int) -> None:
        self.counts.claimed += tokens

    def set_running(self, attempts: int) -> None:
        self.running = attempts
        if self.metrics:
            self.metrics.in_flight.labels(self.stage).set(attempts)

    def renewed(self, held: int, lost: list[int]) -> None:
        self.counts.renewals += held
        if self.metrics:
            self.metrics.renewals.labels(self.stage).inc(held)
            self.metrics.lost.labels(self.stage).inc(len(lost))
        for token_id in lost:
            log.warning("lease.lost", token_id=token_id, note="taken over; its attempt is killed")

    def written(self, landed: list[Landed], written: Written) -> None:
        counts = self.counts
        counts.succeeded += len(written.succeeded)
        counts.retried += len(written.retried)
        counts.exhausted += len(written.exhausted)
        counts.failed += len(written.retried) + len(written.exhausted)
        counts.lost += len(written.lost)
        counts.released += len(written.released)
        seconds = {t.token_id: item.end.seconds for item in landed for t in item.flight.tokens}
        attempts = {t.token_id: t.attempts for item in landed for t in item.flight.tokens}
        for outcome, token_ids in (
            ("succeeded", written.succeeded),
            ("failed", [*written.retried, *written.exhausted]),
            ("lost", written.lost),
            ("released", written.released),
        ):
            if self.metrics:
                for token_id in token_ids:
                    self.metrics.attempt(outcome, seconds[token_id])
            lines = [
                (f"attempt.{outcome}", self._attempt_fields(
                    token_id, attempts[token_id], seconds[token_id], written
                ))
                for token_id in token_ids
            ]  # fmt: skip
            log_each(log, "INFO" if outcome in ("succeeded", "released") else "WARNING", lines)

    def database_down(self, error: Exception) -> None:
        if self.database_down_since is None:
            self.database_down_since = time.monotonic()
            log.warning("database.unavailable", error=str(error), note="retrying; work goes on")

    def database_back(self) -> None:
        if self.database_down_since is not None:
            down = time.monotonic() - self.database_down_since
            self.database_down_since = None
            log.warning("database.back", seconds_down=round(down, 1))

    def summary(self, reason: str) -> dict[str, Any]:
        counts = self.counts
        return {
            "stage": self.stage,
            "worker": self.worker,
            "stopped": reason,
            "claimed": counts.claimed,
            "succeeded": counts.succeeded,
            "failed": counts.exhausted,
            "retried": counts.retried,
            "lost": counts.lost,
            "released": counts.released,
            "seconds": round(time.monotonic() - counts.started, 3),
        }

    def _attempt_fields(
        self, token_id: int, attempt: int, seconds: float, written: Written
    ) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "stage": self.stage, "token_id": token_id, "attempt": attempt, "seconds": seconds
        }  # fmt: skip
        error = written.retried.get(token_id) or written.exhausted.get(token_id)
        if error is not None:
            fields["error"] = error.get("message")
            fields["final"] = token_id in written.exhausted
        return fields
