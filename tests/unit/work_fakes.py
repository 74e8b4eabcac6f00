"""Plain fakes for the runner's loop: a clock the test moves, a waiter that moves it, an executor
whose jobs take a set time on that clock, and an in-memory token queue with the face the runner
uses (`uow.tokens`) — so that the loop's turns are tested with neither a process nor a database.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from glisk_cli.errors import DatabaseUnavailable
from glisk_cli.flow import StageState
from glisk_cli.pipeline import STAGE_IN_FLIGHT, STAGES, StageName, TokenStatus
from glisk_cli.repositories.token_records import AdvanceResult, Backlog, ClaimedToken
from glisk_cli.uow import UnitOfWork
from glisk_cli.work.executor import Executor
from glisk_cli.work.jobs import Job
from glisk_cli.work.options import WorkOptions
from glisk_cli.work.programs import Handler
from glisk_cli.work.protocol import Interrupted, Succeeded, TokenOutcome
from glisk_cli.work.runner import Runner
from glisk_cli.work.waiting import Waiter
from tests.unit.records import claimed_token

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
GENERATION = STAGES[StageName.GENERATION]


class Clock:
    """Seconds that pass only when the test (or the fake waiter) says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def at(self) -> datetime:
        """The same moment as a wall-clock time, as the database would stamp it."""
        return EPOCH + timedelta(seconds=self.now)


class FakeWaiter(Waiter):
    """Sleeping moves the clock, and lets `on_sleep` change the world meanwhile. With `slots`,
    a job's end wakes it, as the real executor wakes the loop."""

    def __init__(
        self,
        clock: Clock,
        on_sleep: Callable[[], None] = lambda: None,
        slots: FakeSlots | None = None,
    ) -> None:
        super().__init__(None)
        self._clock, self._on_sleep, self._slots = clock, on_sleep, slots
        self.sleeps: list[float] = []

    def listen(self) -> None:
        pass

    def wait(self, timeout: float) -> bool:
        self.sleeps.append(timeout)
        ends = None if self._slots is None else self._slots.next_end()
        if ends is not None:
            timeout = min(timeout, max(ends - self._clock.now, 0))
        self._clock.now += max(timeout, 0.001)
        if self._clock.now > 100_000:
            raise AssertionError("the runner never stopped")
        self._on_sleep()
        return False


class FakeSlots(Executor):
    """Starts every job it is given at once; each ends `seconds` later on the clock with
    `answer(job)`, or at once, interrupted, when it is killed."""

    def __init__(
        self,
        clock: Clock,
        options: WorkOptions,
        seconds: float,
        answer: Callable[[Job], dict[uuid.UUID, TokenOutcome]],
    ) -> None:
        super().__init__(GENERATION, options, lambda: None)
        self._clock, self._seconds, self._answer = clock, seconds, answer
        self._due: dict[uuid.UUID, float] = {}
        self.started: list[Job] = []
        self.kills: list[float] = []  # when each running job was killed

    def submit(self, jobs: list[Job]) -> None:
        for job in jobs:
            self._started(job)
            self.started.append(job)
            self._due[job.id] = self._clock() + self._seconds
            job.attach(_FakeRun(self, job))

    def ended(self) -> list[Job]:
        for job in self.running():
            if job.id in self._due and self._clock() >= self._due[job.id]:
                del self._due[job.id]
                self._ended(job.end(self._answer(job), self._seconds))
        return super().ended()

    def next_end(self) -> float | None:
        """When the next running job ends, if one runs."""
        return min(self._due.values(), default=None)

    def killed(self, job: Job, reason: str) -> None:
        if self._due.pop(job.id, None) is not None:
            self.kills.append(self._clock())
            self._ended(job.end({token.id: Interrupted(reason) for token in job.tokens}, 0))


@dataclass
class _FakeRun:
    slots: FakeSlots
    job: Job

    def kill(self, reason: str) -> None:
        self.slots.killed(self.job, reason)


def succeed(job: Job) -> dict[uuid.UUID, TokenOutcome]:
    return {token.id: Succeeded({"image_path": f"{token.token_id}.png"}) for token in job.tokens}


@dataclass
class FakeControls:
    """`uow.stages` for one stage: a concurrency limit (jobs held by anyone) and a cooldown."""

    clock: Clock
    concurrency: int | None = None
    cooldown_until: datetime | None = None
    running: int = 0  # set by the queue, as the real one counts live leases

    def admitted(self, jobs: int) -> int:
        if self.cooldown_until is not None and self.cooldown_until > self.clock.at():
            return 0
        if self.concurrency is None:
            return jobs
        return max(0, min(jobs, self.concurrency - self.running))

    def state(self, stage: str) -> StageState:
        return StageState(
            stage=stage,
            now=self.clock.at(),
            paused_at=None,
            pause_reason=None,
            paused_until=None,
            concurrency=self.concurrency,
            running=self.running,
            holders=(),
            rate=None,
            burst=1,
            bucket=None,
            cooldown_until=self.cooldown_until,
            cooldown_reason=None,
        )


@dataclass
class FakeQueue:
    """`uow.tokens` over tokens kept in memory, fenced by lease id as the real one is, with the
    stage's controls admitting its jobs."""

    clock: Clock
    controls: FakeControls
    tokens: dict[uuid.UUID, ClaimedToken] = field(default_factory=dict)
    max_attempts: int = 5
    renewals: list[float] = field(default_factory=list)  # when each renewal ran

    def add(self, count: int) -> None:
        for n in range(1, count + 1):
            token = claimed_token(
                n,
                TokenStatus.DETECTED,
                mint_timestamp=EPOCH + timedelta(seconds=n),
                claimed_by=None,
                lease_expires_at=None,
                attempts=0,
                lease_id=None,
            )
            self.tokens[token.id] = token

    def by_status(self, status: TokenStatus) -> list[int]:
        return sorted(t.token_id for t in self.tokens.values() if t.status is status)

    def take_over(self, token_id: int) -> None:
        """Another worker's claim: the token gets a lease id of its own."""
        [token] = [t for t in self.tokens.values() if t.token_id == token_id]
        self.tokens[token.id] = replace(token, lease_id=uuid.uuid4(), claimed_by="other")

    # -- the face the runner uses ----------------------------------------------------------

    def claim(
        self,
        stage: str,
        limit: int,
        worker: str,
        lease: timedelta | None = None,
        *,
        job_size: int | None = None,
    ) -> list[ClaimedToken]:
        now, size = self.clock.at(), job_size or limit
        self.controls.running = len(
            {
                t.lease_id
                for t in self.tokens.values()
                if t.lease_id and (t.lease_expires_at or now) > now
            }
        )
        jobs = self.controls.admitted(-(-limit // size))
        limit = min(limit, jobs * size)
        lease_ids = [uuid.uuid4() for _ in range(jobs)]
        free = [
            t
            for t in sorted(self.tokens.values(), key=lambda t: t.token_id)
            if t.status in STAGES[StageName(stage)].claimable
            and (t.lease_expires_at is None or t.lease_expires_at < now)
        ]
        claimed = []
        for place, token in enumerate(free[:limit]):
            held = replace(
                token,
                status=STAGES[StageName(stage)].in_flight,
                claimed_by=worker,
                lease_id=lease_ids[place // size],
                lease_expires_at=now + (lease or timedelta(seconds=60)),
                attempts=token.attempts + 1,
            )
            self.tokens[token.id] = held
            claimed.append(held)
        return claimed

    def renew(self, tokens: Sequence[ClaimedToken], lease: timedelta) -> list[ClaimedToken]:
        self.renewals.append(self.clock())
        held = [t for t in tokens if self.tokens[t.id].lease_id == t.lease_id]
        for token in held:
            self.tokens[token.id] = replace(token, lease_expires_at=self.clock.at() + lease)
        return [self.tokens[t.id] for t in held]

    def advance(self, moves: Sequence[tuple[ClaimedToken, Mapping[str, Any]]]) -> AdvanceResult:
        moved, refused = [], {}
        for token, fields in moves:
            if self.tokens[token.id].lease_id != token.lease_id:
                refused[token.token_id] = "lease_lost"
                continue
            next_status = STAGE_IN_FLIGHT[token.status].next_status
            self.tokens[token.id] = replace(
                self.tokens[token.id],
                status=next_status,
                image_path=fields["image_path"],
                claimed_by=None,
                lease_id=None,
                lease_expires_at=None,
                attempts=0,
            )
            moved.append(token.token_id)
        return AdvanceResult(sorted(moved), refused)

    def release_each(
        self,
        releases: Sequence[tuple[ClaimedToken, Mapping[str, Any] | None]],
        *,
        uncounted: Collection[uuid.UUID] = (),
    ) -> AdvanceResult:
        released, refused, failed = [], {}, []
        for token, error in releases:
            if self.tokens[token.id].lease_id != token.lease_id:
                refused[token.token_id] = "lease_lost"
                continue
            attempts = token.attempts - 1 if token.id in uncounted else token.attempts
            gives_up = error is not None and token.attempts >= self.max_attempts
            status = TokenStatus.FAILED if gives_up else STAGE_IN_FLIGHT[token.status].queued
            self.tokens[token.id] = replace(
                token,
                status=status,
                attempts=attempts,
                claimed_by=None,
                lease_id=None,
                lease_expires_at=None,
                error_data=error,
            )
            released.append(token.token_id)
            if gives_up:
                failed.append(token.token_id)
        return AdvanceResult(sorted(released), refused, failed)

    def backlog(self, stage: str) -> Backlog:
        claimable = STAGES[StageName(stage)].claimable
        waiting = sum(1 for t in self.tokens.values() if t.status in claimable and not t.lease_id)
        in_flight = sum(1 for t in self.tokens.values() if t.lease_id)
        return Backlog(waiting, 0, in_flight, None)


@dataclass
class FakeHistory:
    started: list[int] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)

    def start_running(self, tokens: Sequence[ClaimedToken], service: str) -> None:
        self.started += [token.token_id for token in tokens]

    def finish(self, ends: Sequence[Any]) -> None:
        self.finished += [end.status for end in ends]


@dataclass
class World:
    """What a runner's Units of Work reach: the queue and the history, and whether the
    database answers; every Unit of Work that began is counted."""

    clock: Clock
    queue: FakeQueue
    history: FakeHistory = field(default_factory=FakeHistory)
    down: bool = False
    units: list[float] = field(default_factory=list)  # when each Unit of Work began
    refused: list[float] = field(default_factory=list)  # when the database was away

    def uow_factory(self) -> Callable[[], UnitOfWork]:
        return lambda: cast(UnitOfWork, _FakeUnitOfWork(self))


class _FakeUnitOfWork:
    def __init__(self, world: World) -> None:
        self._world = world
        self.tokens = world.queue
        self.stages = world.queue.controls
        self.image_jobs = world.history

    def __enter__(self) -> _FakeUnitOfWork:
        if self._world.down:
            self._world.refused.append(self._world.clock())
            raise DatabaseUnavailable("cannot reach PostgreSQL")
        self._world.units.append(self._world.clock())
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None


def runner(world: World, slots: FakeSlots, waiter: FakeWaiter, options: WorkOptions) -> Runner:
    return Runner(
        world.uow_factory(), Handler(lambda token: {}), slots, waiter, options, clock=world.clock
    )
