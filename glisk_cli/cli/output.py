"""How commands print: data on stdout (a Rich table, or exactly one JSON document with --json),
messages on stderr. Every command goes through these helpers, so the streams never mix.
"""

from __future__ import annotations

import io
import json
import shutil
import sys
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import typer

from glisk_cli.documents import jsonable

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print exactly one JSON document on stdout.")
]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(jsonable(document), ensure_ascii=False) + "\n")


def print_table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    *,
    title: str = "",
    fold: bool = False,
    elastic: str | None = None,
) -> None:
    """A table for people: on a terminal sized to it, with a header rule and colour (a row's
    `_style`, say "red" for stalled work); piped or with NO_COLOR, plain aligned text. A cell
    never wraps unless `fold`: it is cut with an ellipsis, and the full value is in `--json`.
    When the table is too wide, the `elastic` column (default: the last) gives way first; the
    others keep their width up to MAX_KEPT, so an id is never cut to make room for a message."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from glisk_cli.cli.humanize import colour

    terminal, coloured = sys.stdout.isatty(), colour(sys.stdout)
    table = Table(
        title=title or None,
        box=box.SIMPLE_HEAD if terminal else None,
        show_edge=False,
        pad_edge=False,
        header_style="bold" if coloured else "",
        title_style="bold" if coloured else "",
    )
    width = shutil.get_terminal_size((80, 24)).columns
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    giving_way = elastic if elastic is not None else columns[-1] if columns else None
    kept = {
        column: min(max([len(column), *(len(line[index]) for line in cells)]), MAX_KEPT)
        for index, column in enumerate(columns)
        if column != giving_way
    }
    # What is left once the others have their width and the two spaces between columns.
    left = max(width - sum(kept.values()) - 2 * (len(columns) - 1), len(giving_way or ""))
    for column in columns:
        table.add_column(
            column,
            no_wrap=not fold,
            overflow="fold" if fold else "ellipsis",
            min_width=kept.get(column),
            max_width=left if column == giving_way else None,
        )
    for row, line in zip(rows, cells, strict=True):
        style = row.get("_style") if coloured else None
        table.add_row(*line, style=style)
    console = Console(
        file=io.StringIO(),
        width=width,
        highlight=False,
        force_terminal=coloured,
        color_system="standard" if coloured else None,
        soft_wrap=False,
    )
    console.print(table)
    rendered = console.file.getvalue()  # type: ignore[attr-defined]
    # Rich pads every cell to its column's width; a line ends where its text does.
    sys.stdout.write("".join(line.rstrip() + "\n" for line in rendered.splitlines()))


MAX_KEPT = 40  # the widest a column other than the elastic one keeps on a narrow terminal


def print_record(record: Mapping[str, Any], *, title: str = "", fold: bool = True) -> None:
    """One object as a two-column field/value table (long values fold unless told not to)."""
    rows = [{"field": key, "value": value} for key, value in record.items()]
    print_table(rows, ["field", "value"], title=title, fold=fold)


def say_data(line: str, *, style: str | None = None) -> None:
    """A line of data for people that belongs with a table (stdout, unlike `say`), in `style`
    where colour is allowed (the same rule as tables)."""
    from glisk_cli.cli.humanize import colour

    if style is None or not colour(sys.stdout):
        sys.stdout.write(line + "\n")
        return
    from rich.console import Console

    Console(force_terminal=True, color_system="standard", highlight=False).print(
        line, style=style, markup=False
    )


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
