"""Flow control's vocabulary: a stage's controls as the claim sees them (paused, cooling down,
at its concurrency limit, rate-limited), rates as people write them (`10/s`, `30/m`), and why a
stage starts no job now — no database here, so it is tested with plain values
(docs/architecture.md, "Flow control in the claim").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from glisk_cli.durations import moment
from glisk_cli.errors import InvalidInput

RATE_PERIODS = {"s": 1, "m": 60}  # a rate's unit, and its seconds
MAX_RATE = 100_000  # starts per period; more is no limit at all
MAX_COOLDOWN = timedelta(days=1)
MAX_PAUSE_REASON = 500
_RATE = re.compile(r"(\d+)/(s|m)")


@dataclass(frozen=True)
class Rate:
    """At most `jobs` job starts per `seconds` (1 or 60), fleet-wide."""

    jobs: int
    seconds: int

    @property
    def per_second(self) -> float:
        return self.jobs / self.seconds

    def __str__(self) -> str:
        unit = next(unit for unit, seconds in RATE_PERIODS.items() if seconds == self.seconds)
        return f"{self.jobs}/{unit}"


def parse_rate(text: str) -> Rate:
    """`10/s` or `30/m` as a Rate; InvalidInput for anything else, or zero."""
    found = _RATE.fullmatch(text.strip().lower())
    if found is None:
        raise InvalidInput(f"invalid rate {text!r}: use starts per second or minute, like 10/s")
    jobs = int(found[1])
    if not 1 <= jobs <= MAX_RATE:
        raise InvalidInput(
            f"invalid rate {text!r}: from 1 to {MAX_RATE} per unit (to stop a stage, pause it)"
        )
    return Rate(jobs, RATE_PERIODS[found[2]])


@dataclass(frozen=True)
class Blocked:
    """Why a stage starts no job now, in a word (`paused`, `cooling_down`, `at_limit`,
    `rate_limited`), in a sentence, and until when, if that is known."""

    reason: str
    message: str
    until: datetime | None = None


@dataclass(frozen=True)
class StageState:
    """A stage's controls and what they hold back, read at the database's `now`."""

    stage: str
    now: datetime
    paused_at: datetime | None
    pause_reason: str | None
    paused_until: datetime | None
    concurrency: int | None
    running: int  # jobs running now, fleet-wide: live leases of the stage
    holders: tuple[str, ...]  # the workers that run them
    rate: Rate | None
    burst: int
    bucket: float | None  # what the rate's bucket holds now
    cooldown_until: datetime | None
    cooldown_reason: str | None

    @property
    def paused(self) -> bool:
        return self.paused_at is not None and (
            self.paused_until is None or self.paused_until > self.now
        )

    @property
    def cooling_down(self) -> bool:
        return self.cooldown_until is not None and self.cooldown_until > self.now

    @property
    def state(self) -> str:
        """`paused`, `cooling_down` or `running` (what `glisk stage list` shows first)."""
        return "paused" if self.paused else "cooling_down" if self.cooling_down else "running"

    @property
    def limited(self) -> bool:
        """Whether claims of the stage count jobs or spend a bucket (they take turns then)."""
        return self.concurrency is not None or self.rate is not None

    @property
    def next_start_at(self) -> datetime | None:
        """When the rate's bucket next holds a whole start; None: it does now (or no rate)."""
        if self.rate is None or self.bucket is None or self.bucket >= 1:
            return None
        return self.now + timedelta(seconds=(1 - self.bucket) / self.rate.per_second)

    def blocked(self) -> Blocked | None:
        """Why no job of the stage may start now; None when one may."""
        if self.paused:
            said = f": {self.pause_reason}" if self.pause_reason else ""
            until = f" until {moment(self.paused_until)}" if self.paused_until else ""
            return Blocked(
                "paused", f"stage {self.stage} is paused{until}{said}", self.paused_until
            )
        if self.cooling_down:
            assert self.cooldown_until is not None
            said = f" ({self.cooldown_reason})" if self.cooldown_reason else ""
            return Blocked(
                "cooling_down",
                f"stage {self.stage} is cooling down until {moment(self.cooldown_until)}{said}",
                self.cooldown_until,
            )
        if self.concurrency is not None and self.running >= self.concurrency:
            by = f", by {', '.join(self.holders)}" if self.holders else ""
            return Blocked(
                "at_limit",
                f"stage {self.stage} is at its concurrency limit "
                f"({self.running} of {self.concurrency} jobs running{by})",
            )
        if (next_start := self.next_start_at) is not None:
            return Blocked(
                "rate_limited",
                f"stage {self.stage} is rate-limited to {self.rate} "
                f"(next start at {moment(next_start)})",
                next_start,
            )
        return None
