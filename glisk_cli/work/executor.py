"""The runner's executor: runs claimed flights, at most `concurrency` at a time, each starting
as soon as a slot is free, and hands the outcomes back to the loop.

The slots pull their work: a slot that frees up starts the next claimed flight at once, never
waiting for the loop, which may be busy with the database (River's executor pool has the
same shape for the same reason: bench/work.py measured slots idling while the loop committed).
Commands are driven by one thread for all slots (`command_slots.py`); a Python handler gets a
thread per slot (`HandlerSlots`, below), as a function call can only be waited for by blocking.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from queue import Empty, SimpleQueue

from glisk_cli.pipeline import Stage
from glisk_cli.work.flights import Flight, Landed
from glisk_cli.work.jobs import AttemptEnd, HandlerJob
from glisk_cli.work.options import WorkOptions
from glisk_cli.work.protocol import Interrupted, TokenOutcome, failed_all


class Executor:
    """What every executor shares: the queue of claimed flights, the outcomes that landed, and
    the flights running now. Subclasses run the flights (`_run_slots`, on threads of their
    own); `wake` is called whenever outcomes are ready to collect."""

    def __init__(self, stage: Stage, options: WorkOptions, wake: Callable[[], None]) -> None:
        self._stage, self._options, self._wake = stage, options, wake
        self._ready: SimpleQueue[Flight | None] = SimpleQueue()
        self._landed: SimpleQueue[Landed] = SimpleQueue()
        self._running: dict[uuid.UUID, Flight] = {}
        self._lock = threading.Lock()

    def submit(self, flights: list[Flight]) -> None:
        for flight in flights:
            self._ready.put(flight)
        self._notify()

    def hand_back(self, flights: list[Flight]) -> None:
        """Land `flights` unstarted, as stopped for a shutdown (their claims not counted)."""
        for flight in flights:
            stopped: dict[uuid.UUID, TokenOutcome] = {
                token.id: Interrupted("shutdown") for token in flight.tokens
            }
            self._landed.put(Landed(flight, AttemptEnd(stopped, 0.0)))
        self._wake()

    def hand_back_queued(self) -> None:
        """Stopping: the flights no slot has started yet will now never start."""
        taken: list[Flight] = []
        while True:
            try:
                flight = self._ready.get_nowait()
            except Empty:
                break
            if flight is not None:
                taken.append(flight)
            else:
                self._ready.put(None)  # close() was called: keep its word for the slots
                break
        if taken:
            self.hand_back(taken)

    def landed(self) -> list[Landed]:
        """The outcomes that landed since the last call."""
        found: list[Landed] = []
        while True:
            try:
                found.append(self._landed.get_nowait())
            except Empty:
                return found

    def running(self) -> list[Flight]:
        with self._lock:
            return list(self._running.values())

    def close(self) -> None:
        """Let the slots end once what they run now (if anything) has landed."""
        self._ready.put(None)
        self._notify()

    # -- for the subclasses ------------------------------------------------------------------

    def _notify(self) -> None:
        """Flights were queued (or close() called); slots that wait for them are woken."""

    def _started(self, flight: Flight) -> None:
        with self._lock:
            self._running[flight.id] = flight

    def _land(self, flight: Flight, end: AttemptEnd) -> None:
        """Hand an outcome back (the caller wakes the loop: once for many is enough)."""
        with self._lock:
            self._running.pop(flight.id, None)
        self._landed.put(Landed(flight, end))

    def _unstartable(self, flight: Flight) -> AttemptEnd | None:
        """The end of a flight that must not start: its lease was lost or the runner stops."""
        if flight.killed is None:
            return None
        return AttemptEnd({token.id: Interrupted(flight.killed) for token in flight.tokens}, 0)

    def _broken(self, flight: Flight, error: Exception) -> AttemptEnd:
        """A job that breaks fails its attempt; it must not take the runner with it."""
        return AttemptEnd(failed_all(flight.tokens, f"{type(error).__name__}: {error}"), 0.0)


class HandlerSlots(Executor):
    """One thread per slot, each calling the handler for the next claimed flight."""

    def __init__(
        self, job: HandlerJob, stage: Stage, options: WorkOptions, wake: Callable[[], None]
    ) -> None:
        super().__init__(stage, options, wake)
        self._job = job
        for n in range(options.concurrency):
            threading.Thread(target=self._slot, daemon=True, name=f"glisk-work-{n}").start()

    def close(self) -> None:
        for _ in range(self._options.concurrency):
            self._ready.put(None)

    def _slot(self) -> None:
        while (flight := self._ready.get()) is not None:
            self._started(flight)
            self._land(flight, self._fly(flight))
            self._wake()

    def _fly(self, flight: Flight) -> AttemptEnd:
        if (end := self._unstartable(flight)) is not None:
            return end
        timeout = self._options.timeout
        try:
            attempt = self._job.start(
                self._stage, flight.tokens, None if timeout is None else timeout.total_seconds()
            )
            flight.attach(attempt)
            return attempt.wait()
        except Exception as error:
            return self._broken(flight, error)
