"""Human durations such as `90s`, `15m`, `1h30m` (leases, timeouts, waits), and durations and
times as a sentence says them (`3m 05s`, `2026-12-06T18:00:00Z`)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration(text: str) -> timedelta:
    """Parse `90s`, `15m`, `1h`, `1h30m`, `250ms` or a bare number of seconds.

    Raises ValueError with a message fit to show a user; never returns a negative duration.
    """
    spec = text.strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", spec):
        spec += "s"
    parts = _PART.findall(spec)
    if not spec or "".join(number + unit for number, unit in parts) != spec:
        raise ValueError(
            f"invalid duration {text!r}: use a number with a unit, like 90s, 15m, 1h or 1h30m"
        )
    try:
        return timedelta(seconds=sum(float(n) * _UNIT_SECONDS[unit] for n, unit in parts))
    except OverflowError:
        raise ValueError(f"invalid duration {text!r}: too long") from None


def format_duration(value: timedelta) -> str:
    """The inverse of parse_duration for whole seconds: 900 s → `15m`, 5400 s → `1h30m`."""
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0s"
    out = ""
    for unit in ("d", "h", "m", "s"):
        count, seconds = divmod(seconds, int(_UNIT_SECONDS[unit]))
        if count:
            out += f"{count}{unit}"
    return out


def in_words(value: timedelta | float) -> str:
    """`42s`, `3m 05s`, `14h 47m`, `2d 03h`: the two largest units, the second padded."""
    seconds = abs(int(value.total_seconds() if isinstance(value, timedelta) else value))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def moment(value: datetime) -> str:
    """A time in a sentence: to the second, in UTC (`2026-12-06T18:00:00Z`)."""
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
