"""`glisk top`: watch the pipeline move — a full-screen view refreshed every --interval, one
frame with --once (or when stdout is not a terminal), one JSON document with --json.

The view reads through one Unit of Work per refresh on the command's one database handle; the
refreshes run one after another, so its pool keeps a single connection, reused by every refresh
and replaced after the database comes back (docs/architecture.md, "A live view that stays
cheap"). `q` or Ctrl-C quits with exit 0, and the terminal is restored on every way out.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from glisk_cli.cli import context
from glisk_cli.cli.output import JsonOption

if TYPE_CHECKING:
    from glisk_cli.cli.top_state import Frame, Monitor
    from glisk_cli.repositories.pipeline_view import PipelineReading

QUIT_KEYS = frozenset("qQ")


def top(
    interval: Annotated[
        float,
        typer.Option("--interval", min=0.5, max=60, help="Seconds between refreshes, 0.5 to 60."),
    ] = 2.0,
    once: Annotated[bool, typer.Option("--once", help="Print one frame and exit.")] = False,
    as_json: JsonOption = False,
) -> None:
    """A live view of the pipeline: per stage waiting, in flight, done and ETA; workers and
    their leases; failures; the database. q or Ctrl-C quits."""
    monitor = _monitor(interval)
    if as_json or once or not sys.stdout.isatty():
        _print_once(monitor.refresh(), as_json=as_json)
    else:
        _live(monitor, interval)


def _monitor(interval: float) -> Monitor:
    from glisk_cli.cli.top_state import Monitor

    database = context.database()
    lease = database.policy.lease  # GLISK_LEASE: a worker's last renewal is worked out from it

    def read() -> PipelineReading:
        with context.unit_of_work() as uow:
            return uow.pipeline_view.read(lease)

    return Monitor(
        read, context.schema_revision, url=database.masked_url, interval=interval, lease=lease
    )


def _print_once(frame: Frame, *, as_json: bool) -> None:
    from glisk_cli.cli.humanize import colour
    from glisk_cli.cli.output import print_json
    from glisk_cli.cli.top_frame import render
    from glisk_cli.cli.top_state import document
    from glisk_cli.errors import DatabaseUnavailable

    if frame.unreachable is not None:  # one look, and nothing to see: the usual exit 3
        raise DatabaseUnavailable(frame.unreachable)
    if as_json:
        print_json(document(frame))
        return
    from rich.console import Console

    coloured = colour(sys.stdout)
    console = Console(
        highlight=False,
        width=shutil.get_terminal_size((100, 24)).columns,
        force_terminal=coloured,
        color_system="standard" if coloured else None,
        no_color=not coloured,
    )
    console.print(render(frame))


def _live(monitor: Monitor, interval: float) -> None:
    from rich.console import Console
    from rich.live import Live

    from glisk_cli.cli.top_frame import render

    console = Console(highlight=False)
    try:
        with (
            _stop_on_sigterm(),
            _keys() as next_key,
            # The alternate screen, left (and the cursor shown again) however the block ends.
            Live(console=console, screen=True, auto_refresh=False) as live,
        ):
            while True:
                live.update(render(monitor.refresh()), refresh=True)
                if next_key(interval) in QUIT_KEYS:
                    return
    except KeyboardInterrupt:  # Ctrl-C is how a person leaves a live view: not an interruption
        return


@contextmanager
def _keys() -> Iterator[Callable[[float], str | None]]:
    """A function that waits up to a timeout for a key and returns it (None: none pressed).

    The terminal is put in cbreak mode — keys arrive one at a time and are not echoed, while
    Ctrl-C still interrupts — and restored on the way out.
    """
    if not sys.stdin.isatty():
        yield _no_keys
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)
    try:
        yield lambda timeout: _read_key(fd, timeout)
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _read_key(fd: int, timeout: float) -> str | None:
    """Any key ends the wait (so one refreshes at once); `q` also quits."""
    ready, _, _ = select.select([fd], [], [], timeout)
    if not ready:
        return None
    key = os.read(fd, 1)
    if not key:  # the terminal went away: nothing more will be typed
        time.sleep(timeout)
        return None
    return key.decode(errors="replace")


def _no_keys(timeout: float) -> None:
    time.sleep(timeout)


@contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    """SIGTERM leaves the view as Ctrl-C does, so the terminal is restored then too."""

    def interrupt(_signal: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
