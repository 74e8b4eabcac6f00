"""What a runner is asked to do (`glisk work` options), checked once before anything is claimed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from glisk_cli.durations import format_duration
from glisk_cli.errors import InvalidInput
from glisk_cli.pipeline import MAX_BATCH, MAX_LEASE, StageName

MIN_LEASE = timedelta(seconds=1)  # renewed every third of it: shorter is all round trips
MAX_TIMEOUT = timedelta(days=1)
MAX_CONCURRENCY = 256


@dataclass(frozen=True)
class WorkOptions:
    """One runner's settings. The lease is short by default because the runner renews it
    every third of its length while a job runs: a crashed runner's tokens come back within a
    minute, however long the jobs are."""

    stage: StageName
    worker: str
    concurrency: int = 1
    lease: timedelta = timedelta(seconds=60)
    timeout: timedelta | None = None
    grace: timedelta = timedelta(seconds=30)
    batch: int = 1
    drain: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.concurrency <= MAX_CONCURRENCY:
            raise InvalidInput(f"--concurrency must be 1 to {MAX_CONCURRENCY}")
        if not MIN_LEASE <= self.lease <= MAX_LEASE:
            raise InvalidInput(
                f"--lease must be at least {format_duration(MIN_LEASE)} "
                f"and at most {format_duration(MAX_LEASE)}"
            )
        if self.timeout is not None and not timedelta(0) < self.timeout <= MAX_TIMEOUT:
            raise InvalidInput(
                f"--timeout must be longer than zero and at most {format_duration(MAX_TIMEOUT)}"
            )
        if self.grace < timedelta(0):
            raise InvalidInput("--grace cannot be negative")
        if not 1 <= self.batch <= MAX_BATCH:
            raise InvalidInput(f"--batch must be 1 to {MAX_BATCH}")
        if not self.worker:
            raise InvalidInput("--worker cannot be empty")

    @property
    def lease_deadline(self) -> float:
        """Seconds from sending a claim or renewal to the moment its jobs are killed if no
        renewal has landed since: a fifth of the lease before it could run out, for the kill to
        take effect and for the clocks (docs/architecture.md, "Jobs never outlive their
        lease")."""
        return self.lease.total_seconds() * 0.8

    @property
    def renew_every(self) -> float:
        """Seconds between renewals: a third of the lease, so two may fail before it lapses."""
        return self.lease.total_seconds() / 3
