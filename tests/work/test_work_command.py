"""`glisk work` with real commands on a real database: tokens move on, failures are retried
and recorded, each stage writes its history, and bad input claims nothing.

The first tests start `glisk` itself; those about what the runner does with its jobs run the
command in this process (`cli`), its jobs still real processes, which spares each a start of
the interpreter and glisk's imports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.conftest import seed_tokens
from tests.work.jobs import command, journal_entries

TX_HASH = "0x" + "ab" * 32


def test_a_command_finishes_every_generation_token_and_logs_and_records_each_attempt(
    run_glisk, work_env, session_factory, query, tmp_path: Path
) -> None:
    seed_tokens(session_factory, 6)
    journal = tmp_path / "journal"
    result = run_glisk(
        "work",
        "generation",
        "--drain",
        "--concurrency",
        "3",
        "--json",
        "--worker",
        "w1",
        "--",
        *command("generate", journal),
        env=work_env,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["succeeded"] == 6
    assert summary["stopped"] == "drained"
    rows = query("SELECT token_id, status, image_path, lease_id FROM tokens_s0 ORDER BY token_id")
    assert [(r.status, r.image_path, r.lease_id) for r in rows] == [
        ("uploading", f"images/{r.token_id}.png", None) for r in rows
    ]
    jobs = query("SELECT status, service, retry_count, completed_at FROM image_generation_jobs")
    outcomes = sorted((j.status, j.service, j.retry_count) for j in jobs)
    assert outcomes == [("succeeded", "test", 0)] * 6
    assert all(j.completed_at is not None for j in jobs)
    starts = [e for e in journal_entries(journal) if e["event"] == "start"]
    assert sorted(e["token_id"] for e in starts) == [1, 2, 3, 4, 5, 6]
    first = starts[0]
    assert first["status"] == "generating"
    assert first["env"]["GLISK_STAGE"] == "generation"
    assert first["env"]["GLISK_ATTEMPT"] == "1"
    assert first["env"]["GLISK_WORKER"] == "w1"
    assert first["env"]["GLISK_TOKEN_ID"] == str(first["token_id"])
    # Not on a terminal: one log line per attempt, even at the default (WARNING) level.
    lines = [line for line in result.stderr.splitlines() if "attempt." in line]
    assert len(lines) == 6, result.stderr
    assert all(
        " INFO    glisk_cli.work.report attempt.succeeded component=work " in line for line in lines
    )
    assert sorted(line.split(" token_id=")[1].split()[0] for line in lines) == list("123456")


def test_a_failing_command_ends_in_failed_after_max_attempts_with_one_history_row_each(
    run_glisk, work_env, session_factory, query, tmp_path: Path
) -> None:
    seed_tokens(session_factory, 1)
    result = run_glisk(
        "work",
        "generation",
        "--drain",
        "--json",
        "--",
        *command("fail", tmp_path / "j"),
        env={**work_env, "GLISK_MAX_ATTEMPTS": "3", "APP_ENV": "production"},
    )
    assert result.returncode == 9, result.stderr  # drained, but a token failed for good
    assert '"code": "tokens_failed"' in result.stderr  # production: errors as JSON too
    assert json.loads(result.stdout)["failed"] == 1
    [token] = query("SELECT status, attempts, error_data FROM tokens_s0")
    assert token.status == "failed"
    assert token.error_data["reason"] == "max_attempts"
    assert token.error_data["exit_status"] == 3
    assert "the GPU caught fire" in token.error_data["stderr"]
    jobs = query("SELECT * FROM image_generation_jobs ORDER BY retry_count")
    assert [(j.status, j.retry_count) for j in jobs] == [("failed", n) for n in range(3)]
    assert all(j.error_data["message"] == "exited with status 3" for j in jobs)
    # In production each attempt's log line is one JSON object.
    logged = [json.loads(line) for line in result.stderr.splitlines() if '"attempt.' in line]
    assert [(d["level"], d["message"], d["attempt"], d["final"]) for d in logged] == [
        ("WARNING", "attempt.failed", "1", "False"),
        ("WARNING", "attempt.failed", "2", "False"),
        ("WARNING", "attempt.failed", "3", "True"),
    ]


def test_an_upload_writes_the_image_and_metadata_records(
    cli, work_env, session_factory, query, tmp_path: Path
) -> None:
    seed_tokens(session_factory, 2, status="uploading")
    result = cli(
        "work", "upload", "--drain", "--", *command("upload", tmp_path / "j"), env=work_env
    )
    assert result.exit_code == 0, result.stderr
    tokens = query("SELECT status, image_cid FROM tokens_s0 ORDER BY token_id")
    assert [(t.status, t.image_cid) for t in tokens] == [
        ("ready", "bafy-image-1"),
        ("ready", "bafy-image-2"),
    ]
    records = query("SELECT record_type, cid, status FROM ipfs_upload_records ORDER BY cid")
    assert [(r.record_type, r.cid, r.status) for r in records] == [
        ("image", "bafy-image-1", "succeeded"),
        ("image", "bafy-image-2", "succeeded"),
        ("metadata", "bafy-meta-1", "succeeded"),
        ("metadata", "bafy-meta-2", "succeeded"),
    ]


def test_a_reveal_batch_gets_one_reveal_transaction(
    cli, work_env, session_factory, query, tmp_path: Path
) -> None:
    seed_tokens(session_factory, 4, status="ready")
    journal = tmp_path / "j"
    result = cli(
        "work",
        "reveal",
        "--batch",
        "10",
        "--drain",
        "--",
        *command("reveal", journal),
        env=work_env,
    )
    assert result.exit_code == 0, result.stderr
    assert len({e["pid"] for e in journal_entries(journal) if e["event"] == "start"}) == 1
    tokens = query("SELECT status, reveal_tx_hash FROM tokens_s0")
    assert {(t.status, t.reveal_tx_hash) for t in tokens} == {("revealed", TX_HASH)}
    [reveal] = query("SELECT token_ids, tx_hash, status, block_number FROM reveal_transactions")
    assert (reveal.tx_hash, reveal.status, reveal.block_number) == (TX_HASH, "confirmed", 7)
    assert len(reveal.token_ids) == 4


def test_a_command_past_its_timeout_is_killed_with_what_it_started(
    cli, work_env, session_factory, query, tmp_path: Path
) -> None:
    seed_tokens(session_factory, 1)
    journal = tmp_path / "j"
    [token] = _once(cli, work_env, query, "--timeout", "1s", "--", *command("hang", journal))
    assert token.status == "failed"
    assert token.error_data["message"].startswith("timed out")
    children = [e["pid"] for e in journal_entries(journal) if e["event"] == "child"]
    assert children
    assert not _running(children[0])


def _once(cli, work_env: dict[str, str], query, *args: str) -> list[Any]:
    """Drain generation giving each token one attempt (`args`: options, `--` and the command),
    which fails: exit 9; the tokens' id, status and error, by id."""
    result = cli(
        "work", "generation", "--drain", *args, env={**work_env, "GLISK_MAX_ATTEMPTS": "1"}
    )
    assert result.exit_code == 9, result.stderr
    return query("SELECT token_id, status, error_data FROM tokens_s0 ORDER BY token_id")


def _running(pid: int) -> bool:
    """Alive and not a zombie (a killed orphan waits for whoever reaps orphans here)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nowhere", "--", "true"], "nowhere"),
        (["generation", "--concurrency", "0", "--", "true"], "--concurrency"),
        (["generation"], "no command"),
        (["generation", "--", "no-such-command-anywhere"], "not found"),
        (["generation", "--", "{tmp}/notes.txt"], "not executable"),
        (["generation", "--lease", "500ms", "--", "true"], "--lease"),
        (["generation", "--timeout", "2d", "--", "true"], "--timeout"),
        (["generation", "--lease", "soon", "--", "true"], "--lease"),
    ],
)
def test_bad_input_exits_2_before_anything_is_claimed(
    cli, work_env, session_factory, query, tmp_path: Path, args: list[str], message: str
) -> None:
    seed_tokens(session_factory, 1)
    (tmp_path / "notes.txt").write_text("not a program\n")
    result = cli("work", *(arg.format(tmp=tmp_path) for arg in args), env=dict(work_env))
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert query("SELECT claimed_by, attempts FROM tokens_s0")[0] == (None, 0)


def test_a_command_flooding_its_output_fails_its_attempt_without_stalling_the_runner(
    cli, work_env, session_factory, query, tmp_path: Path
) -> None:
    seed_tokens(session_factory, 1)
    [token] = _once(cli, work_env, query, "--", *command("flood", tmp_path / "j"))
    assert token.status == "failed"
    assert token.error_data["message"] == "the answer is over 1048576 bytes"
    assert len(token.error_data["stderr"]) <= 2048


def test_an_answer_without_the_stage_fields_is_a_failed_attempt(
    cli, work_env, session_factory, query, tmp_path: Path
) -> None:
    seed_tokens(session_factory, 1)
    script = "cat >/dev/null; echo '{\"x\": 1}'"
    [token] = _once(cli, work_env, query, "--", "sh", "-c", script)
    assert token.status == "failed"
    assert "no image_path" in token.error_data["message"]


def test_the_job_reads_the_token_document_that_tokens_show_prints_plus_its_lease(
    cli, work_env, session_factory, tmp_path: Path
) -> None:
    seed_tokens(session_factory, 1)
    seen = tmp_path / "seen.json"
    script = f'cat > {seen}; echo \'{{"image_path": "a.png"}}\''
    result = cli("work", "generation", "--drain", "--", "sh", "-c", script, env=work_env)
    assert result.exit_code == 0, result.stderr
    document = json.loads(seen.read_text())
    shown = json.loads(cli("tokens", "show", "1", "--json", env=work_env).stdout)
    assert [*document, "history"] == list(shown)
    assert [(a["stage"], a["outcome"]) for a in shown["history"]] == [("generation", "succeeded")]
    assert document["lease_id"] is not None
    assert (document["token_id"], document["status"]) == (1, "generating")


def test_a_runner_on_a_database_not_at_head_exits_7_and_runs_nothing(
    cli, database_url: str, tmp_path: Path
) -> None:
    journal = tmp_path / "j"
    result = cli(
        "work",
        "generation",
        "--drain",
        "--",
        *command("generate", journal),
        env={"DATABASE_URL": database_url},
    )
    assert result.exit_code == 7, result.stderr
    assert "glisk db upgrade" in result.stderr
    assert "Traceback" not in result.stderr
    assert journal_entries(journal) == []


def test_on_a_terminal_the_runner_shows_a_live_line_instead_of_a_line_per_attempt(
    work_env, session_factory, tmp_path: Path
) -> None:
    import os
    import pty
    import subprocess
    import threading

    from tests.conftest import GLISK

    seed_tokens(session_factory, 3)
    main, secondary = pty.openpty()
    process = subprocess.Popen(
        [str(GLISK), "work", "generation", "--drain", "--", *command("generate", tmp_path / "j")],
        env=work_env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=secondary,
    )
    os.close(secondary)
    seen = bytearray()

    def read() -> None:
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:
                return
            if not chunk:
                return
            seen.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    stdout, _ = process.communicate(timeout=60)
    reader.join(timeout=5)
    os.close(main)
    assert process.returncode == 0
    terminal = seen.decode(errors="replace")
    assert "generation: claimed 3" in terminal
    assert "succeeded 3" in terminal
    assert "attempt.succeeded" not in terminal  # the live line replaces the per-attempt lines
    assert b"succeeded 3" in stdout  # the summary is data: on stdout


def test_a_nul_character_in_what_a_job_says_fails_its_attempt_not_the_runner(
    cli, work_env, session_factory, query
) -> None:
    seed_tokens(session_factory, 2)
    script = (
        'cat >/dev/null; if [ "$GLISK_TOKEN_ID" = 1 ]; then printf "bad\\0byte" >&2; exit 1; fi; '
        'printf \'{"image_path": "a\\\\u0000b"}\''
    )
    rows = _once(cli, work_env, query, "--", "sh", "-c", script)
    assert [(r.token_id, r.status) for r in rows] == [(1, "failed"), (2, "failed")]
    assert rows[0].error_data["stderr"] == "badbyte"
    assert rows[1].error_data["message"] == "the job's image_path holds a NUL character"


def test_a_job_that_exits_leaving_a_chatty_child_behind_is_done_and_the_child_killed(
    cli, work_env, session_factory, query
) -> None:
    seed_tokens(session_factory, 1)
    script = (
        "(while :; do echo still here >&2; sleep 0.1; done) & "
        'cat >/dev/null; echo \'{"image_path": "a.png"}\''
    )
    result = cli("work", "generation", "--drain", "--", "sh", "-c", script, env=work_env)
    assert result.exit_code == 0, result.stderr
    assert query("SELECT status FROM tokens_s0")[0][0] == "uploading"
