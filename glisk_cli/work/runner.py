"""The runner's loop (`glisk work`): claim, run, renew, write outcomes, wait, stop.

Three parts with one job each, in the shape of River's producer, executor and completer: this
loop owns the database and the flights; a slot per unit of concurrency runs the claimed
flights (`executor.py`, `jobs.py`, `process.py`); outcomes are written in batches
(`completer.py`). One Unit of Work per loop turn carries everything due — the outcomes that
landed, the renewal, the next claim — so a turn costs one commit however much it does
(docs/architecture.md, "The worker runner").

The database may go away at any moment: a turn that fails keeps what it had to write and is
retried with backoff, while the jobs run on. Work starts only after the claim that leased it
committed, and nothing is advanced or released except under its lease.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from glisk_cli.db.listen import POLL_INTERVAL_S, Listener
from glisk_cli.errors import DatabaseUnavailable
from glisk_cli.logging import logger
from glisk_cli.pipeline import LEASE_LOST, MAX_BATCH, STAGES, StageName
from glisk_cli.repositories.token_records import Backlog, ClaimedToken
from glisk_cli.uow import UnitOfWork
from glisk_cli.work.command_slots import CommandSlots
from glisk_cli.work.completer import write_outcomes
from glisk_cli.work.executor import Executor, HandlerSlots
from glisk_cli.work.flights import Flight, Landed, claim_flights
from glisk_cli.work.jobs import CommandJob, Job
from glisk_cli.work.options import WorkOptions
from glisk_cli.work.report import Report
from glisk_cli.work.waiting import Waiter

_RETRY_FIRST, _RETRY_MAX = 0.5, 10.0  # seconds between turns while the database is away
_BACKLOG_EVERY = 2.0  # how often the live line's backlog is read
# Outcomes are written a few rounds of attempts at a time, or once the first waited this long
# (unless a turn is due anyway): one commit, and one statement of each kind, for many tokens.
_WRITE_ROUNDS = 3
_WRITE_DELAY = 0.05
# Jobs shorter than this on average get rounds of attempts claimed ahead (under a second of
# work per slot), so a slot that frees up starts its next job at once instead of waiting for a
# commit; the claim rides on the turns that write outcomes, and takes a turn of its own only
# when just _CLAIM_LOW rounds are left (bench/work.py). Longer jobs are claimed only for free
# slots, so a runner never sits on tokens another could work on.
_SHORT_JOB_S = 0.1
_ROUNDS_AHEAD = 8
_CLAIM_LOW = 2


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
        self._claimed: dict[uuid.UUID, Flight] = {}  # claimed, not landed: queued or running
        self._job_seconds: float | None = None  # a moving average of attempts' durations
        self._unwritten: list[Landed] = []
        self._waiter = Waiter(listener)
        self._executor: Executor = (
            CommandSlots(job, self._stage, options, self._waiter.wake)
            if isinstance(job, CommandJob)
            else HandlerSlots(job, self._stage, options, self._waiter.wake)
        )
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
            self._executor.close()
            self._waiter.close()
        return self.report.summary(self.stop_reason or "drained")

    # -- the loop ------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            self._collect()
            now = time.monotonic()
            if self._stops:
                self._executor.hand_back_queued()
                if self._grace_ends is None:
                    self._grace_ends = now + self.options.grace.total_seconds()
                    logger.warning("work.stopping", in_flight=len(self._claimed))
                if self._past_grace(now):
                    for flight in self._executor.running():
                        flight.kill("shutdown")
            if now >= self._retry_at:
                self._waiter.listen()
                due = self._due(now)
                if self._writes_due(now) or due.claim or due.renew or due.backlog:
                    self._turn(due)
            if self._on_turn is not None:
                self._on_turn(self.report)
            if not self._claimed and (self._stops or self._drained):
                if not self._unwritten:
                    return
                if self._failures and self._past_grace(now):
                    # Stopping, and the database is away: what is left unwritten keeps its
                    # leases until they run out, and another runner does the work again.
                    logger.warning("work.unwritten", tokens=len(self._held()), note="leases lapse")
                    return
            if self._waiter.wait(self._timeout()):
                self._dry = False  # something became claimable: claim at once

    def _due(self, now: float) -> _Due:
        concurrency = self.options.concurrency
        short = self._job_seconds is not None and self._job_seconds < _SHORT_JOB_S
        wanted = concurrency * (1 + _ROUNDS_AHEAD if short else 1) - len(self._claimed)
        due = _Due()
        # A claim of its own when the rounds ahead run low; else with the next turn that writes.
        ready = len(self._claimed) <= concurrency * _CLAIM_LOW or self._writes_due(now)
        if not self._stops and wanted > 0 and ready and (not self._dry or now >= self._poll_at):
            due.claim = min(wanted * self.options.batch, MAX_BATCH)
        due.renew = self._holds_any() and now >= self._renew_at
        due.backlog = self._on_turn is not None and now >= self._backlog_at
        return due

    def _turn(self, due: _Due) -> None:
        """One Unit of Work: write what landed, renew, claim; start the claimed work after
        the commit. If the database is away, keep everything for the next turn."""
        landed = list(self._unwritten)
        held_any = self._holds_any()
        flights: list[Flight] = []
        backlog: Backlog | None = None
        try:
            with self._uow() as uow:
                written = write_outcomes(uow, self._stage, landed) if landed else None
                held = self._renew(uow) if due.renew else None
                if due.claim:
                    flights = claim_flights(uow, self._stage, self.options, due.claim, self._job)
                # Draining, with nothing claimed or running: is the stage's work all done?
                ended = self.options.drain and due.claim and not flights and not self._claimed
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
            self._claimed |= {flight.id: flight for flight in flights}
            if self._stops:  # a signal came while claiming: none of it starts
                self._executor.hand_back(flights)
            else:
                self._executor.submit(flights)
        if backlog is not None:
            self._backlog_at = now + _BACKLOG_EVERY
            self.report.backlog = backlog
            if self.options.drain and backlog.empty and not self._claimed:
                self._drained = True

    def _past_grace(self, now: float) -> bool:
        """A second signal, or the grace ran out: stop waiting for anything."""
        return self._stops > 1 or (self._grace_ends is not None and now >= self._grace_ends)

    def _held(self) -> list[ClaimedToken]:
        """Every token this runner holds: queued, running, or landed and not yet written."""
        return [token for flight in self._all_flights() for token in flight.tokens]

    def _holds_any(self) -> bool:
        return bool(self._claimed or self._unwritten)

    def _all_flights(self) -> list[Flight]:
        return [*self._claimed.values(), *(item.flight for item in self._unwritten)]

    def _writes_due(self, now: float) -> bool:
        """Outcomes are written once a few rounds of attempts landed, or the first waited
        enough, or nothing else is claimed (the last ones)."""
        if not self._unwritten:
            return False
        rounds = len(self._unwritten) >= self.options.concurrency * _WRITE_ROUNDS
        return rounds or not self._claimed or now >= self._unwritten[0].at + _WRITE_DELAY

    def _renew(self, uow: UnitOfWork) -> list[ClaimedToken]:
        return uow.tokens.renew(self._held(), self.options.lease)

    def _renewed(self, held: list[ClaimedToken]) -> None:
        """Keep the new expiries; kill the work of every token another claim took over."""
        by_id = {token.id: token for token in held}
        lost: list[int] = []
        for flight in self._all_flights():
            gone = [token.token_id for token in flight.tokens if token.id not in by_id]
            flight.tokens = [by_id.get(token.id, token) for token in flight.tokens]
            if gone:
                lost += gone
                flight.kill(LEASE_LOST)
        self.report.renewed(len(held), lost)

    # -- flights ---------------------------------------------------------------------------

    def _collect(self) -> None:
        for landed in self._executor.landed():
            self._claimed.pop(landed.flight.id, None)
            self._unwritten.append(landed)
            seconds, average = landed.end.seconds, self._job_seconds
            self._job_seconds = seconds if average is None else 0.8 * average + 0.2 * seconds
        self.report.set_running(len(self._executor.running()))

    def _abandon(self) -> None:
        """On the way out (an error): stop every job, and hand its tokens back if the
        database lets us; otherwise their leases run out on their own."""
        deadline = time.monotonic() + 5
        self._collect()
        while self._claimed and time.monotonic() < deadline:
            self._executor.hand_back_queued()
            for flight in self._executor.running():  # a slot may have just taken one
                flight.kill("shutdown")
            self._waiter.wait(0.1)
            self._collect()
        if not self._unwritten:
            return
        try:
            with self._uow() as uow:
                write_outcomes(uow, self._stage, self._unwritten)
        except Exception as error:
            logger.warning("work.abandoned", error=str(error), note="leases will run out")

    # -- waiting ---------------------------------------------------------------------------

    def _timeout(self) -> float:
        """Until the next thing to do. While the database is away nothing that needs it is
        due before the retry (its missed deadlines would make this a busy loop)."""
        now = time.monotonic()
        moments = [now + POLL_INTERVAL_S]
        if now < self._retry_at:
            moments.append(self._retry_at)
        else:
            if self._holds_any():
                moments.append(self._renew_at)
            if self._unwritten:
                moments.append(self._unwritten[0].at + _WRITE_DELAY)
        if self._grace_ends is not None and now < self._grace_ends:
            moments.append(self._grace_ends)
        if self._on_turn is not None:
            moments.append(now + 0.5)
        return max(0.0, min(moments) - now)
