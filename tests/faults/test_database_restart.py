"""PostgreSQL restarts under four claimer processes: calls in flight fail as glisk's own
"database unavailable", the loops carry on by themselves afterwards, and no token is lost or
finished twice."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from tests.conftest import restartable_pipeline
from tests.faults.test_worker_crashes import start_worker

TOKENS = 400


@pytest.mark.soak
def test_claimers_ride_out_a_database_restart_without_losing_or_doubling_a_token() -> None:
    with restartable_pipeline(TOKENS) as (server, url):
        engine = create_engine(url, poolclass=NullPool)

        workers = [start_worker("loop", url, f"w{i}") for i in range(4)]
        messages: list[dict] = []
        lock = threading.Lock()

        def follow(process) -> None:
            for line in process.stdout:
                with lock:
                    messages.append(json.loads(line))

        readers = [threading.Thread(target=follow, args=(w,), daemon=True) for w in workers]
        for reader in readers:
            reader.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # let real work start before pulling the plug
            with lock:
                if sum("done_token" in m for m in messages) >= 20:
                    break
            time.sleep(0.05)

        server.stop()  # fast shutdown: every connection is cut, mid-statement or not
        time.sleep(1.0)
        server.ensure_running()

        for worker in workers:
            worker.wait(timeout=120)
        for reader in readers:
            reader.join(timeout=10)

        assert [w.returncode for w in workers] == [0, 0, 0, 0], [
            w.stderr.read() if w.stderr else "" for w in workers
        ]
        finished = Counter(m["done_token"] for m in messages if "done_token" in m)
        assert any("unavailable" in m for m in messages), "no call saw the outage"
        assert all(
            "cannot reach PostgreSQL" in m["unavailable"] for m in messages if "unavailable" in m
        )
        assert max(finished.values()) == 1, "a token's generation was finished twice"
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT status, count(*) FROM tokens_s0 GROUP BY status")
            )
            statuses = {status: count for status, count in rows}
        # Every token made it through; one whose finishing commit was cut off by the restart
        # is done without its worker knowing, so it is counted by the database, not the logs.
        assert statuses == {"uploading": TOKENS}
        assert len(finished) >= TOKENS - 4 * 5
        engine.dispose()
