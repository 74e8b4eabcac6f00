"""`glisk top`: frames of a seeded pipeline (empty, busy, stalled worker, database down), one
frame or one JSON document for scripts, bad input, and the live view in a real terminal."""

import fcntl
import io
import json
import os
import pty
import re
import select
import struct
import subprocess
import termios
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from rich.console import Console
from sqlalchemy import text as sa_text

from glisk_cli.cli.top_frame import render
from glisk_cli.cli.top_state import Frame, Monitor, document
from glisk_cli.db import Database
from glisk_cli.flow import Rate
from glisk_cli.models import SCHEMA_REVISION
from glisk_cli.uow import create_uow_factory
from tests.conftest import GLISK, PostgresServer, seed_tokens
from tests.top_pipeline import SECRET_URL, seed_busy_pipeline, stall_worker

LEASE = timedelta(minutes=15)
CLOSED_PORT_URL = "postgresql://glisk:s3cret-pass@127.0.0.1:9/glisk"  # nothing listens on 9


def _monitor(url: str, clock=None) -> tuple[Monitor, Database]:
    database = Database(url, pool_size=1)
    uow_factory = create_uow_factory(database)

    def read():
        with uow_factory() as uow:
            return uow.pipeline_view.read(LEASE)

    extra = {"clock": clock} if clock else {}
    monitor = Monitor(
        read, lambda: "0008", url=database.masked_url, interval=2, lease=LEASE, **extra
    )
    return monitor, database


def _text(frame: Frame, width: int = 110) -> str:
    console = Console(record=True, width=width, file=io.StringIO(), color_system=None)
    console.print(render(frame))
    return console.export_text()


def test_an_empty_pipeline_shows_every_stage_with_nothing_to_do(migrated_url: str) -> None:
    monitor, database = _monitor(migrated_url)
    try:
        text = _text(monitor.refresh())
    finally:
        database.dispose()
    for stage in ("generation", "upload", "reveal"):
        assert stage in text
    assert "Workers: none holds a lease" in text
    assert "Failures: none in the last hour" in text
    assert "schema 0008" in text


def test_a_busy_pipeline_shows_stages_workers_and_redacted_failures(
    session_factory, migrated_url: str
) -> None:
    seed_busy_pipeline(session_factory)
    monitor, database = _monitor(migrated_url)
    try:
        lines = _text(monitor.refresh()).splitlines()
    finally:
        database.dispose()
    rows = {line.split()[0]: line.split() for line in lines if line.strip()}
    # stage, waiting, in flight, done 1m, done 1h, sparkline, Δ/min (not yet), oldest
    assert rows["generation"][:5] == ["generation", "33", "4", "5", "60"]
    assert rows["generation"][6:9] == ["-", "2h", "59m"]
    assert rows["upload"][:5] == ["upload", "8", "2", "0", "40"]
    assert rows["reveal"][:5] == ["reveal", "6", "0", "0", "30"]
    assert rows["w-gen"][1:3] == ["generation", "4"]
    assert rows["w-gen"][-1] == "ok"
    assert rows["w-up"][1:3] == ["upload", "2"]
    text = "\n".join(lines)
    assert "Failures in the last hour: max_attempts: 3 · exit 1: 1 · timeout: 1" in text
    assert "token 2: cannot reach postgresql://svc:***@db.internal:5432/glisk" in text
    assert "hunter2" not in text
    assert "second line" not in text


def test_each_stage_s_controls_show_what_holds_it_back(session_factory, migrated_url) -> None:
    seed_busy_pipeline(session_factory)
    factory = create_uow_factory(session_factory)
    with factory() as uow:
        uow.stages.pause("generation", reason="GPU maintenance")
        uow.stages.limit("upload", concurrency=2, rate=Rate(10, 1), burst=3)
        uow.stages.cool_down("reveal", timedelta(minutes=5), reason="429")
    monitor, database = _monitor(migrated_url)
    try:
        frame = monitor.refresh()
    finally:
        database.dispose()
    lines = _text(frame, width=140).splitlines()
    start = lines.index(next(line for line in lines if line.startswith("Controls")))
    rows = {line.split()[0]: line.rstrip() for line in lines[start + 1 :] if line.strip()}
    assert rows["generation"].split()[1:3] == ["paused", "4"]  # w-gen's four jobs run on
    assert rows["generation"].endswith("paused: GPU maintenance")
    assert rows["upload"].split()[1:5] == ["running", "2/2", "10/s", "(burst"]
    assert "at its concurrency limit, held by w-up" in rows["upload"]
    assert rows["reveal"].split()[1] == "cooling"
    assert re.search(r"cooling down, ends in 4m \d\ds", rows["reveal"])
    assert rows["reveal"].endswith(": 429")

    stages = document(frame)["stages"]
    generation = stages["generation"]["controls"]
    assert (generation["state"], generation["paused"]["reason"]) == ("paused", "GPU maintenance")
    assert generation["concurrency"]["running"] == 4
    upload = stages["upload"]["controls"]
    assert upload["concurrency"] == {"limit": 2, "running": 2, "holders": ["w-up"]}
    assert (upload["rate"]["limit"], upload["rate"]["burst"]) == ("10/s", 3)
    assert upload["blocked"]["reason"] == "at_limit"
    assert stages["reveal"]["controls"]["cooldown"]["reason"] == "429"


def test_no_controls_set_is_one_line(migrated_url: str) -> None:
    monitor, database = _monitor(migrated_url)
    try:
        frame = monitor.refresh()
    finally:
        database.dispose()
    assert "Controls: none set (every stage running, no limits)" in _text(frame)
    controls = document(frame)["stages"]["upload"]["controls"]
    assert (controls["state"], controls["blocked"]) == ("running", None)


def test_a_stalled_worker_is_flagged_and_its_tokens_count_as_waiting(
    session_factory, migrated_url: str
) -> None:
    seed_busy_pipeline(session_factory)
    stall_worker(session_factory, "w-gen")
    monitor, database = _monitor(migrated_url)
    try:
        text = _text(monitor.refresh())
    finally:
        database.dispose()
    stalled = next(line for line in text.splitlines() if line.startswith("w-gen"))
    assert "STALLED (4 expired)" in stalled
    # its leases ran out 3 minutes ago, so of a 15-minute lease it last renewed 18 minutes ago
    assert "18m 00s ago" in stalled or "18m 01s ago" in stalled
    generation = next(line for line in text.splitlines() if line.startswith("generation"))
    assert generation.split()[1:5] == ["37", "(4", "expired)", "0"]


def _ten_generated_a_minute_later(session_factory, migrated_url: str) -> Frame:
    """The frame of a refresh a minute after the first, tokens 1-10 having moved to upload."""
    ticks = iter([0.0, 60.0])
    monitor, database = _monitor(migrated_url, clock=lambda: next(ticks))
    try:
        monitor.refresh()
        with session_factory() as session, session.begin():
            session.execute(
                sa_text("UPDATE tokens_s0 SET status = 'uploading' WHERE token_id BETWEEN 1 AND 10")
            )
        return monitor.refresh()
    finally:
        database.dispose()


def test_the_backlog_change_between_refreshes_gives_a_rate_and_an_eta(
    session_factory, migrated_url: str
) -> None:
    # No history is written here (workers using the library directly write none): the rate
    # comes from how the backlog fell between two refreshes a minute apart.
    seed_busy_pipeline(session_factory)
    with session_factory() as session, session.begin():
        session.execute(sa_text("DELETE FROM image_generation_jobs"))
    generation = document(_ten_generated_a_minute_later(session_factory, migrated_url))["stages"][
        "generation"
    ]
    assert generation["backlog_change_per_minute"] == -10
    assert generation["rate_per_minute"] == 10
    assert generation["eta_seconds"] == (23 + 4) * 6  # 27 left at 10 a minute


def test_at_80_columns_stage_names_counts_and_etas_are_whole(
    session_factory, migrated_url: str
) -> None:
    seed_busy_pipeline(session_factory)
    frame = _ten_generated_a_minute_later(session_factory, migrated_url)
    lines = _text(frame, width=80).splitlines()
    header = next(line for line in lines if line.startswith("stage "))
    assert header.split()[-1] == "ETA"
    assert "…" not in header
    generation = next(line for line in lines if line.startswith("generation"))
    assert "…" not in generation
    assert re.fullmatch(r"\d+m \d\ds", " ".join(generation.split()[-2:]))  # the whole ETA
    assert all(len(line) <= 80 for line in lines)


def test_failures_are_counted_by_what_went_wrong_in_tokens_not_shutdowns(
    session_factory, migrated_url: str
) -> None:
    seed_tokens(session_factory, 6)
    with session_factory() as session, session.begin():
        session.execute(
            sa_text(
                """
                INSERT INTO image_generation_jobs (token_id, service, status, error_data,
                                                   completed_at)
                SELECT id, 'svc', 'failed', CAST(error AS jsonb), now() - interval '1 minute'
                FROM tokens_s0, (VALUES
                    ('{"reason": "timeout", "exit_status": -9, "message": "timed out after 5s"}'),
                    ('{"reason": "bad_answer", "exit_status": 0, "message": "not JSON"}'),
                    ('{"reason": "exit", "exit_status": 1, "message": "exited with status 1"}'),
                    ('{"reason": "shutdown", "message": "stopped (shutdown)"}'),
                    ('{"reason": "retry_after", "message": "asked to retry after 30s"}')
                ) AS errors(error)
                WHERE token_id = 1;
                INSERT INTO reveal_transactions (token_ids, status)
                SELECT array_agg(id), 'failed' FROM tokens_s0 WHERE token_id BETWEEN 2 AND 4;
                INSERT INTO reveal_transactions (token_ids, status, error_data)
                SELECT array_agg(id), 'failed', '{"reason": "shutdown"}'
                FROM tokens_s0 WHERE token_id BETWEEN 5 AND 6;
                UPDATE tokens_s0 SET status = 'failed', error_data = '{"message": "bad prompt"}'
                WHERE token_id = 5;
                """
            )
        )
    monitor, database = _monitor(migrated_url)
    try:
        text = _text(monitor.refresh())
    finally:
        database.dispose()
    assert (
        "Failures in the last hour: reveal_failed: 3 · bad_answer: 1 · exit 1: 1 · timeout: 1"
        " · unknown: 1"
    ) in text
    assert "shutdown" not in text
    assert "retry after" not in text
    assert "  token 5: bad prompt" in text


def test_a_database_that_cannot_be_reached_is_a_warning_until_it_is_back(
    migrated_url: str,
) -> None:
    down, _ = _monitor(CLOSED_PORT_URL)
    up, database = _monitor(migrated_url)
    reads = iter([down._read, up._read])
    monitor = Monitor(
        lambda: next(reads)(),
        lambda: "0008",
        url="postgresql://glisk:***@db/x",
        interval=2,
        lease=LEASE,
    )
    try:
        frame = monitor.refresh()
        text = _text(frame)
        assert "⚠ database unreachable since" in text
        assert "no reading yet" in text
        assert "s3cret" not in text
        assert document(frame)["database"]["reachable"] is False
        back = _text(monitor.refresh())
    finally:
        database.dispose()
    assert "database reachable again since" in back
    assert "generation" in back


def test_once_and_json_print_one_frame_for_scripts(cli, session_factory, migrated_url) -> None:
    seed_busy_pipeline(session_factory)
    env = {"DATABASE_URL": migrated_url, "COLUMNS": "120"}
    once = cli("top", "--once", env=env)
    assert once.exit_code == 0, once.stderr
    assert "generation" in once.stdout
    assert "w-gen" in once.stdout
    assert "\x1b[" not in once.stdout  # not a terminal: plain text
    piped = cli("top", env=env)  # stdout is not a terminal: the same as --once
    assert piped.exit_code == 0
    assert "Stages" in piped.stdout

    result = cli("top", "--json", env=env)
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["database"]["reachable"] is True
    assert report["database"]["revision"] == SCHEMA_REVISION
    generation = report["stages"]["generation"]
    assert (generation["waiting"], generation["in_flight"], generation["done_last_hour"]) == (
        33,
        4,
        60,
    )
    assert generation["controls"]["state"] == "running"
    assert generation["controls"]["concurrency"]["running"] == 4
    assert [worker["name"] for worker in report["workers"]] == ["w-gen", "w-up"]
    assert report["failures"]["last_hour_by_reason"]["max_attempts"] == 3
    assert "hunter2" not in result.stdout
    assert SECRET_URL.replace("hunter2", "***") in result.stdout


def test_once_against_a_database_that_cannot_be_reached_exits_3(cli) -> None:
    result = cli("top", "--once", env={"DATABASE_URL": CLOSED_PORT_URL})
    assert result.exit_code == 3
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr
    assert "s3cret" not in result.stderr


@pytest.mark.parametrize("interval", ["0", "abc", "61", "-1"])
def test_an_interval_out_of_range_or_not_a_number_exits_2(cli, interval: str) -> None:
    result = cli("top", "--interval", interval)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")
    assert "--interval" in result.stderr


@pytest.mark.parametrize("key", [b"q", b"\x03"], ids=["q", "ctrl-c"])
def test_the_live_view_quits_on_a_key_and_restores_the_terminal(
    key: bytes,
    session_factory,
    migrated_url: str,
    pg_server: PostgresServer,
    glisk_env,
    tmp_path: Path,
) -> None:
    seed_busy_pipeline(session_factory)
    session_factory.kw["bind"].dispose()  # so that the view's is the only connection
    main, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    modes = termios.ICANON | termios.ECHO
    before = termios.tcgetattr(secondary)[3] & modes
    process = subprocess.Popen(
        [str(GLISK), "top", "--interval", "0.5"],
        env={**glisk_env, "DATABASE_URL": migrated_url, "TERM": "xterm-256color"},
        cwd=tmp_path,
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        start_new_session=True,  # its own session, with the terminal as its controlling one,
        preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),  # so Ctrl-C reaches it
    )
    try:
        screen = _read(main, until=lambda seen: seen.count(b"Stages") >= 3)
        assert b"\x1b[?1049h" in screen  # the alternate screen
        assert b"w-gen" in screen
        assert termios.tcgetattr(secondary)[3] & modes == 0  # keys one by one, not echoed
        with psycopg.connect(pg_server.conninfo(_database_name(migrated_url))) as connection:
            row = connection.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone()
        assert row == (1,)  # three refreshes or more, one connection
        os.write(main, key)
        assert process.wait(timeout=30) == 0
        rest = _read(main, until=lambda _seen: False, quiet=0.5)
        after = termios.tcgetattr(secondary)[3] & modes
    finally:
        if process.poll() is None:
            process.kill()
        os.close(secondary)
        os.close(main)
    ending = rest[rest.rfind(b"Stages") + 1 :] if b"Stages" in rest else rest
    assert b"\x1b[?1049l" in ending  # the alternate screen left
    assert b"\x1b[?25h" in ending  # the cursor shown again
    assert after == before  # line editing and echo back as they were
    assert b"Traceback" not in rest
    assert b"error" not in rest


def _database_name(url: str) -> str:
    return url.rsplit("/", 1)[1].split("?")[0]


def _read(fd: int, *, until, quiet: float = 60.0) -> bytes:
    """What the terminal shows until `until(seen)`, or until nothing came for `quiet` seconds."""
    seen = b""
    while not until(seen):
        ready, _, _ = select.select([fd], [], [], quiet)
        if not ready:
            break
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the program closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    return seen
