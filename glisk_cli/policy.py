"""The numbers glisk works by unless settings say otherwise: how long it waits, how it treats work.

Plain values with defaults, so the CLI's settings (`config.py`), the database handle and the
repositories all start from the same numbers, and a worker that builds its Unit of Work without
reading the environment still behaves as `glisk tokens claim` and `glisk tokens reap` do with no
settings made.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class Timeouts:
    """How long a connection waits before giving up; None means no limit."""

    connect: timedelta = timedelta(seconds=5)
    lock: timedelta | None = timedelta(seconds=5)
    statement: timedelta | None = timedelta(seconds=30)


@dataclass(frozen=True)
class QueuePolicy:
    """How the token queue treats work: claims per stage before failing, the default lease."""

    max_attempts: int = 5
    lease: timedelta = timedelta(minutes=15)
