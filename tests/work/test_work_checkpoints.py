"""Checkpoints through `glisk work`: a job records one over the runner's socket before its side
effect, the next attempt reads it on stdin and resumes, and it lands in the stage's history."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from glisk_cli.checkpoint import LEASE_VARIABLE, SOCKET_VARIABLE, LeaseLost, record
from glisk_cli.pipeline import STAGES, StageName
from glisk_cli.work.checkpoints import CheckpointServer
from tests.conftest import expire_leases, seed_tokens
from tests.work.jobs import command, journal_entries
from tests.work.runners import RunnerProcess


def test_a_job_records_through_the_runner_s_socket_until_its_lease_is_gone(
    session_factory, uow_factory, query, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_tokens(session_factory, 2)
    with uow_factory() as uow:
        held = uow.tokens.claim("generation", 2, "w", timedelta(minutes=5))
        uow.image_jobs.start_running(held, "test")
    server = CheckpointServer(uow_factory, STAGES[StageName.GENERATION])
    try:
        monkeypatch.setenv(SOCKET_VARIABLE, server.path)
        monkeypatch.setenv(LEASE_VARIABLE, str(held[0].lease_id))
        landed = record({"external_job_id": "pred-1"})
        expire_leases(session_factory)
        with pytest.raises(LeaseLost):
            record({"external_job_id": "pred-2"})
    finally:
        server.close()
    assert landed == [1, 2]
    rows = query("SELECT external_job_id FROM image_generation_jobs ORDER BY 1")
    assert [row[0] for row in rows] == ["pred-1", "pred-1"]
    stored = query("SELECT checkpoint FROM tokens_s0 ORDER BY token_id")
    assert [row[0] for row in stored] == [{"external_job_id": "pred-1"}] * 2


@pytest.mark.soak  # real runners: seconds of both cores
def test_a_retried_generation_resumes_from_the_checkpoint_of_the_attempt_before(
    work_env, session_factory, query, tmp_path: Path
) -> None:
    seed_tokens(session_factory, 3)
    journal = tmp_path / "journal"
    runner = RunnerProcess(
        tmp_path, work_env, "generation", "--drain", "--", *command("resume", journal)
    )
    assert runner.wait() == 0, runner.stderr

    seen: dict[int, list[object]] = {}
    for entry in journal_entries(journal):
        if entry["event"] == "saw":
            seen.setdefault(entry["token_id"], []).append(entry["checkpoint"])
    assert seen == {
        n: [None, {"external_job_id": f"pred-{n}", "tx_hash": "0x" + f"{n:064x}"}]
        for n in (1, 2, 3)
    }
    rows = query(
        "SELECT t.token_id, j.status, j.external_job_id FROM image_generation_jobs j "
        "JOIN tokens_s0 t ON t.id = j.token_id ORDER BY t.token_id, j.created_at, j.status"
    )
    assert [tuple(row) for row in rows] == [
        (n, status, f"pred-{n}") for n in (1, 2, 3) for status in ("failed", "succeeded")
    ]
    tokens = query("SELECT image_path, checkpoint FROM tokens_s0 ORDER BY token_id")
    assert [tuple(row) for row in tokens] == [(f"pred-{n}.png", None) for n in (1, 2, 3)]


@pytest.mark.soak
def test_a_reveal_checkpointed_before_its_broadcast_is_pending_then_sent(
    work_env, session_factory, query, tmp_path: Path
) -> None:
    seed_tokens(session_factory, 2, status="ready")
    journal = tmp_path / "journal"
    runner = RunnerProcess(
        tmp_path, work_env, "reveal", "--batch", "2", "--drain", "--", *command("resume", journal)
    )
    assert runner.wait() == 0, runner.stderr
    rows = query("SELECT tx_hash, status, cardinality(token_ids) FROM reveal_transactions")
    assert [tuple(row) for row in rows] == [("0x" + f"{1:064x}", "sent", 2)]
