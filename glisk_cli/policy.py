"""What glisk works by unless settings say otherwise: how long it waits, how it treats work,
how it backs off, and who a worker is.

Plain values with defaults, so the CLI's settings (`config.py`), the database handle and the
repositories all start from the same numbers, and a worker that builds its Unit of Work without
reading the environment still behaves as `glisk tokens claim` and `glisk tokens reap` do with no
settings made.
"""

from __future__ import annotations

import os
import random
import socket
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class Timeouts:
    """How long a connection waits before giving up; None means no limit."""

    connect: timedelta = timedelta(seconds=5)
    lock: timedelta | None = timedelta(seconds=5)
    statement: timedelta | None = timedelta(seconds=30)


@dataclass(frozen=True)
class Backoff:
    """Waits that grow exponentially from `base`, doubling per try up to `cap`, with "equal
    jitter" — half of each wait fixed, half random — so that what failed together does not come
    back together, and no retry comes sooner than half its wait."""

    base: timedelta
    cap: timedelta

    def delay(self, tries: int, rng: random.Random | None = None) -> timedelta:
        """The wait after the `tries`-th failure in a row (1, 2, …)."""
        exponent = min(max(tries, 1) - 1, 32)  # 2**32 times any base is past any sane cap
        delay = min(self.cap, self.base * 2**exponent)
        return delay / 2 + delay / 2 * (rng or random).random()


@dataclass(frozen=True)
class QueuePolicy:
    """How the token queue treats work: claims per stage before failing, the default lease,
    and how long a failed attempt waits before its token may be claimed again."""

    max_attempts: int = 5
    lease: timedelta = timedelta(minutes=15)
    retry_base: timedelta = timedelta(seconds=10)
    retry_max: timedelta = timedelta(minutes=10)

    def retry_delay(self, attempt: int, rng: random.Random | None = None) -> timedelta:
        """The wait after failed attempt number `attempt` (1, 2, …): the backoff from
        `retry_base` up to `retry_max`."""
        return Backoff(self.retry_base, self.retry_max).delay(attempt, rng)


def default_worker() -> str:
    """Who holds the leases a process takes unless told otherwise: `hostname:pid`."""
    return f"{socket.gethostname()}:{os.getpid()}"
