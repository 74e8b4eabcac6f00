"""What a runner tells people: one log line per attempt (JSON in production, through glisk's
logging), the counts the CLI's live line reads (`cli/work.py` draws it), and at exit a summary.

Counts are of tokens: a batch of ten that succeeds adds ten to `succeeded`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from glisk_cli.logging import log_each, logger
from glisk_cli.repositories.token_records import Backlog
from glisk_cli.work.completer import Recorded
from glisk_cli.work.jobs import Job
from glisk_cli.work.metrics import RunnerMetrics

log = logger.bind(component="work")


@dataclass
class Counts:
    """Tokens, by what became of their attempts."""

    started: float  # when the runner started (its clock)
    claimed: int = 0
    succeeded: int = 0
    retried: int = 0  # the attempt failed; the token is tried again after its backoff
    failed: int = 0  # failed for good: the token's attempts are used up
    lost: int = 0  # the outcome was dropped: the lease was lost while the job ran
    released: int = 0  # handed back unfinished at shutdown
    renewals: int = 0


class Report:
    def __init__(
        self,
        stage: str,
        worker: str,
        metrics: RunnerMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stage, self.worker, self.metrics, self.clock = stage, worker, metrics, clock
        self.counts = Counts(started=clock())
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

    def recorded(self, jobs: Sequence[Job], recorded: Recorded) -> None:
        counts = self.counts
        counts.succeeded += len(recorded.succeeded)
        counts.retried += len(recorded.retried)
        counts.failed += len(recorded.failed)
        counts.lost += len(recorded.lost)
        counts.released += len(recorded.released)
        seconds = {token.token_id: job.seconds for job in jobs for token in job.tokens}
        attempts = {token.token_id: token.attempts for job in jobs for token in job.tokens}
        for outcome, token_ids in (
            ("succeeded", recorded.succeeded),
            ("failed", [*recorded.retried, *recorded.failed]),
            ("lost", recorded.lost),
            ("released", recorded.released),
        ):
            if self.metrics:
                for token_id in token_ids:
                    self.metrics.attempt(outcome, seconds[token_id])
            lines = [
                (
                    f"attempt.{outcome}",
                    self._attempt_fields(token_id, attempts[token_id], seconds[token_id], recorded),
                )
                for token_id in token_ids
            ]
            log_each(log, "INFO" if outcome in ("succeeded", "released") else "WARNING", lines)

    def database_down(self, error: Exception) -> None:
        if self.database_down_since is None:
            self.database_down_since = self.clock()
            log.warning("database.unavailable", error=str(error), note="retrying; work goes on")

    def database_back(self) -> None:
        if self.database_down_since is not None:
            down = self.clock() - self.database_down_since
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
            "failed": counts.failed,
            "retried": counts.retried,
            "lost": counts.lost,
            "released": counts.released,
            "seconds": round(self.clock() - counts.started, 3),
        }

    def _attempt_fields(
        self, token_id: int, attempt: int, seconds: float, recorded: Recorded
    ) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "stage": self.stage,
            "token_id": token_id,
            "attempt": attempt,
            "seconds": seconds,
        }
        error = recorded.retried.get(token_id) or recorded.failed.get(token_id)
        if error is not None:
            fields["error"] = error.get("message")
            fields["final"] = token_id in recorded.failed
        return fields
