"""`glisk work` under a stage's flow control, with real runners and real jobs: a fleet-wide
concurrency limit is never exceeded, also when runners are killed or stopped; a pause stops
every start at once and a resume restarts them within a second; a job's `retry_after` cools the
whole stage down; a rate limit holds in every window, and a limit costs no throughput."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from glisk_cli.flow import Rate
from tests.conftest import GLISK, seed_tokens
from tests.work.jobs import command, journal_entries
from tests.work.runners import RunnerProcess, wait_until


def _limit(uow_factory, stage: str, **limits: Any) -> None:
    with uow_factory() as uow:
        uow.stages.limit(stage, **limits)


def _runners(
    tmp_path: Path, env: dict[str, str], count: int, *args: str, job: list[str]
) -> list[RunnerProcess]:
    return [
        RunnerProcess(tmp_path, env, *args, "--", *job, name=f"runner-{n}") for n in range(count)
    ]


def _stop(runners: list[RunnerProcess]) -> None:
    for runner in runners:
        if runner.process.poll() is None:
            os.kill(runner.process.pid, signal.SIGCONT)
            runner.process.terminate()
    for runner in runners:
        runner.wait(60)


def _slots(journal: Path) -> list[dict[str, Any]]:
    return [entry for entry in journal_entries(journal) if entry["event"] == "slot"]


def _most_at_once(journal: Path) -> int:
    """The most jobs that ran at once, from the start and end stamps of the jobs that ended."""
    entries = journal_entries(journal)
    ends = {e["pid"]: e["at"] for e in entries if e["event"] == "slot_done"}
    spans = [
        (e["at"], ends[e["pid"]]) for e in entries if e["event"] == "slot" and e["pid"] in ends
    ]
    moments = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = most = 0
    for _, change in moments:
        running += change
        most = max(most, running)
    return most


@pytest.mark.soak
def test_a_fleet_limit_holds_when_runners_are_killed_and_stopped(
    work_env, session_factory, uow_factory, query, tmp_path: Path
) -> None:
    # Three runners of eight slots each under a fleet-wide limit of five. Every job holds one
    # of five slot files while it runs (the kernel lets go when it dies): a sixth job alive at
    # any instant finds none free. Meanwhile runners are killed (-9) and restarted, and stopped
    # (SIGSTOP) for longer than their lease, so that others take their tokens over.
    seed_tokens(session_factory, 2000)
    _limit(uow_factory, "generation", concurrency=5)
    journal, slots = tmp_path / "journal", tmp_path / "slots"
    slots.mkdir()
    args = ("generation", "--concurrency", "8", "--lease", "3s")
    job = command("slot", journal, slots, 5, 0.3)
    runners = _runners(tmp_path, work_env, 3, *args, job=job)
    chaos = random.Random(26)  # noqa: S311 — a seeded stream, for a test
    try:
        wait_until(lambda: len(_slots(journal)) >= 10, what="the first jobs")
        until = time.monotonic() + 30
        while time.monotonic() < until:
            n = chaos.randrange(3)
            victim = runners[n]
            if chaos.random() < 0.5:
                victim.process.kill()
                victim.wait()
                runners[n] = RunnerProcess(tmp_path, work_env, *args, "--", *job, name=f"r{n}")
            else:
                os.kill(victim.process.pid, signal.SIGSTOP)
                time.sleep(4)  # past its lease: its tokens are taken over meanwhile
                os.kill(victim.process.pid, signal.SIGCONT)
            time.sleep(chaos.uniform(0.5, 2))
    finally:
        _stop(runners)
    starts = _slots(journal)
    assert len(starts) > 100
    assert [e for e in starts if e["slot"] is None] == []  # never a sixth job alive
    assert _most_at_once(journal) == 5  # the limit is reached, and never passed
    assert query("SELECT count(*) FROM tokens_s0 WHERE status = 'failed'")[0][0] == 0


@pytest.mark.soak
def test_reveal_batches_under_a_limit_of_one_never_overlap(
    work_env, session_factory, uow_factory, query, tmp_path: Path
) -> None:
    seed_tokens(session_factory, 60, status="ready")
    _limit(uow_factory, "reveal", concurrency=1)
    journal, slots = tmp_path / "journal", tmp_path / "slots"
    slots.mkdir()
    job = command("slot", journal, slots, 1, 0.1)
    runners = _runners(
        tmp_path, work_env, 2, "reveal", "--concurrency", "3", "--batch", "10", "--drain", job=job
    )
    for runner in runners:
        assert runner.wait() == 0, runner.stderr
    starts = _slots(journal)
    assert len(starts) == 6  # six batches of ten, one at a time
    assert None not in {entry["slot"] for entry in starts}
    assert _most_at_once(journal) == 1
    assert query("SELECT count(*) FROM tokens_s0 WHERE status = 'revealed'")[0][0] == 60


@pytest.mark.soak
def test_a_pause_stops_every_start_and_a_resume_restarts_within_a_second(
    work_env, glisk_env, session_factory, query, tmp_path: Path
) -> None:
    seed_tokens(session_factory, 500)
    journal, slots = tmp_path / "journal", tmp_path / "slots"
    slots.mkdir()
    job = command("slot", journal, slots, 100, 0.1)
    runners = _runners(tmp_path, work_env, 2, "generation", "--concurrency", "2", job=job)
    glisk = _glisk(tmp_path, work_env)
    try:
        wait_until(lambda: len(_slots(journal)) >= 4, what="the first jobs")
        assert glisk("stage", "pause", "generation", "--reason", "deploy").returncode == 0
        paused_at = time.time()
        late = RunnerProcess(tmp_path, work_env, "generation", "--", *job, name="late")
        runners.append(late)
        time.sleep(1)
        # A job starts when its claim commits: none after the pause returned, anywhere.
        assert [at for at in _start_times(query) if at > paused_at] == []
        assert glisk("stage", "resume", "generation").returncode == 0
        resumed_at = time.time()
        wait_until(lambda: _start_times(query)[-1] > resumed_at, 5, "a restart")
        assert min(at for at in _start_times(query) if at > resumed_at) - resumed_at < 1.0
    finally:
        _stop(runners)


def test_a_job_asking_to_retry_after_cools_the_stage_down_without_costing_an_attempt(
    work_env, session_factory, query, tmp_path: Path
) -> None:
    seed_tokens(session_factory, 6)
    journal = tmp_path / "journal"
    runner = RunnerProcess(
        tmp_path, work_env, "generation", "--drain", "--", *command("busy", journal, "1s")
    )
    assert runner.wait() == 0, runner.stderr
    starts = [e for e in journal_entries(journal) if e["event"] == "start"]
    first, rest = starts[0], starts[1:]
    assert len(rest) == 6  # the token handed back is done again, and the other five
    claimed = _start_times(query)
    assert claimed[1] - claimed[0] >= 0.95  # nothing started while the stage cooled down
    again = [e for e in rest if e["token_id"] == first["token_id"]]
    assert [e["env"]["GLISK_ATTEMPT"] for e in again] == ["1"]  # the 429 cost no attempt
    assert _done(query) == 6


@pytest.mark.soak
def test_a_rate_limit_holds_in_every_window_and_is_reached(
    work_env, session_factory, uow_factory, query, tmp_path: Path
) -> None:
    seed_tokens(session_factory, 2000)
    _limit(uow_factory, "generation", rate=Rate(10, 1), burst=2)
    answer = 'printf \'{"image_path": "x.png"}\''
    runners = _runners(
        tmp_path, work_env, 2, "generation", "--concurrency", "4", job=["sh", "-c", answer]
    )
    try:
        time.sleep(62)
    finally:
        _stop(runners)
    starts = sorted(_start_times(query))
    window = 1.0
    for n, start in enumerate(starts):
        inside = sum(1 for later in starts[n:] if later < start + window)
        assert inside <= 10 * window + 2 + 1, (n, inside)  # + 1: stamps are commit-side
    steady = [s for s in starts if starts[0] + 1 <= s < starts[0] + 61]
    assert len(steady) >= 0.95 * 10 * 60


@pytest.mark.soak
def test_a_concurrency_limit_keeps_its_throughput(
    work_env, session_factory, uow_factory, query, tmp_path: Path
) -> None:
    seed_tokens(session_factory, 2000)
    _limit(uow_factory, "generation", concurrency=4)
    answer = 'sleep 0.5; printf \'{"image_path": "x.png"}\''
    runners = _runners(
        tmp_path, work_env, 3, "generation", "--concurrency", "4", job=["sh", "-c", answer]
    )
    try:
        wait_until(lambda: _done(query) >= 8, what="the runners under way")  # warmed up
        before, at = _done(query), time.monotonic()
        time.sleep(10)
        after, until = _done(query), time.monotonic()
    finally:
        _stop(runners)
    assert (after - before) / (until - at) >= 0.9 * 4 / 0.5


def _start_times(query: Callable[..., list[Any]]) -> list[float]:
    rows = query("SELECT extract(epoch FROM created_at) FROM image_generation_jobs ORDER BY 1")
    return [float(at) for (at,) in rows]


def _done(query: Callable[..., list[Any]]) -> int:
    return query("SELECT count(*) FROM tokens_s0 WHERE status = 'uploading'")[0][0]


def _glisk(tmp_path: Path, env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(GLISK), *args], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
        )

    return run
