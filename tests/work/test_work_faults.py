"""The runner when things go wrong: racing runners, a runner killed with kill -9, deploys
(SIGTERM, SIGINT, twice), a lease taken over mid-job, and PostgreSQL restarting underneath.
Real `glisk work` processes, real jobs, a real database; every job run is journaled."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import psutil
import pytest

from tests.conftest import seed_tokens
from tests.work.jobs import command, journal_entries
from tests.work.runners import RunnerProcess, wait_until


def _starts(journal: Path) -> list[dict]:
    return [entry for entry in journal_entries(journal) if entry["event"] == "start"]


@pytest.mark.soak
def test_two_runners_with_short_leases_and_long_jobs_run_each_command_exactly_once(
    work_env, session_factory, query, tmp_path: Path
) -> None:
    seed_tokens(session_factory, 60)
    journal = tmp_path / "journal"
    args = (
        "generation",
        "--concurrency",
        "4",
        "--lease",
        "2s",
        "--drain",
        "--json",
        "--",
        *command("generate", journal, 3),
    )
    runners = [RunnerProcess(tmp_path, work_env, *args, name=f"r{n}") for n in range(2)]
    for runner in runners:
        assert runner.wait(timeout=180) == 0, runner.stderr
    runs = Counter(entry["token_id"] for entry in _starts(journal))
    assert sorted(runs) == list(range(1, 61))
    assert set(runs.values()) == {1}  # every command ran exactly once: renewals kept the leases
    assert sum(json.loads(r.stdout)["succeeded"] for r in runners) == 60
    statuses = query("SELECT status, count(*) FROM tokens_s0 GROUP BY status")
    assert [tuple(row) for row in statuses] == [("uploading", 60)]


@pytest.mark.soak  # waits for a killed runner's leases to run out
def test_after_a_runner_is_killed_another_finishes_its_tokens_as_second_attempts(
    work_env, session_factory, query, tmp_path: Path
) -> None:
    seed_tokens(session_factory, 8)
    journal = tmp_path / "journal"
    doomed = RunnerProcess(
        tmp_path,
        work_env,
        "generation",
        "--concurrency",
        "4",
        "--lease",
        "2s",
        "--",
        *command("generate", journal, 30),
        name="doomed",
    )
    wait_until(lambda: len(_starts(journal)) == 4, what="the first runner's four jobs")
    doomed.process.kill()  # kill -9: no chance to hand anything back
    doomed.wait()
    taken = {entry["token_id"] for entry in _starts(journal)}
    # Its jobs die with it, at once (its watchdog saw it go), not at the end of their 30 s.
    jobs = [entry["pid"] for entry in _starts(journal)]
    wait_until(lambda: not any(psutil.pid_exists(pid) for pid in jobs), 2, "its jobs to die")

    survivor = RunnerProcess(
        tmp_path,
        work_env,
        "generation",
        "--concurrency",
        "4",
        "--drain",
        "--",
        *command("generate", journal),
        name="survivor",
    )
    assert survivor.wait() == 0, survivor.stderr
    assert [tuple(r) for r in query("SELECT status, count(*) FROM tokens_s0 GROUP BY 1")] == [
        ("uploading", 8)
    ]
    second = [e for e in _starts(journal) if e["env"]["GLISK_WORKER"] != _worker_of(doomed)]
    attempts = {e["token_id"]: e["env"]["GLISK_ATTEMPT"] for e in second}
    assert {attempts[token_id] for token_id in taken} == {"2"}
    assert {attempts[t] for t in set(range(1, 9)) - taken} == {"1"}


def _worker_of(runner: RunnerProcess) -> str:
    return f"{__import__('socket').gethostname()}:{runner.process.pid}"


def test_sigterm_lets_running_jobs_finish_and_leaves_no_live_lease(
    work_env, session_factory, query, tmp_path: Path
) -> None:
    seed_tokens(session_factory, 10)
    journal = tmp_path / "journal"
    runner = RunnerProcess(
        tmp_path,
        work_env,
        "generation",
        "--concurrency",
        "2",
        "--json",
        "--",
        *command("generate", journal, 1),
    )
    wait_until(lambda: len(_starts(journal)) >= 2, what="two jobs")
    runner.process.send_signal(signal.SIGTERM)
    assert runner.wait(timeout=30) == 0, runner.stderr
    summary = json.loads(runner.stdout)
    assert summary["stopped"] == "SIGTERM"
    started = {entry["token_id"] for entry in _starts(journal)}
    assert summary["succeeded"] == len(started)  # what had started was let finish
    assert query("SELECT count(*) FROM tokens_s0 WHERE claimed_by IS NOT NULL")[0][0] == 0
    assert query("SELECT count(*) FROM tokens_s0 WHERE status = 'uploading'")[0][0] == len(started)


def test_past_the_grace_jobs_are_killed_and_their_tokens_handed_back_at_once(
    work_env, session_factory, query, tmp_path: Path
) -> None:
    seed_tokens(session_factory, 2)
    journal = tmp_path / "journal"
    runner = RunnerProcess(
        tmp_path,
        work_env,
        "generation",
        "--concurrency",
        "2",
        "--grace",
        "1s",
        "--json",
        "--",
        *command("generate", journal, 60),
    )
    wait_until(lambda: len(_starts(journal)) == 2, what="two jobs")
    began = time.monotonic()
    runner.process.send_signal(signal.SIGTERM)
    assert runner.wait(timeout=30) == 0, runner.stderr
    assert time.monotonic() - began < 10
    assert json.loads(runner.stdout)["released"] == 2
    rows = query("SELECT status, lease_expires_at, claimed_by, attempts FROM tokens_s0")
    # Claimable now, and the stopped attempt not counted: a deploy does not use one up.
    assert [tuple(row) for row in rows] == [("detected", None, None, 0)] * 2
    assert not any(psutil.pid_exists(e["pid"]) for e in _starts(journal))


def test_a_second_signal_skips_the_grace_and_sigint_exits_130(
    work_env, session_factory, query, tmp_path: Path
) -> None:
    seed_tokens(session_factory, 1)
    journal = tmp_path / "journal"
    runner = RunnerProcess(
        tmp_path,
        work_env,
        "generation",
        "--grace",
        "60s",
        "--",
        *command("generate", journal, 60),
    )
    wait_until(lambda: len(_starts(journal)) == 1, what="the job")
    began = time.monotonic()
    runner.process.send_signal(signal.SIGINT)
    time.sleep(0.5)
    runner.process.send_signal(signal.SIGINT)
    assert runner.wait(timeout=30) == 130, runner.stderr
    assert time.monotonic() - began < 10
    assert query("SELECT claimed_by, lease_expires_at FROM tokens_s0")[0] == (None, None)


def test_a_job_whose_lease_is_taken_over_is_killed_and_not_advanced(
    work_env, session_factory, query, uow_factory, tmp_path: Path
) -> None:
    seed_tokens(session_factory, 1)
    journal = tmp_path / "journal"
    runner = RunnerProcess(
        tmp_path,
        work_env,
        "generation",
        "--lease",
        "3s",
        "--json",
        "--",
        *command("generate", journal, 60),
    )
    wait_until(lambda: len(_starts(journal)) == 1, what="the job")
    query("UPDATE tokens_s0 SET lease_expires_at = now() - interval '1 second'")
    with uow_factory() as uow:
        [stolen] = uow.tokens.claim("generation", 1, "thief", timedelta(minutes=5))
    job = psutil.Process(_starts(journal)[0]["pid"])
    job.wait(timeout=10)  # killed at the runner's next renewal (a second away)
    runner.process.send_signal(signal.SIGTERM)
    assert runner.wait(timeout=30) == 0, runner.stderr
    assert json.loads(runner.stdout)["lost"] == 1
    [row] = query("SELECT status, claimed_by, lease_id FROM tokens_s0")
    assert tuple(row) == ("generating", "thief", stolen.lease_id)
    [history] = query("SELECT status, error_data FROM image_generation_jobs")
    assert history.status == "failed"
    assert history.error_data["reason"] == "lease_lost"


def test_metrics_count_attempts_by_outcome_while_the_runner_works(
    work_env, session_factory, tmp_path: Path
) -> None:
    import socket
    import urllib.request

    with socket.socket() as probe:  # a free port, given back for the runner to take
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    seed_tokens(session_factory, 3)
    journal = tmp_path / "journal"
    runner = RunnerProcess(
        tmp_path,
        work_env,
        "generation",
        "--metrics-port",
        str(port),
        "--",
        *command("generate", journal),
    )
    try:
        wait_until(lambda: sum(e["event"] == "done" for e in journal_entries(journal)) == 3)

        def scraped() -> str:
            url = f"http://127.0.0.1:{port}/metrics"
            with urllib.request.urlopen(url, timeout=5) as reply:
                return reply.read().decode()

        wait_until(
            lambda: (
                'glisk_work_attempts_total{outcome="succeeded",stage="generation"} 3.0' in scraped()
            ),
            what="three successes in /metrics",
        )
        text = scraped()
        assert "glisk_work_attempt_duration_seconds_count" in text
        assert 'glisk_work_in_flight{stage="generation"} 0.0' in text
    finally:
        runner.process.send_signal(signal.SIGTERM)
        assert runner.wait(timeout=30) == 0, runner.stderr
