"""Array parameters sent as one PostgreSQL array literal.

The batch statements take their rows as parallel arrays (`unnest(%(ids)s::uuid[], …)`). Given
a Python list, psycopg dumps it element by element in Python, with a regular expression per
element to decide its quoting; given the array's literal as one string, it sends the string as
it is, and the worker runner sends several such arrays every turn (docs/architecture.md, "The
workers' path below the ORM").
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any


def array_literal(values: Iterable[object]) -> str:
    """`values` as the text of a PostgreSQL array, for a `%(name)s::type[]` parameter: None is
    NULL; bool, int and UUID are written bare (a UUID as its 32 digits); timedelta as an
    interval, datetime in ISO 8601, a mapping as JSON; anything else as its text, quoted."""
    return "{" + ",".join([_WRITERS.get(type(value), _other)(value) for value in values]) + "}"


def random_uuids(count: int) -> str:
    """The array literal of `count` new random UUIDs (version 4, as `uuid.uuid4` makes them),
    from one read of the system's randomness rather than a UUID object each: a claim of a
    thousand one-token jobs needs a thousand lease ids."""
    raw = bytearray(os.urandom(16 * count))
    raw[6::16] = bytes(byte & 0x0F | 0x40 for byte in raw[6::16])  # version 4
    raw[8::16] = bytes(byte & 0x3F | 0x80 for byte in raw[8::16])  # the RFC 4122 variant
    digits = raw.hex()
    return "{" + ",".join([digits[at : at + 32] for at in range(0, len(digits), 32)]) + "}"


def _quoted(text: str) -> str:
    # Inside double quotes only the backslash and the double quote are special.
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _other(value: object) -> str:
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, timedelta):
        return f'"{value.total_seconds()} seconds"'
    if isinstance(value, datetime):
        return _quoted(value.isoformat())
    if isinstance(value, Mapping):
        return _quoted(json.dumps(value, ensure_ascii=False))
    return _quoted(str(value))


# The common types by exact type, without a chain of isinstance checks (subclasses and the
# rest go through `_other`).
_WRITERS: dict[type, Callable[[Any], str]] = {
    type(None): lambda _: "NULL",
    bool: lambda value: "t" if value else "f",
    int: str,
    uuid.UUID: lambda value: value.hex,  # 32 digits: PostgreSQL reads a UUID without dashes
    str: _quoted,
    datetime: lambda value: f'"{value.isoformat()}"',  # ISO 8601 holds no quote or backslash
}
