"""The runner's loop (`glisk work`): claim, run, renew, write outcomes, wait, stop.

Three parts with one job each, in the shape of River's producer, executor and completer: this
loop owns the database and the jobs; the executor's slots run the claimed jobs (`executor.py`,
`command_slots.py`); outcomes are written in batches (`completer.py`). One Unit of Work per loop
turn carries everything due — the outcomes that ended, the renewal, the next claim — so a turn
costs one commit however much it does (docs/architecture.md, "The worker runner"). When each
thing is due is the schedule's to say (`schedule.py`).

The database may go away at any moment: a turn that fails keeps what it had to write and is
retried with backoff, while the jobs run on. Work starts only after the claim that leased it
committed, and nothing is advanced or released except under its lease.
"""

from __future__ import annotations

import gc
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from glisk_cli.errors import DatabaseUnavailable
from glisk_cli.flow import StageState
from glisk_cli.logging import logger
from glisk_cli.pipeline import LEASE_LOST, STAGES, StageName
from glisk_cli.repositories.token_records import Backlog, ClaimedToken
from glisk_cli.uow import UnitOfWork
from glisk_cli.work.completer import write_outcomes
from glisk_cli.work.executor import Executor
from glisk_cli.work.history import history_of
from glisk_cli.work.jobs import LEASE_EXPIRING, Job
from glisk_cli.work.options import WorkOptions
from glisk_cli.work.programs import Program
from glisk_cli.work.report import Report
from glisk_cli.work.schedule import Books, Schedule, Turn
from glisk_cli.work.waiting import Waiter

_ABANDON_S = 5.0  # on the way out after an error, how long jobs get to end once killed


@contextmanager
def _collector_spared() -> Iterator[None]:
    """While the runner runs, the garbage collector's full collections walk only the objects
    made since it started, not the hundred thousand the imports made (SQLAlchemy, psycopg,
    glisk): for short jobs, walking those was a fifth of the runner's time. A process that
    freezes objects itself (before forking workers, say) is left as it is."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


class Runner:
    """Runs `program`'s jobs on `executor` for `options.stage` until asked to stop (or, with
    `drain`, until the stage has no work left). `run()` returns the summary; `stop()` may be
    called from a signal handler or another thread: the first call drains within the grace,
    the second kills."""

    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        program: Program,
        executor: Executor,
        waiter: Waiter,
        options: WorkOptions,
        *,
        report: Report | None = None,
        on_turn: Callable[[Report], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`waiter`: where the loop sleeps, woken by `executor` (its `wake`) when a job ends.
        `on_turn`: called after every turn with the report (a live line); the backlog is read
        for it."""
        self._uow, self._program, self.options = uow_factory, program, options
        self._executor, self._waiter, self._clock = executor, waiter, clock
        self._stage = STAGES[StageName(options.stage)]
        self.report = report or Report(self._stage.name.value, options.worker, clock=clock)
        self._on_turn = on_turn
        self._books = Books()
        self._schedule = Schedule(options, watched=on_turn is not None)
        self._drained = False

    @property
    def stop_reason(self) -> str | None:
        return self._schedule.stopping.reason

    def stop(self, reason: str = "stopped") -> None:
        self._schedule.stopping.request(reason)
        self._waiter.wake()

    def run(self) -> dict[str, object]:
        try:
            with _collector_spared():
                self._loop()
        finally:
            self._abandon()
            self._executor.close()
            self._waiter.close()
        return self.report.summary(self.stop_reason or "drained")

    # -- the loop ------------------------------------------------------------------------

    def _loop(self) -> None:
        books, schedule, stopping = self._books, self._schedule, self._schedule.stopping
        while True:
            self._collect()
            now = self._clock()
            self._kill_overdue(now)
            if stopping.requests:
                self._executor.hand_back_queued()
                if stopping.begin_grace(now):
                    logger.warning("work.stopping", in_flight=len(books.claimed))
                if stopping.past_grace(now):
                    for job in self._executor.running():
                        job.kill("shutdown")
            if now >= schedule.outage.retry_at:
                self._waiter.listen()  # again after an outage; at once if it listens already
            if turn := schedule.next_turn(books, now):
                self._turn(turn)
            if self._on_turn is not None:
                self._on_turn(self.report)
            if not books.claimed and (stopping.requests or self._drained):
                if not books.unwritten:
                    return
                if schedule.outage.failures and stopping.past_grace(now):
                    # Stopping, and the database is away: what is left unwritten keeps its
                    # leases until they run out, and another runner does the work again.
                    logger.warning(
                        "work.unwritten", tokens=len(books.tokens()), note="leases lapse"
                    )
                    return
            if self._waiter.wait(schedule.sleep(books, self._clock())):
                schedule.notified()

    def _turn(self, turn: Turn) -> None:
        """One Unit of Work: write what ended (whether or not that was due: it rides along),
        renew, claim; start the claimed work after the commit. If the database is away, keep
        everything for the next turn."""
        books = self._books
        ended = list(books.unwritten)
        held_before = books.holds_any()
        # Every lease this turn writes runs out no sooner than its length after this moment.
        deadline = self._clock() + self.options.lease_deadline
        jobs: list[Job] = []
        backlog: Backlog | None = None
        state: StageState | None = None
        claimed = 0
        try:
            with self._uow() as uow:
                recorded = write_outcomes(uow, self._stage, ended) if ended else None
                held = uow.tokens.renew(books.tokens(), self.options.lease) if turn.renew else None
                if turn.claim:
                    jobs = self._claim(uow, turn.claim)
                    claimed = sum(len(job.tokens) for job in jobs)
                    if claimed < turn.claim:  # short: what do the stage's controls say?
                        state = uow.stages.state(self._stage.name.value)
                # Draining, with nothing claimed or running: is the stage's work all done?
                done = self.options.drain and turn.claim and not jobs and not books.claimed
                if turn.backlog or done:
                    backlog = uow.tokens.backlog(self._stage.name.value)
        except DatabaseUnavailable as error:
            self._schedule.outage.failed(self._clock())
            self.report.database_down(error)
            return
        self.report.database_back()
        now = self._clock()
        self._schedule.turn_done(turn, now, claimed=claimed, held_before=held_before)
        if state is not None:
            blocked = state.blocked()
            until = None if blocked is None else blocked.until
            blocked_for = None if until is None else (until - state.now).total_seconds()
            self._schedule.controlled(now, limited=state.limited, blocked_for=blocked_for)
        if recorded is not None:
            del books.unwritten[: len(ended)]
            self.report.recorded(ended, recorded)
        if held is not None:
            self._renewed(held, deadline)
        for job in jobs:
            job.deadline = deadline
        if turn.claim:
            self.report.claimed(claimed)
            books.claimed |= {job.id: job for job in jobs}
            if self._schedule.stopping.requests:  # a signal came while claiming: none starts
                self._executor.hand_back(jobs)
            else:
                self._executor.submit(jobs)
        if backlog is not None:
            self.report.backlog = backlog
            if self.options.drain and backlog.empty and not books.claimed:
                self._drained = True

    def _claim(self, uow: UnitOfWork, limit: int) -> list[Job]:
        """Claim up to `limit` tokens as jobs of `--batch` tokens each (a job is a lease: its
        tokens share one lease id), and record their start in the stage's history in the same
        transaction."""
        options = self.options
        tokens = uow.tokens.claim(
            self._stage.name.value, limit, options.worker, options.lease, job_size=options.batch
        )
        if not tokens:
            return []
        history_of(self._stage).started(uow, tokens, self._program.name)
        jobs: dict[uuid.UUID | None, list[ClaimedToken]] = {}
        for token in tokens:
            jobs.setdefault(token.lease_id, []).append(token)
        # A job is its lease: it goes by the lease id (which every claimed token carries).
        started = datetime.now(UTC)
        return [
            Job(batch, id=lease or uuid.uuid4(), started=started) for lease, batch in jobs.items()
        ]

    def _renewed(self, held: list[ClaimedToken], deadline: float) -> None:
        """Keep the new expiries and push the jobs' deadlines back; kill the jobs of every token
        another claim took over."""
        by_id = {token.id: token for token in held}
        lost: list[int] = []
        renewed: list[Job] = []
        for job in self._books.jobs():
            gone = [token.token_id for token in job.tokens if token.id not in by_id]
            job.tokens = [by_id.get(token.id, token) for token in job.tokens]
            if gone:
                lost += gone
                job.kill(LEASE_LOST)
            else:
                job.deadline = deadline
                renewed.append(job)
        self._executor.extend(renewed)
        self.report.renewed(len(held), lost)

    def _kill_overdue(self, now: float) -> None:
        """Kill every job whose lease could run out before a renewal lands: another claim may
        take its tokens over then, and the two must never overlap."""
        for job in self._books.by_deadline():  # killing one leaves the claimed jobs as they are
            if job.deadline > now:
                break  # the rest are due later still
            logger.warning("work.lease_expiring", tokens=[t.token_id for t in job.tokens])
            job.kill(LEASE_EXPIRING)

    def _collect(self) -> None:
        """Take in the jobs that ended since the last look."""
        books = self._books
        for job in self._executor.ended():
            job.ended_at = self._clock()
            books.claimed.pop(job.id, None)
            books.unwritten.append(job)
            self._schedule.job_ended(job)
        self.report.set_running(len(self._executor.running()))

    def _abandon(self) -> None:
        """On the way out (an error): stop every job, and hand its tokens back if the database
        lets us; otherwise their leases run out on their own."""
        deadline = self._clock() + _ABANDON_S
        self._collect()
        while self._books.claimed and self._clock() < deadline:
            self._executor.hand_back_queued()
            for job in self._executor.running():  # a slot may have just taken one
                job.kill("shutdown")
            self._waiter.wait(0.1)
            self._collect()
        if not self._books.unwritten:
            return
        try:
            with self._uow() as uow:
                write_outcomes(uow, self._stage, self._books.unwritten)
        except Exception as error:
            logger.warning("work.abandoned", error=str(error), note="leases will run out")
