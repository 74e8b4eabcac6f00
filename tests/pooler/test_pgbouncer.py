"""glisk behind a real PgBouncer in transaction mode: what works with GLISK_POOLER=transaction,
and what glisk says when it is not set."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import text

from glisk_cli.db import Database
from glisk_cli.uow import create_uow_factory
from tests.conftest import GLISK, PostgresServer, seed_tokens
from tests.pooler.conftest import PgBouncer, database_name

REPOSITORY = Path(__file__).resolve().parents[2]
POOLED = {"GLISK_POOLER": "transaction"}


def run_claim_loops(url: str, pooler: str, seconds: float, count: int = 4) -> list[dict]:
    """Run `count` library workers (tests/pooler/claim_loop.py) at once; their reports."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.pooler.claim_loop", url, f"w{n}", str(seconds), pooler],
            cwd=REPOSITORY,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(count)
    ]
    reports = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=seconds + 60)
        assert stdout.strip(), stderr
        reports.append(json.loads(stdout.strip().splitlines()[-1]))
    return reports


def tokens_in(url: str, status: str) -> int:
    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo) as conn:
        query = "SELECT count(*) FROM tokens_s0 WHERE status = %s::token_status"
        row = conn.execute(query, [status]).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.soak
def test_four_library_workers_claim_renew_and_advance_through_pgbouncer_for_30s(
    pgbouncer: PgBouncer, migrated_url: str, session_factory
) -> None:
    seed_tokens(session_factory, 40_000)
    url = pgbouncer.url_for(database_name(migrated_url))

    reports = run_claim_loops(url, "transaction", seconds=30)

    assert [report.get("error") for report in reports] == [None] * 4, reports
    advanced = [token_id for report in reports for token_id in report["advanced"]]
    assert advanced, reports
    assert len(advanced) == len(set(advanced)), "a token was advanced twice"
    assert tokens_in(migrated_url, "uploading") == len(advanced)


def test_without_the_pooler_setting_workers_fail_with_a_clear_configuration_error(
    start_pgbouncer: Callable[..., PgBouncer], migrated_url: str, session_factory
) -> None:
    # PgBouncer told to ignore glisk's start-up options: then psycopg's prepared statements meet
    # server connections that another client prepared on (two server connections, four clients).
    bouncer = start_pgbouncer(ignore_startup_parameters="options", default_pool_size="2")
    seed_tokens(session_factory, 5_000)

    # psycopg prepares a statement at its fifth run, so they collide within the first rounds.
    reports = run_claim_loops(bouncer.url_for(database_name(migrated_url)), "none", seconds=2)

    failures = [report for report in reports if "error" in report]
    assert failures, f"expected prepared statements to collide behind PgBouncer: {reports}"
    for failure in failures:
        assert failure["error"] == "ConfigError", failure
        assert "set GLISK_POOLER=transaction" in failure["message"]


def test_a_command_through_stock_pgbouncer_without_the_setting_exits_4_with_one_line(
    cli, pgbouncer: PgBouncer, migrated_url: str
) -> None:
    url = pgbouncer.url_for(database_name(migrated_url))

    result = cli("state", "get", "cursor", env={"DATABASE_URL": url})

    assert result.exit_code == 4, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: DATABASE_URL seems to go through a transaction pooler")
    assert "start-up parameter `options`" in lines[0]
    assert "GLISK_POOLER=transaction" in lines[0]
    as_json = cli("state", "get", "cursor", "--json", env={"DATABASE_URL": url})
    assert json.loads(as_json.stderr)["error"]["code"] == "config_invalid"


def test_commands_work_through_pgbouncer_with_the_setting(
    cli, pgbouncer: PgBouncer, migrated_url: str
) -> None:
    env = {"DATABASE_URL": pgbouncer.url_for(database_name(migrated_url)), **POOLED}

    assert cli("state", "set", "cursor", '{"block": 7}', env=env).exit_code == 0
    got = cli("state", "get", "cursor", env=env)

    assert (got.exit_code, json.loads(got.stdout)) == (0, {"block": 7}), got.stderr


def test_claim_wait_wakes_by_polling_through_pgbouncer(
    pgbouncer: PgBouncer, migrated_url: str, session_factory, glisk_env: dict[str, str], tmp_path
) -> None:
    env = {**glisk_env, "DATABASE_URL": pgbouncer.url_for(database_name(migrated_url)), **POOLED}
    started = time.monotonic()
    waiting = subprocess.Popen(
        [str(GLISK), "tokens", "claim", "--wait", "20", "--json"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(2.5)  # the command has found the queue empty and polls
    seed_tokens(session_factory, 3)

    stdout, stderr = waiting.communicate(timeout=30)

    assert waiting.returncode == 0, stderr
    assert [token["token_id"] for token in json.loads(stdout)] == [1, 2, 3]
    assert time.monotonic() - started < 10


def test_upgrade_runs_through_the_direct_url_while_commands_use_pgbouncer(
    cli, pgbouncer: PgBouncer, database_url: str
) -> None:
    env = {
        "DATABASE_URL": pgbouncer.url_for(database_name(database_url)),
        "DATABASE_DIRECT_URL": database_url,
        **POOLED,
    }

    upgraded = cli("db", "upgrade", "--json", env=env)

    assert upgraded.exit_code == 0, upgraded.stderr
    from glisk_cli.models import SCHEMA_REVISION

    assert json.loads(upgraded.stdout)["after"] == SCHEMA_REVISION
    assert cli("state", "set", "k", "1", env=env).exit_code == 0


def test_upgrade_behind_pgbouncer_without_a_direct_url_refuses_with_exit_4(
    cli, pgbouncer: PgBouncer, database_url: str
) -> None:
    env = {"DATABASE_URL": pgbouncer.url_for(database_name(database_url)), **POOLED}

    for args in (("db", "upgrade"), ("db", "downgrade", "base", "--yes")):
        result = cli(*args, env=env)
        assert result.exit_code == 4, result.stderr
        assert len(result.stderr.splitlines()) == 1, result.stderr
        assert "DATABASE_DIRECT_URL" in result.stderr
    conninfo = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SELECT to_regclass('alembic_version')").fetchone()
    assert row == (None,), "nothing was migrated"


def test_times_stay_utc_behind_pgbouncer_on_a_server_whose_zone_is_not(
    cli, pg_server: PostgresServer, pgbouncer: PgBouncer, migrated_url: str, session_factory
) -> None:
    name = database_name(migrated_url)
    with psycopg.connect(pg_server.conninfo(), autocommit=True) as admin:
        statement = sql.SQL("ALTER DATABASE {} SET TimeZone = 'America/Los_Angeles'")
        admin.execute(statement.format(sql.Identifier(name)))
    seed_tokens(session_factory, 2)
    url = pgbouncer.url_for(name)

    claimed = cli("tokens", "claim", "--json", env={"DATABASE_URL": url, **POOLED})

    assert claimed.exit_code == 0, claimed.stderr
    for token in json.loads(claimed.stdout):
        assert token["lease_expires_at"].endswith("Z"), token
        assert token["mint_timestamp"].endswith("Z"), token
    database = Database(url, pooler="transaction")
    try:
        with create_uow_factory(database)() as uow:
            zone = uow.session.execute(text("SHOW TimeZone")).scalar_one()
            timeout = uow.session.execute(text("SHOW statement_timeout")).scalar_one()
            token = uow.tokens.get_by_token_id(1)
        assert (zone, timeout) == ("UTC", "30s")
        assert token is not None
        assert token.updated_at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    finally:
        database.dispose()


# The worker command: the token JSON on stdin, the generation stage's result on stdout.
WORKER = (
    "import json, sys, time; token = json.load(sys.stdin); time.sleep(float(sys.argv[1])); "
    "print(json.dumps({'image_path': f\"images/{token['token_id']}.png\"}))"
)


def run_work(
    env: dict[str, str], cwd: Path, *, pause_s: float, concurrency: int = 4
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            str(GLISK),
            "work",
            "generation",
            "--concurrency",
            str(concurrency),
            "--lease",
            "5s",
            "--drain",
            "--",
            sys.executable,
            "-c",
            WORKER,
            str(pause_s),
        ],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_work_finishes_a_stage_through_pgbouncer(
    pgbouncer: PgBouncer, migrated_url: str, session_factory, glisk_env: dict[str, str], tmp_path
) -> None:
    seed_tokens(session_factory, 40)
    env = {**glisk_env, "DATABASE_URL": pgbouncer.url_for(database_name(migrated_url)), **POOLED}

    runner = run_work(env, tmp_path, pause_s=0)
    _, stderr = runner.communicate(timeout=120)

    assert runner.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert tokens_in(migrated_url, "uploading") == 40


@pytest.mark.soak
def test_a_pgbouncer_restart_mid_work_loses_nothing_and_the_runner_carries_on(
    pgbouncer: PgBouncer, migrated_url: str, session_factory, glisk_env: dict[str, str], tmp_path
) -> None:
    seed_tokens(session_factory, 60)
    env = {**glisk_env, "DATABASE_URL": pgbouncer.url_for(database_name(migrated_url)), **POOLED}
    runner = run_work(env, tmp_path, pause_s=0.3)
    deadline = time.monotonic() + 30
    while tokens_in(migrated_url, "uploading") < 10:  # well under way
        assert runner.poll() is None, runner.communicate()
        assert time.monotonic() < deadline, "the runner made no progress"
        time.sleep(0.1)

    pgbouncer.restart(down_for=1.0)
    _, stderr = runner.communicate(timeout=120)

    assert runner.returncode == 0, stderr
    assert tokens_in(migrated_url, "uploading") == 60
    assert tokens_in(migrated_url, "generating") + tokens_in(migrated_url, "failed") == 0
