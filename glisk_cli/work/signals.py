"""SIGTERM and SIGINT for a runner: the first stops claiming and lets work finish within the
grace, a second stops the work now. Which signal came decides the exit status (0 for SIGTERM,
a deploy's polite request; 130 for SIGINT, an interruption)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from glisk_cli.work.runner import Runner


@contextmanager
def stopped_by_signals(runner: Runner) -> Iterator[None]:
    """While inside, SIGTERM and SIGINT stop `runner` (only possible on the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        runner.stop(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def exit_status(stop_reason: str | None) -> int:
    return 130 if stop_reason == "SIGINT" else 0
