"""`glisk mints record --jsonl FILE|-`: many mints from JSON lines, recorded in batches.

Each line is one JSON object with the single form's fields, checked by the single form's own
parsers (values.py). Every batch of lines is one transaction: a bad line — not JSON, a field
missing or invalid, an unknown author, a conflicting replay — stops the load with its line
number, and nothing of its batch is written, while the batches before it stay committed.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from typing import IO, Any

import typer

from glisk_cli.cli import context, values
from glisk_cli.cli.output import print_json, say
from glisk_cli.errors import Conflict, GliskError, InvalidInput, NotFound
from glisk_cli.repositories.mint_records import Mint, MintRefused

BATCH = 10_000  # lines per transaction


def _json_timestamp(value: Any) -> Any:
    # A JSON number of Unix seconds reads as the option's text would.
    return values.timestamp(value if isinstance(value, str) else str(value))


# Each field of a line: the JSON type it must have, then the parser of the single form's option.
_FIELDS: dict[str, tuple[tuple[type, ...], Callable[[Any], Any]]] = {
    "tx_hash": ((str,), values.tx_hash),
    "log_index": ((int,), values.integer),
    "block_number": ((int,), values.bigint),
    "block_timestamp": ((str, int), _json_timestamp),
    "token_id": ((int,), values.integer),
    "author": ((str,), values.address),
    "minter": ((str,), values.address),
}
_KINDS = {str: "a string", int: "a whole number"}


class LineProblem(ValueError):
    """What is wrong with one line (`number`, once known)."""

    def __init__(self, message: str, number: int = 0) -> None:
        super().__init__(message)
        self.number = number


def parse_line(line: str | bytes) -> Mint:
    """The mint one JSON line describes (keys other than the fields are ignored)."""
    try:
        document = json.loads(line)
    except UnicodeDecodeError:
        raise LineProblem("not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise LineProblem(f"not JSON ({error.msg}, column {error.colno})") from None
    except ValueError as error:  # a number past what Python converts from text
        raise LineProblem(f"not JSON we can read ({error})") from None
    if not isinstance(document, dict):
        raise LineProblem("not a JSON object")
    missing = [name for name in _FIELDS if name not in document]
    if missing:
        raise LineProblem(f"missing {', '.join(missing)}")
    parsed = {name: _field(name, document[name]) for name in _FIELDS}
    return Mint(**parsed)


def _field(name: str, value: Any) -> Any:
    kinds, parse = _FIELDS[name]
    if type(value) not in kinds:  # exact: JSON true is not the whole number 1
        expected = " or ".join(_KINDS[kind] for kind in kinds)
        raise LineProblem(f"{name}: {json.dumps(value)} is not {expected}")
    try:
        return parse(value)
    except typer.BadParameter as error:
        raise LineProblem(f"{name}: {error.message}") from None


@dataclass
class _Load:
    """How far a load got: what the committed batches recorded, and where the next begins."""

    recorded: int = 0
    already_recorded: int = 0
    next_line: int = 1  # the first line of the batch not yet committed

    def refused(self, number: int, error: GliskError) -> GliskError:
        """`error` about line `number`, saying what the load committed before it."""
        kept = (
            f"lines 1-{self.next_line - 1} are committed ({self.recorded} recorded, "
            f"{self.already_recorded} already recorded), nothing from line {self.next_line} on "
            "was written"
            if self.next_line > 1
            else "nothing was written"
        )
        return type(error)(
            f"line {number}: {error.message}; {kept}",
            hint=error.hint,
        )


def record_lines(source: str, *, as_json: bool) -> None:
    """Record the mints of `source` (a file, or - for stdin) batch by batch; print a summary
    ({"recorded": N, "already_recorded": M} with --json). The tables it filled are analyzed
    afterwards, even when a line stopped it, so the planner knows what they now hold."""
    from rich.console import Console
    from rich.progress import Progress

    context.uow_factory()  # settings, logging and the database handle made here, not by the writer
    load = _Load()
    stream, size = _opened(source)
    try:
        console = Console(stderr=True)
        shown = Progress(console=console, transient=True, disable=not console.is_terminal)
        # Closing the batches waits for the batch being written, so what is said is committed.
        with stream, shown as progress, closing(_batches(stream, load)) as batches:
            task = progress.add_task("recording mints", total=size)
            for done in batches:
                progress.update(task, completed=done, description=_said(load))
    except KeyboardInterrupt:
        say(f"interrupted: {load.recorded} mints recorded before line {load.next_line}")
        raise
    except (InvalidInput, NotFound, Conflict):  # a line refused: what came before stays
        _analyze(load)
        raise
    _analyze(load)
    summary = {"recorded": load.recorded, "already_recorded": load.already_recorded}
    if as_json:
        print_json(summary)
    else:
        say(_said(load))


def _said(load: _Load) -> str:
    mints = "mint" if load.recorded == 1 else "mints"
    return f"recorded {load.recorded} {mints}; {load.already_recorded} already recorded"


def _opened(source: str) -> tuple[IO[Any], int | None]:
    """The stream of `source`, read as bytes where it can be, and its size if known."""
    if source == "-":
        return getattr(sys.stdin, "buffer", sys.stdin), None
    try:
        stream = open(source, "rb")  # noqa: SIM115 — closed by record_lines
        return stream, os.fstat(stream.fileno()).st_size
    except OSError as error:
        raise InvalidInput(f"cannot read {source}: {error.strerror}") from None


def _batches(lines: Iterable[str | bytes], load: _Load) -> Generator[int]:
    """Record `lines` a batch at a time, each batch written by a thread of its own while the
    next is parsed (PostgreSQL works on one core, the parsing on the other); yield how much of
    the input each committed batch has consumed."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="glisk-mints") as writer:
        writing: Future[int] | None = None
        try:
            for batch, numbers, consumed in _parsed(lines):
                if writing is not None:
                    yield writing.result()
                writing = writer.submit(_commit, batch, numbers, load, consumed)
        except LineProblem as problem:
            if writing is not None:  # the lines before it come first, and are committed first
                writing.result()
            raise load.refused(problem.number, InvalidInput(str(problem))) from None
        if writing is not None:
            yield writing.result()


def _parsed(lines: Iterable[str | bytes]) -> Iterator[tuple[list[Mint], list[int], int]]:
    """`lines` as batches of mints, with their line numbers and how much of the input was
    consumed up to the batch's end (bytes, or characters from a text stream)."""
    batch: list[Mint] = []
    numbers: list[int] = []
    consumed = 0
    for number, line in enumerate(lines, 1):
        consumed += len(line)
        if not line.strip():
            continue
        try:
            batch.append(parse_line(line))
        except LineProblem as problem:
            raise LineProblem(str(problem), number) from None
        numbers.append(number)
        if len(batch) == BATCH:
            yield batch, numbers, consumed
            batch, numbers = [], []
    if batch:
        yield batch, numbers, consumed


def _commit(batch: list[Mint], numbers: list[int], load: _Load, consumed: int) -> int:
    """Record one batch in one transaction; return `consumed`, for the progress bar."""
    try:
        with context.unit_of_work() as uow:
            new = uow.mint_events.record(batch)
    except MintRefused as refused:
        raise load.refused(numbers[refused.index], refused.cause) from None
    created = sum(new)
    load.recorded += created
    load.already_recorded += len(new) - created
    load.next_line = numbers[-1] + 1
    return consumed


def _analyze(load: _Load) -> None:
    if load.recorded:
        with context.unit_of_work() as uow:
            uow.mint_events.analyze()
