"""What people read: durations, ages and leases in words, times to the second in UTC, long
identifiers shortened in the middle, and whether the output may use colour.

Every command's human output formats through here (`--json` documents never do), in the spirit
of the `gh` CLI: relative times and shortened values on a terminal, full values in `--json` and
`tokens show`.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import IO, Any

from glisk_cli.durations import in_words

ELLIPSIS = "…"


duration = in_words  # `42s`, `3m 05s`, `14h 47m`, `2d 03h`


def relative(when: datetime, now: datetime) -> str:
    """`in 8m 12s` for a time to come, `3m 05s ago` for one gone by."""
    delta = when - now
    return f"in {duration(delta)}" if delta > timedelta(0) else f"{duration(delta)} ago"


def lease(expires: datetime | None, holder: str | None, now: datetime) -> str:
    """A lease as a person asks about it: how long is left, or since when it is over. A lease
    without a holder is a retry delay."""
    if expires is None:
        return "-"
    left = expires - now
    if holder is None:
        return f"retry in {duration(left)}" if left > timedelta(0) else "retry due"
    return f"in {duration(left)}" if left > timedelta(0) else f"expired {duration(left)} ago"


def timestamp(value: datetime | None) -> str:
    """To the second, in UTC: `2026-11-29 01:57:54Z`."""
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def middle(text: str | None, width: int) -> str:
    """`text` shortened in the middle to `width` characters (`0xc4ca…849b`)."""
    if text is None:
        return "-"
    if len(text) <= width:
        return text
    tail = (width - 1) // 2
    return text[: width - 1 - tail] + ELLIPSIS + text[len(text) - tail :]


def end(text: str | None, width: int) -> str:
    """`text` cut at `width` characters, with an ellipsis when something was left out."""
    if text is None:
        return "-"
    text = " ".join(text.split())  # one line
    return text if len(text) <= width else text[: width - 1] + ELLIPSIS


def first_line(value: Any) -> str:
    """An error's first line (from a message, or an `error_data` document's message)."""
    if isinstance(value, dict):
        value = value.get("message") or value.get("reason") or ""
    lines = str(value or "").strip().splitlines()
    return lines[0] if lines else "-"


def colour(stream: IO[str]) -> bool:
    """Whether `stream` may be coloured: a terminal, and NO_COLOR unset (no-color.org)."""
    return stream.isatty() and not os.environ.get("NO_COLOR")


def now() -> datetime:
    return datetime.now(UTC)
