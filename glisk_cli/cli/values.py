"""Parsing and validating what operators type: durations, hashes, addresses, timestamps, JSON.

Each parser raises typer.BadParameter with a message naming the expected form, which the error
boundary reports as a usage error (exit 2) — never a traceback.
"""

from __future__ import annotations

import json
import re
import unicodedata
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, overload

import typer

from glisk_cli.durations import format_duration, parse_duration
from glisk_cli.pipeline import INTEGER_MAX, MAX_RETRY_DELAY, TX_HASH

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


def _parsed(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None


def duration(text: str | None) -> timedelta | None:
    if text is None:
        return None
    value = _parsed(text)
    if value <= timedelta(0):
        raise typer.BadParameter("must be longer than zero")
    return value


def delay(text: str | None) -> timedelta | None:
    """A retry delay: a duration, zero allowed, at most a week."""
    if text is None:
        return None
    value = _parsed(text)
    if value > MAX_RETRY_DELAY:
        raise typer.BadParameter(
            f"{text!r} is too long for a retry delay (at most {format_duration(MAX_RETRY_DELAY)})"
        )
    return value


@overload
def lease_id(text: str) -> uuid.UUID: ...
@overload
def lease_id(text: None) -> None: ...
def lease_id(text: str | None) -> uuid.UUID | None:
    if text is None:
        return None
    try:
        return uuid.UUID(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a lease id (a UUID)") from None


def tx_hash(text: str | None) -> str | None:
    if text is not None and TX_HASH.problem(text) is not None:
        raise typer.BadParameter(f"{text!r} is not a transaction hash ({TX_HASH.form})")
    return text


def address(text: str | None) -> str | None:
    if text is not None and not _ADDRESS.fullmatch(text):
        raise typer.BadParameter(f"{text!r} is not an address (0x and 40 hex digits)")
    return text


BIGINT_MAX = 2**63 - 1  # a bigint column: block_number


def _not_negative(value: int | None, most: int) -> int | None:
    if value is not None and not 0 <= value <= most:
        raise typer.BadParameter(f"{value} is not a whole number from 0 to {most}")
    return value


def integer(value: int | None) -> int | None:
    """A whole number an integer column holds, not negative (a token id, a log index)."""
    return _not_negative(value, INTEGER_MAX)


def bigint(value: int | None) -> int | None:
    """A whole number a bigint column holds, not negative (a block number)."""
    return _not_negative(value, BIGINT_MAX)


def timestamp(text: str | None) -> datetime | None:
    """ISO 8601 with a time zone (`2026-01-01T12:00:00Z`), or Unix seconds (always UTC)."""
    if text is None:
        return None
    if re.fullmatch(r"\d{1,12}", text):
        return datetime.fromtimestamp(int(text), tz=UTC)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a timestamp (use ISO 8601 like 2026-01-01T12:00:00Z, or Unix seconds)"
        ) from None
    if value.tzinfo is None:
        raise typer.BadParameter(f"{text!r} has no time zone (add Z or an offset like +00:00)")
    return value.astimezone(UTC)


STATE_KEY_MAX = 255  # system_state.key is varchar(255)


def state_key(text: str) -> str:
    """A system_state key: 1 to 255 characters, none of them a control character."""
    if not text:
        raise typer.BadParameter("a state key cannot be empty")
    if any(unicodedata.category(char) == "Cc" for char in text):
        raise typer.BadParameter("a state key cannot hold control characters")
    if len(text) > STATE_KEY_MAX:
        raise typer.BadParameter(
            f"a state key is at most {STATE_KEY_MAX} characters, not {len(text)}"
        )
    return text


def json_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as error:
        raise typer.BadParameter(f"not valid JSON: {error}") from None


def json_object(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    value = json_value(text)
    if not isinstance(value, dict):
        raise typer.BadParameter('must be a JSON object, like {"reason": "..."}')
    return value
