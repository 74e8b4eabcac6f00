"""A flight: one attempt — the tokens it holds under their lease, the job running for them,
and when it began — from the claim that made it to the write of its outcome. The runner keeps
its flights; the completer reads them."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from glisk_cli.pipeline import Stage, StageName
from glisk_cli.repositories.token_records import ClaimedToken
from glisk_cli.uow import UnitOfWork
from glisk_cli.work.jobs import Attempt, AttemptEnd, Job
from glisk_cli.work.options import WorkOptions


@dataclass
class Flight:
    tokens: list[ClaimedToken]
    attempt: Attempt | None = None
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    killed: str | None = None  # why the runner stopped it, if it did
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def history_id(self, kind: str, key: object) -> uuid.UUID:
        """The id of one history row this attempt writes, the same every time it is asked:
        a write retried after its commit was lost finds its rows there and adds none."""
        return uuid.uuid5(self.id, f"{kind}:{key}")

    def attach(self, attempt: Attempt) -> None:
        """The job started: from now on a kill reaches it (one asked for before, at once)."""
        with self._lock:
            self.attempt = attempt
            if self.killed is not None:
                attempt.kill(self.killed)

    def kill(self, reason: str) -> None:
        with self._lock:
            if self.killed is None:
                self.killed = reason
            if self.attempt is not None:
                self.attempt.kill(reason)


@dataclass(frozen=True)
class Landed:
    """A flight whose attempt is over, waiting to be written to the database."""

    flight: Flight
    end: AttemptEnd
    at: float = field(default_factory=time.monotonic)  # when it landed


def claim_flights(
    uow: UnitOfWork, stage: Stage, options: WorkOptions, limit: int, job: Job
) -> list[Flight]:
    """Claim up to `limit` tokens as flights of `options.batch` tokens; a generation attempt
    is recorded as running in the same transaction (docs/architecture.md, "The worker
    runner")."""
    tokens = uow.tokens.claim(stage.name.value, limit, options.worker, options.lease)
    size = options.batch
    flights = [Flight(tokens[at : at + size]) for at in range(0, len(tokens), size)]
    if stage.name is StageName.GENERATION and tokens:
        uow.image_jobs.start_running(tokens, job.name)
    return flights
