"""A job: the tokens leased to a runner under one lease id to work on together — one token, or a
batch (`--batch`) — run once by the program, from the claim to the write of its outcomes. Each
of its tokens counts the job as one attempt, and a stage's concurrency limit counts it once.
The runner keeps its jobs, the executor runs them, the completer writes what they came to."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from glisk_cli.repositories.token_records import ClaimedToken
from glisk_cli.work.programs import Run
from glisk_cli.work.protocol import TokenOutcome

# Why the runner stopped a job when no renewal of its lease landed in time: before the lease
# could run out, so that no claim can take its tokens over while it runs.
LEASE_EXPIRING = "lease_expiring"


@dataclass(eq=False)
class Job:
    tokens: list[ClaimedToken]
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    run: Run | None = None  # the program, once it runs
    killed: str | None = None  # why the runner stopped it, if it did
    outcomes: dict[uuid.UUID, TokenOutcome] | None = None  # each token's, once the run is over
    seconds: float = 0.0  # how long the run took
    ended_at: float = 0.0  # when the runner learnt that it was over (the runner's clock)
    # Past this moment (the runner's clock) the lease could run out: the job is killed before,
    # whoever is left to do it (the runner, or its watchdog). Pushed back by every renewal.
    deadline: float = float("inf")
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def history_id(self, kind: str, key: object) -> uuid.UUID:
        """The id of one history row this job writes, the same every time it is asked: a write
        retried after its commit was lost finds its rows there and adds none."""
        return uuid.uuid5(self.id, f"{kind}:{key}")

    def attach(self, run: Run) -> None:
        """The program started: from now on a kill reaches it (one asked for before, at once)."""
        with self._lock:
            self.run = run
            if self.killed is not None:
                run.kill(self.killed)

    def kill(self, reason: str) -> None:
        with self._lock:
            if self.killed is None:
                self.killed = reason
            if self.run is not None:
                self.run.kill(reason)

    def end(self, outcomes: dict[uuid.UUID, TokenOutcome], seconds: float) -> Job:
        """The run is over: what it came to for each token, and how long it took."""
        self.outcomes, self.seconds = outcomes, seconds
        return self
