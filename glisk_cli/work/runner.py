"""The runner's loop (`glisk work`): claim, run, renew, write outcomes, wait, stop.

Three parts with one job each, in the shape of River's producer, executor and completer: this
loop owns the database and the flights; each attempt waits on its job in a thread of its own
(`jobs.py`, `process.py`); outcomes are written in batches (`completer.py`). One Unit of Work
per loop turn carries everything due — the outcomes that landed, the renewal, the next claim —
so a turn costs one commit however much it does (docs/architecture.md, "The worker runner").

The database may go away at any moment: a turn that fails keeps what it had to write and is
retried with backoff, while the jobs run on. Work starts only after the claim that leased it
committed, and nothing is advanced or released except under its lease.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from queue import Empty, SimpleQueue

from glisk_cli.errors import DatabaseUnavailable
from glisk_cli.logging import logger
from glisk_cli.pipeline import LEASE_LOST, MAX_BATCH, STAGES, StageName
from glisk_cli.queue import POLL_INTERVAL_S, Listener
from glisk_cli.repositories.image_job import JobStart
from glisk_cli.repositories.token_records import Backlog, ClaimedToken
from glisk_cli.uow import UnitOfWork
from glisk_cli.work.completer import write_outcomes
from glisk_cli.work.flights import Flight, Landed
from glisk_cli.work.jobs import AttemptEnd, Job
from glisk_cli.work.options import WorkOptions
from glisk_cli.work.protocol import failed_all
from glisk_cli.work.report import Report
from glisk_cli.work.waiting import Waiter

_RETRY_FIRST, _RETRY_MAX = 0.5, 10.0  # seconds between turns while the database is away
_BACKLOG_EVERY = 2.0  # how often the live line's backlog is read


@dataclass
class _Due:
    """What one loop turn is to do besides writing what landed."""

    claim: int = 0  # how many tokens to claim (0: none)
    renew: bool = False
    backlog: bool = False


class Runner:
    """Runs `job` for `options.stage` until asked to stop (or, with `drain`, until the stage
    has no work left). `run()` returns the summary; `stop()` may be called from a signal
    handler or another thread: the first call drains within the grace, the second kills."""

    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        job: Job,
        options: WorkOptions,
        *,
        listener: Listener | None = None,
        report: Report | None = None,
        on_turn: Callable[[Report], None] | None = None,
    ) -> None:
        self._uow, self._job, self.options = uow_factory, job, options
        self._stage = STAGES[StageName(options.stage)]
        self.report = report or Report(self._stage.name.value, options.worker)
        self._on_turn = on_turn
        self._flights: dict[uuid.UUID, Flight] = {}
        self._landed: SimpleQueue[Landed] = SimpleQueue()
        self._unwritten: list[Landed] = []
        self._waiter = Waiter(listener)
        self._stops = 0
        self.stop_reason: str | None = None
        self._grace_ends: float | None = None
        self._renew_at = 0.0
        self._retry_at, self._failures = 0.0, 0
        self._dry = False  # the last claim found less than it asked for
        self._poll_at = 0.0
        self._backlog_at = 0.0
        self._drained = False

    # -- the public face -----------------------------------------------------------------

    def stop(self, reason: str = "stopped") -> None:
        self._stops += 1
        self.stop_reason = self.stop_reason or reason
        self._waiter.wake()

    def run(self) -> dict[str, object]:
        try:
            self._loop()
        finally:
            self._abandon()
            self._waiter.close()
        return self.report.summary(self.stop_reason or "drained")

    # -- the loop ------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            self._collect()
            now = time.monotonic()
            if self._stops:
                if self._grace_ends is None:
                    self._grace_ends = now + self.options.grace.total_seconds()
                    logger.warning("work.stopping", in_flight=len(self._flights))
                if self._stops > 1 or now >= self._grace_ends:
                    for flight in self._flights.values():
                        flight.kill("shutdown")
            if now >= self._retry_at:
                self._waiter.listen()
                due = self._due(now)
                if self._unwritten or due.claim or due.renew or due.backlog:
                    self._turn(due)
            if self._on_turn is not None:
                self._on_turn(self.report)
            if not self._flights and not self._unwritten and (self._stops or self._drained):
                return
            if self._waiter.wait(self._timeout()):
                self._dry = False  # something became claimable: claim at once

    def _due(self, now: float) -> _Due:
        free = self.options.concurrency - len(self._flights)
        due = _Due()
        if not self._stops and free > 0 and (not self._dry or now >= self._poll_at):
            due.claim = min(free * self.options.batch, MAX_BATCH)
        due.renew = bool(self._held()) and now >= self._renew_at
        due.backlog = self._on_turn is not None and now >= self._backlog_at
        return due

    def _turn(self, due: _Due) -> None:
        """One Unit of Work: write what landed, renew, claim; start the claimed work after
        the commit. If the database is away, keep everything for the next turn."""
        landed = list(self._unwritten)
        held_any = bool(self._held())
        flights: list[Flight] = []
        backlog: Backlog | None = None
        try:
            with self._uow() as uow:
                written = write_outcomes(uow, self._stage, landed) if landed else None
                held = self._renew(uow) if due.renew else None
                if due.claim:
                    flights = self._claim(uow, due.claim)
                # Draining, with nothing claimed or running: is the stage's work all done?
                ended = self.options.drain and due.claim and not flights and not self._flights
                if due.backlog or ended:
                    backlog = uow.tokens.backlog(self._stage.name.value)
        except DatabaseUnavailable as error:
            self._failures += 1
            delay = min(_RETRY_MAX, _RETRY_FIRST * 2 ** (self._failures - 1))
            self._retry_at = time.monotonic() + delay * (0.5 + random.random() / 2)  # noqa: S311
            self.report.database_down(error)
            return
        self._failures = 0
        self.report.database_back()
        now = time.monotonic()
        if written is not None:
            del self._unwritten[: len(landed)]
            self.report.written(landed, written)
        if held is not None:
            self._renewed(held)
            self._renew_at = now + self.options.renew_every
        if due.claim:
            claimed = sum(len(flight.tokens) for flight in flights)
            self._dry = claimed < due.claim
            self._poll_at = now + POLL_INTERVAL_S
            self.report.claimed(claimed)
            if not held_any:  # fresh leases: the first renewal is due a third of one away
                self._renew_at = now + self.options.renew_every
            for flight in flights:
                self._start(flight)
        if backlog is not None:
            self._backlog_at = now + _BACKLOG_EVERY
            self.report.backlog = backlog
            if self.options.drain and backlog.empty and not self._flights:
                self._drained = True
        self.report.set_running(len(self._flights))

    def _claim(self, uow: UnitOfWork, limit: int) -> list[Flight]:
        options = self.options
        tokens = uow.tokens.claim(self._stage.name.value, limit, options.worker, options.lease)
        size = options.batch
        flights = [Flight(tokens[at : at + size]) for at in range(0, len(tokens), size)]
        if self._stage.name is StageName.GENERATION and tokens:
            uow.image_jobs.start_running([
                JobStart(flight.history_id("job", token.id), token.id, self._job.name,
                         token.attempts - 1)
                for flight in flights for token in flight.tokens
            ])  # fmt: skip
        return flights

    def _held(self) -> list[ClaimedToken]:
        """Every token this runner holds: running, or landed and not yet written."""
        running = [t for flight in self._flights.values() for t in flight.tokens]
        return running + [t for item in self._unwritten for t in item.flight.tokens]

    def _renew(self, uow: UnitOfWork) -> list[ClaimedToken]:
        return uow.tokens.renew(self._held(), self.options.lease)

    def _renewed(self, held: list[ClaimedToken]) -> None:
        """Keep the new expiries; kill the work of every token another claim took over."""
        by_id = {token.id: token for token in held}
        lost: list[int] = []
        for flight in [*self._flights.values(), *(item.flight for item in self._unwritten)]:
            gone = [token.token_id for token in flight.tokens if token.id not in by_id]
            flight.tokens = [by_id.get(token.id, token) for token in flight.tokens]
            if gone:
                lost += gone
                flight.kill(LEASE_LOST)
        self.report.renewed(len(held), lost)

    # -- flights ---------------------------------------------------------------------------

    def _start(self, flight: Flight) -> None:
        self._flights[flight.id] = flight
        thread = threading.Thread(target=self._fly, args=(flight,), daemon=True)
        thread.start()

    def _fly(self, flight: Flight) -> None:
        """An executor thread: start the job, wait for it, hand the outcome to the loop."""
        timeout = self.options.timeout
        try:
            attempt = self._job.start(
                self._stage, flight.tokens, self.options.worker,
                None if timeout is None else timeout.total_seconds(),
            )  # fmt: skip
            flight.attach(attempt)
            end = attempt.wait()
        except Exception as error:  # a job that breaks must not take the runner with it
            end = AttemptEnd(failed_all(flight.tokens, f"{type(error).__name__}: {error}"), 0.0)
        self._landed.put(Landed(flight, end))
        self._waiter.wake()

    def _collect(self) -> None:
        while True:
            try:
                landed = self._landed.get_nowait()
            except Empty:
                return
            self._flights.pop(landed.flight.id, None)
            self._unwritten.append(landed)

    def _abandon(self) -> None:
        """On the way out (an error): stop every job, and hand its tokens back if the
        database lets us; otherwise their leases run out on their own."""
        if not self._flights and not self._unwritten:
            return
        for flight in self._flights.values():
            flight.kill("shutdown")
        deadline = time.monotonic() + 5
        while self._flights and time.monotonic() < deadline:
            self._waiter.wait(0.1)
            self._collect()
        try:
            with self._uow() as uow:
                write_outcomes(uow, self._stage, self._unwritten)
        except Exception as error:
            logger.warning("work.abandoned", error=str(error), note="leases will run out")

    # -- waiting ---------------------------------------------------------------------------

    def _timeout(self) -> float:
        now = time.monotonic()
        moments = [now + POLL_INTERVAL_S]
        if self._held():
            moments.append(self._renew_at)
        if self._grace_ends is not None:
            moments.append(self._grace_ends)
        if self._on_turn is not None:
            moments.append(now + 0.5)
        moments.append(self._retry_at if now < self._retry_at else now + POLL_INTERVAL_S)
        return max(0.0, min(moments) - now)
