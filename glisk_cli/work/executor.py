"""The runner's executor: one thread per slot, each taking the next claimed flight as soon as
its last one landed, running its job, and handing the outcome back.

The slots pull their work: a slot that frees up starts the next claimed flight at once, never
waiting for the loop, which may be busy with the database (River's executor pool has the
same shape for the same reason: bench/work.py measured slots idling while the loop committed).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from queue import Empty, SimpleQueue

from glisk_cli.pipeline import Stage
from glisk_cli.work.flights import Flight, Landed
from glisk_cli.work.jobs import AttemptEnd, Job
from glisk_cli.work.options import WorkOptions
from glisk_cli.work.protocol import Interrupted, TokenOutcome, failed_all


class Executor:
    def __init__(
        self, job: Job, stage: Stage, options: WorkOptions, wake: Callable[[], None]
    ) -> None:
        """`wake` is called (from a slot's thread) whenever an outcome is ready to collect."""
        self._job, self._stage, self._options, self._wake = job, stage, options, wake
        self._ready: SimpleQueue[Flight | None] = SimpleQueue()
        self._landed: SimpleQueue[Landed] = SimpleQueue()
        self._running: dict[uuid.UUID, Flight] = {}
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._slot, daemon=True, name=f"glisk-work-{n}")
            for n in range(options.concurrency)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, flights: list[Flight]) -> None:
        for flight in flights:
            self._ready.put(flight)

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
        """Let every slot's thread end once its current flight (if any) has landed."""
        for _ in self._threads:
            self._ready.put(None)

    def _slot(self) -> None:
        while (flight := self._ready.get()) is not None:
            with self._lock:
                self._running[flight.id] = flight
            end = self._fly(flight)
            with self._lock:
                del self._running[flight.id]
            self._landed.put(Landed(flight, end))
            self._wake()

    def _fly(self, flight: Flight) -> AttemptEnd:
        if flight.killed is not None:  # its lease was lost, or the runner stops: never start
            return AttemptEnd({token.id: Interrupted(flight.killed) for token in flight.tokens}, 0)
        timeout = self._options.timeout
        try:
            attempt = self._job.start(
                self._stage, flight.tokens, self._options.worker,
                None if timeout is None else timeout.total_seconds(),
            )  # fmt: skip
            flight.attach(attempt)
            return attempt.wait()
        except Exception as error:  # a job that breaks must not take the runner with it
            return AttemptEnd(failed_all(flight.tokens, f"{type(error).__name__}: {error}"), 0.0)
