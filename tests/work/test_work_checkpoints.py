"""Checkpoints through `glisk work`: a job records one over the runner's socket before its side
effect, the next attempt reads it on stdin and resumes, and it lands in the stage's history."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import seed_tokens
from tests.work.jobs import command, journal_entries
from tests.work.runners import RunnerProcess


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
