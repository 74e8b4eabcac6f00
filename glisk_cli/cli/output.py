"""How commands print: data on stdout (a Rich table, or exactly one JSON document with --json),
messages on stderr. Every command goes through these helpers, so the streams never mix.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import typer

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print exactly one JSON document on stdout.")
]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def jsonable(value: Any) -> Any:
    """Convert what repositories return into JSON types: UUIDs as strings, times in ISO 8601."""
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, UUID | Path | date | Decimal):
        return str(value)
    return value


def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(jsonable(document), ensure_ascii=False) + "\n")


def print_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str], *, title: str = ""
) -> None:
    """A Rich table on a terminal; plain aligned text when piped (Rich decides)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title or None, show_lines=False, expand=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(row.get(column)) for column in columns))
    Console(soft_wrap=True).print(table)


def print_record(record: Mapping[str, Any], *, title: str = "") -> None:
    """One object as a two-column field/value table."""
    rows = [{"field": key, "value": value} for key, value in record.items()]
    print_table(rows, ["field", "value"], title=title)


def emit(document: Any, *, as_json: bool, columns: Sequence[str] = (), title: str = "") -> None:
    """Print a command's result: JSON when asked, else a table of `columns` (or field/value)."""
    if as_json:
        print_json(document)
    elif isinstance(document, Mapping):
        print_record(document, title=title)
    else:
        print_table(document, columns, title=title)


def say(message: str) -> None:
    """A message for the person at the terminal (stderr), never part of the data."""
    sys.stderr.write(message + "\n")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    rendered = jsonable(value)
    return rendered if isinstance(rendered, str) else json.dumps(rendered, ensure_ascii=False)


def confirm_or_refuse(question: str, *, yes: bool) -> None:
    """Ask before a destructive change; without a terminal, only `--yes` may proceed (exit 2)."""
    from glisk_cli.errors import InvalidInput

    if yes:
        return
    if not sys.stdin.isatty():
        raise InvalidInput(f"{question} — refusing without a terminal", hint="pass --yes")
    if not typer.confirm(question, default=False, err=True):
        raise InvalidInput("not confirmed; nothing was changed")
