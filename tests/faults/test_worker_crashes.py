"""Workers that die: their row locks and their leases come back to the others."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from tests.conftest import seed_tokens

REPOSITORY = Path(__file__).resolve().parents[2]


def start_worker(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.faults.workers", *args],
        cwd=REPOSITORY,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def first_message(process: subprocess.Popen[str]) -> dict:
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line, process.stderr.read() if process.stderr else "worker said nothing"
    return json.loads(line)


def test_rows_locked_by_a_worker_killed_mid_transaction_are_claimable_at_once(
    migrated_url: str, session_factory, uow_factory
) -> None:
    seed_tokens(session_factory, 6)
    worker = start_worker("hold-locks", migrated_url, "4")
    locked = first_message(worker)["locked"]
    assert locked == [1, 2, 3, 4]
    with uow_factory() as uow:  # while it lives, its locked rows are skipped
        assert [
            t.token_id for t in uow.tokens.claim("generation", 10, "b", timedelta(minutes=1))
        ] == [5, 6]

    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)
    deadline = time.monotonic() + 2
    claimed: list[int] = []
    while time.monotonic() < deadline and not claimed:
        with uow_factory() as uow:
            claimed = [
                t.token_id for t in uow.tokens.claim("generation", 10, "c", timedelta(minutes=1))
            ]
    assert claimed == [1, 2, 3, 4]


def test_tokens_of_a_worker_killed_after_its_claim_return_when_the_lease_expires(
    migrated_url: str, session_factory, uow_factory
) -> None:
    seed_tokens(session_factory, 3)
    worker = start_worker("claim", migrated_url, "3", "1")
    assert first_message(worker)["claimed"] == [1, 2, 3]
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)

    lease = timedelta(minutes=1)
    with uow_factory() as uow:  # the dead worker's lease is still live: no one else may hold it
        assert uow.tokens.claim("generation", 10, "rescuer", lease) == []
    deadline = time.monotonic() + 5
    rescued = []
    while not rescued and time.monotonic() < deadline:
        time.sleep(0.1)
        with uow_factory() as uow:
            rescued = uow.tokens.claim("generation", 10, "rescuer", lease)
    assert [t.token_id for t in rescued] == [1, 2, 3]
    assert {t.attempts for t in rescued} == {2}
    assert {t.claimed_by for t in rescued} == {"rescuer"}
