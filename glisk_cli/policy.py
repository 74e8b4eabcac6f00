"""The numbers glisk works by unless settings say otherwise: how long it waits, how it treats work.

Plain values with defaults, so the CLI's settings (`config.py`), the database handle and the
repositories all start from the same numbers, and a worker that builds its Unit of Work without
reading the environment still behaves as `glisk tokens claim` and `glisk tokens reap` do with no
settings made.
"""

from __future__ import annotations

import random
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
    """How the token queue treats work: claims per stage before failing, the default lease,
    and how long a failed attempt waits before its token may be claimed again."""

    max_attempts: int = 5
    lease: timedelta = timedelta(minutes=15)
    retry_base: timedelta = timedelta(seconds=10)
    retry_max: timedelta = timedelta(minutes=10)

    def retry_delay(self, attempt: int, rng: random.Random | None = None) -> timedelta:
        """The wait after failed attempt number `attempt` (1, 2, …): exponential from
        `retry_base`, capped at `retry_max`, with "equal jitter" — half the delay fixed, half
        random — so the retries of a batch that failed together spread out instead of
        returning together, and no retry comes sooner than half its delay."""
        exponent = min(max(attempt, 1) - 1, 32)  # 2**32 times any base is past any sane cap
        delay = min(self.retry_max, self.retry_base * 2**exponent)
        return delay / 2 + delay / 2 * (rng or random).random()
