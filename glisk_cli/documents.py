"""Pipeline data as JSON documents: one shape for a token wherever glisk hands one out.

`glisk tokens show --json` prints it, `glisk tokens claim --json` prints a list of it, and
`glisk work` writes it to a worker's stdin, so a script written against one reads the others.
It lives below the CLI because the worker runner, a library too, needs it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from glisk_cli.repositories.token_records import TOKEN_COLUMNS

if TYPE_CHECKING:
    from glisk_cli.models import Token
    from glisk_cli.repositories.token_records import ClaimedToken


def token_document(token: Token | ClaimedToken) -> dict[str, Any]:
    """A token as one JSON object: the same keys in the same order for every command (README,
    "Commands"); scripts rely on them."""
    return dict(zip(TOKEN_COLUMNS, _token_fields(token), strict=True))


_token_fields = attrgetter(*TOKEN_COLUMNS)


def to_json(value: Any) -> str:
    """`value` as JSON text, with what `jsonable` converts converted the same way, in one pass
    of the standard library's C encoder (the worker runner writes a document per attempt)."""
    return json.dumps(value, ensure_ascii=False, default=_json_default)


def _json_default(value: Any) -> Any:
    """What the encoder cannot write itself (it writes str and int subclasses as such)."""
    convert = _BY_TYPE.get(type(value))  # the usual types, without a chain of isinstance
    if convert is not None:
        return convert(value)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset):
        return list(value)
    converted = jsonable(value)
    if converted is value:
        raise TypeError(f"{type(value).__name__} is not JSON serializable")
    return converted


def jsonable(value: Any) -> Any:
    """Convert what repositories return into JSON types: UUIDs as strings, times in ISO 8601."""
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(item) for item in value]
    if isinstance(value, datetime):
        return _iso_time(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, UUID | Path | date | Decimal):
        return str(value)
    return value


def _iso_time(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


_BY_TYPE: dict[type, Callable[[Any], Any]] = {UUID: str, datetime: _iso_time}
