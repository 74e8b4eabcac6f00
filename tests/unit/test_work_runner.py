"""The runner's loop, turn by turn, on plain fakes (tests/unit/work_fakes.py): a clock the test
moves, jobs that take a set time on it, an in-memory queue. What it proves holds for any
program, any database: the real ones are tested in tests/work/."""

from __future__ import annotations

import random
from datetime import timedelta
from itertools import pairwise

from glisk_cli.pipeline import StageName, TokenStatus
from glisk_cli.policy import Backoff
from glisk_cli.work.jobs import LEASE_EXPIRING, Job
from glisk_cli.work.options import WorkOptions
from glisk_cli.work.runner import Runner
from glisk_cli.work.schedule import OUTAGE_BACKOFF, Books, Schedule
from tests.unit.work_fakes import (
    EPOCH,
    Clock,
    FakeControls,
    FakeQueue,
    FakeSlots,
    FakeWaiter,
    World,
    runner,
    succeed,
)


def options(**given: object) -> WorkOptions:
    return WorkOptions(StageName.GENERATION, "w:1", **given)  # type: ignore[arg-type]


def stop_once(runner: Runner) -> None:
    """A SIGTERM, as a deploy sends it (a second one would skip the grace)."""
    if runner.stop_reason is None:
        runner.stop("SIGTERM")


def world(tokens: int) -> World:
    clock = Clock()
    queue = FakeQueue(clock, FakeControls(clock))
    queue.add(tokens)
    return World(clock, queue)


def test_a_drain_runs_every_token_once_and_writes_many_outcomes_per_turn() -> None:
    w = world(30)
    opts = options(concurrency=2, drain=True)
    slots = FakeSlots(w.clock, opts, seconds=0.01, answer=succeed)

    summary = runner(w, slots, FakeWaiter(w.clock), opts).run()

    assert w.queue.by_status(TokenStatus.UPLOADING) == list(range(1, 31))
    assert summary["succeeded"] == summary["claimed"] == 30
    started = sorted(token.token_id for job in slots.started for token in job.tokens)
    assert started == list(range(1, 31))  # each token's job ran once
    assert sorted(w.history.started) == list(range(1, 31))
    assert w.history.finished == ["succeeded"] * 30
    assert len(w.units) < 15  # claims ahead and writes in rounds: not a commit per token


def test_leases_are_renewed_every_third_of_the_lease_while_a_job_runs() -> None:
    w = world(1)
    opts = options(lease=timedelta(seconds=30), drain=True)
    slots = FakeSlots(w.clock, opts, seconds=100, answer=succeed)

    runner(w, slots, FakeWaiter(w.clock), opts).run()

    renewals = w.queue.renewals
    assert len(renewals) == 10  # at 10 s, 20 s, … 100 s, when the job's outcome is written
    assert all(abs(later - earlier - 10) < 0.01 for earlier, later in pairwise(renewals))
    assert w.queue.by_status(TokenStatus.UPLOADING) == [1]


def test_a_job_whose_token_was_taken_over_is_killed_and_its_outcome_dropped() -> None:
    w = world(1)
    opts = options(lease=timedelta(seconds=30))
    slots = FakeSlots(w.clock, opts, seconds=100, answer=succeed)
    started = w.clock()

    def world_moves() -> None:
        if w.clock() - started > 5 and not taken_over:
            taken_over.append(True)
            w.queue.take_over(1)
        if the_runner.report.counts.lost:
            the_runner.stop("SIGTERM")

    taken_over: list[bool] = []
    the_runner = runner(w, slots, FakeWaiter(w.clock, world_moves), opts)
    summary = the_runner.run()

    assert (summary["lost"], summary["succeeded"]) == (1, 0)
    assert w.clock() - started < 15  # killed at the first renewal, not after its 100 s
    assert w.queue.by_status(TokenStatus.GENERATING) == [1]  # still the other worker's
    assert w.history.finished == ["failed"]


def test_while_the_database_is_away_turns_back_off_and_nothing_that_ended_is_lost() -> None:
    w = world(3)
    opts = options(concurrency=3, drain=True)
    slots = FakeSlots(w.clock, opts, seconds=1, answer=succeed)
    outage_from = w.clock() + 0.5

    def database_comes_and_goes() -> None:
        w.down = outage_from <= w.clock() < outage_from + 30

    summary = runner(w, slots, FakeWaiter(w.clock, database_comes_and_goes), opts).run()

    tries = w.refused
    assert len(tries) >= 5
    for n, (earlier, later) in enumerate(pairwise(tries), start=1):
        longest = OUTAGE_BACKOFF.cap.total_seconds()
        delay = min(longest, OUTAGE_BACKOFF.base.total_seconds() * 2 ** (n - 1))
        assert delay / 2 - 0.01 <= later - earlier <= delay + 0.01
    assert summary["succeeded"] == 3
    assert w.queue.by_status(TokenStatus.UPLOADING) == [1, 2, 3]
    assert w.history.finished == ["succeeded"] * 3  # written once, after the outage


def test_a_stop_lets_a_running_job_finish_within_the_grace_and_claims_nothing_more() -> None:
    w = world(5)
    opts = options(grace=timedelta(seconds=30))
    slots = FakeSlots(w.clock, opts, seconds=5, answer=succeed)
    the_runner = runner(w, slots, FakeWaiter(w.clock, lambda: stop_once(the_runner)), opts)

    summary = the_runner.run()

    assert summary["stopped"] == "SIGTERM"
    assert (summary["claimed"], summary["succeeded"]) == (1, 1)
    assert w.queue.by_status(TokenStatus.DETECTED) == [2, 3, 4, 5]


def test_past_the_grace_a_job_is_killed_and_its_token_handed_back_its_attempt_uncounted() -> None:
    w = world(1)
    opts = options(grace=timedelta(seconds=2))
    slots = FakeSlots(w.clock, opts, seconds=100, answer=succeed)
    the_runner = runner(w, slots, FakeWaiter(w.clock, lambda: stop_once(the_runner)), opts)
    started = w.clock()

    summary = the_runner.run()

    assert summary["released"] == 1
    assert 2 <= w.clock() - started < 5
    [token] = w.queue.tokens.values()
    assert (token.status, token.attempts, token.lease_id) == (TokenStatus.DETECTED, 0, None)


def test_a_job_is_killed_before_its_lease_can_run_out_when_no_renewal_lands() -> None:
    # The database goes away while a long job runs: nothing renews the lease, so the job is
    # stopped a fifth of the lease before it could run out — before anyone could take over.
    w = world(1)
    opts = options(lease=timedelta(seconds=30))
    slots = FakeSlots(w.clock, opts, seconds=100, answer=succeed)
    started = w.clock()

    def world_moves() -> None:
        w.down = 1 <= w.clock() - started < 60
        if w.clock() - started > 70:
            stop_once(the_runner)

    the_runner = runner(w, slots, FakeWaiter(w.clock, world_moves), opts)
    the_runner.run()

    assert slots.started[0].killed == LEASE_EXPIRING
    assert round(slots.kills[0] - started, 3) == 24  # 0.8 of the lease after the claim
    assert w.history.finished[0] == "failed"  # stopped, written once the database came back


def test_under_a_fleet_limit_a_runner_claims_only_what_the_limit_admits() -> None:
    w = world(20)
    w.queue.controls.concurrency = 2
    opts = options(concurrency=4, drain=True)
    slots = FakeSlots(w.clock, opts, seconds=0.01, answer=succeed)
    most: list[int] = []
    waiter = FakeWaiter(w.clock, lambda: most.append(len(slots.running())))

    summary = runner(w, slots, waiter, opts).run()

    assert summary["succeeded"] == 20
    assert max(most) == 2


def test_under_a_limit_a_slot_freed_by_the_runners_own_job_is_claimed_at_once() -> None:
    # Nothing notifies a runner when its own job ends (a reveal moves its tokens to revealed,
    # which no one waits for): it claims again in the turn that writes the outcome.
    w = world(4)
    w.queue.controls.concurrency = 1
    opts = options(concurrency=2, drain=True)
    slots = FakeSlots(w.clock, opts, seconds=0.3, answer=succeed)
    started = w.clock()

    summary = runner(w, slots, FakeWaiter(w.clock, slots=slots), opts).run()

    assert summary["succeeded"] == 4
    assert w.clock() - started < 1.5  # four jobs of 0.3 s one after another, no poll between


def test_a_cooling_stage_is_not_claimed_from_before_its_cooldown_ends() -> None:
    w = world(1)
    w.queue.controls.cooldown_until = EPOCH + timedelta(seconds=w.clock() + 30)
    opts = options(drain=True)
    slots = FakeSlots(w.clock, opts, seconds=1, answer=succeed)
    started = w.clock()

    runner(w, slots, FakeWaiter(w.clock), opts).run()

    assert 30 <= w.clock() - started <= 32
    assert len(w.units) < 10  # no claim while it cooled: a read at the start, a claim at its end


def _ended(books: Books, count: int, at: float) -> None:
    for _ in range(count):
        job = Job([])
        job.ended_at = at
        books.unwritten.append(job)


def test_short_jobs_are_claimed_rounds_ahead_and_long_ones_only_for_free_slots() -> None:
    clock = Clock()
    short = Schedule(options(concurrency=2), watched=False)
    long = Schedule(options(concurrency=2), watched=False)
    short.job_ended(Job([]).end({}, 0.01))
    long.job_ended(Job([]).end({}, 5))

    assert short.next_turn(Books(), clock()).claim == 18  # nine rounds of two slots
    assert long.next_turn(Books(), clock()).claim == 2


def test_after_a_claim_that_found_too_little_the_next_waits_for_a_poll_or_a_notify() -> None:
    clock = Clock()
    schedule = Schedule(options(), watched=False)
    turn = schedule.next_turn(Books(), clock())
    schedule.turn_done(turn, clock(), claimed=0, held_before=False)

    assert schedule.next_turn(Books(), clock() + 0.5).claim == 0
    assert schedule.next_turn(Books(), clock() + 1.0).claim == 1
    schedule.notified()
    assert schedule.next_turn(Books(), clock() + 0.5).claim == 1


def test_outcomes_are_written_after_three_rounds_or_once_the_first_waited_50_ms() -> None:
    clock = Clock()
    schedule = Schedule(options(concurrency=2), watched=False)
    books = Books(claimed={job.id: job for job in [Job([])]})
    _ended(books, 5, at=clock())
    assert not schedule.next_turn(books, clock()).write
    assert schedule.next_turn(books, clock() + 0.05).write
    _ended(books, 1, at=clock())
    assert schedule.next_turn(books, clock()).write  # six: three rounds of two


def test_backoff_doubles_from_its_base_to_its_cap_with_half_of_each_wait_random() -> None:
    backoff = Backoff(timedelta(seconds=1), timedelta(seconds=10))
    rng = random.Random(7)  # noqa: S311 — a seeded stream, for a test
    for tries, longest in ((1, 1), (2, 2), (3, 4), (4, 8), (5, 10), (40, 10)):
        waits = [backoff.delay(tries, rng).total_seconds() for _ in range(200)]
        assert longest / 2 <= min(waits)
        assert max(waits) <= longest
        assert max(waits) - min(waits) > longest / 4  # jittered, not fixed
