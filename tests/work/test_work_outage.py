"""PostgreSQL restarted under a running runner: the jobs run on, the runner waits the outage
out, writes the outcomes when the database is back, and loses or repeats nothing."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from tests.conftest import restartable_pipeline
from tests.work.jobs import command, journal_entries
from tests.work.runners import RunnerProcess, wait_until

TOKENS = 40


@pytest.mark.soak
def test_a_database_restart_under_a_runner_loses_and_repeats_nothing(
    glisk_env: dict[str, str], tmp_path: Path
) -> None:
    with restartable_pipeline(TOKENS) as (server, url):
        engine = create_engine(url, poolclass=NullPool)
        journal = tmp_path / "journal"
        env = {**glisk_env, "DATABASE_URL": url, "PYTHONPATH": str(Path.cwd())}
        runner = RunnerProcess(
            tmp_path,
            env,
            "generation",
            "--concurrency",
            "4",
            "--drain",
            "--json",
            "--",
            *command("generate", journal, 0.3),
        )

        def done() -> int:
            return sum(entry["event"] == "done" for entry in journal_entries(journal))

        wait_until(lambda: done() >= 8, what="some work before the restart")
        server.stop()  # fast shutdown: every connection is cut
        time.sleep(2)  # jobs land meanwhile, with nowhere to write their outcomes
        server.ensure_running()

        assert runner.wait(timeout=120) == 0, runner.stderr
        assert "database.unavailable" in runner.stderr
        assert "database.back" in runner.stderr
        runs = Counter(e["token_id"] for e in journal_entries(journal) if e["event"] == "start")
        assert sorted(runs) == list(range(1, TOKENS + 1))
        assert set(runs.values()) == {1}
        assert json.loads(runner.stdout)["succeeded"] == TOKENS
        with engine.connect() as connection:
            statuses = {
                row[0]: row[1]
                for row in connection.execute(
                    text("SELECT status, count(*) FROM tokens_s0 GROUP BY 1")
                )
            }
            jobs = {
                row[0]: row[1]
                for row in connection.execute(
                    text("SELECT status, count(*) FROM image_generation_jobs GROUP BY 1")
                )
            }
        assert statuses == {"uploading": TOKENS}
        assert jobs == {"succeeded": TOKENS}
        engine.dispose()
