"""Test provisioning: a real PostgreSQL for the session, a fresh database per test.

The server comes from, in this order: GLISK_TEST_DATABASE_URL; testcontainers (postgres:14) when a
Docker engine answers; glisk's own embedded server in a temporary directory. Tests never touch
the user's embedded data directory, never read a developer's `.env`, and run in UTC.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from glisk_cli.config import Settings
from glisk_cli.embedded import EmbeddedServer
from tests import shared
from tests.reused_database import ReusedDatabase

GLISK = Path(sys.executable).with_name("glisk")
# Every setting: a test must not inherit one from the developer's shell.
SETTING_VARIABLES = tuple(name.upper() for name in Settings.model_fields)


# Cached bytecode: every `glisk` process a test starts would otherwise recompile each module it
# imports, which costs seconds per process on a small machine.
sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


_SHARED = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    # Run as a shell's background job, the tests inherit an ignored SIGINT, and so would every
    # process they start, which the tests that interrupt one rely on getting it.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if (where := shared.begin()) is not None:  # the run's controller
        config.stash[_SHARED] = where


def pytest_unconfigure(config: pytest.Config) -> None:
    if (where := config.stash.get(_SHARED, None)) is not None:
        shared.end(where)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: twice as many test processes as cores, as the tests mostly wait — on the
    processes they start, on PostgreSQL, on leases running out."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return 2 * (cores or 1)


@pytest.fixture(scope="session", autouse=True)
def utc_timezone() -> Iterator[None]:
    """Every test runs in UTC, whatever TZ the developer's shell has."""
    previous = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if previous is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = previous
    time.tzset()


@dataclass
class PostgresServer:
    """A PostgreSQL server the tests may create and drop databases on."""

    admin_url: str  # SQLAlchemy URL of a maintenance database on the server
    log_file: Path | None = None  # the server's log, when the tests started the server

    def url_for(self, database: str) -> str:
        return make_url(self.admin_url).set(database=database).render_as_string(False)

    def conninfo(self, database: str | None = None) -> str:
        url = make_url(self.admin_url)
        if database:
            url = url.set(database=database)
        return url.set(drivername="postgresql").render_as_string(hide_password=False)

    def create_database(self, *, template: str | None = None) -> str:
        name = f"glisk_test_{uuid.uuid4().hex[:12]}"
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(statement)
        return name

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            statement = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            conn.execute(statement.format(sql.Identifier(name)))


def _docker_engine_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
    except Exception:
        return False
    return True


def new_embedded_server() -> tuple[EmbeddedServer, Path]:
    """A throwaway embedded server (no fsync) in its own temporary directory."""
    data_dir = Path(tempfile.mkdtemp(prefix="glisk-test-"))
    # As root, PostgreSQL runs as an unprivileged user who must be able to enter this directory;
    # it is ours, made a moment ago, so opening it up changes nothing of anyone else's.
    data_dir.chmod(0o755)
    return EmbeddedServer(data_dir, durable=False), data_dir


@contextmanager
def restartable_pipeline(tokens: int) -> Iterator[tuple[EmbeddedServer, str]]:
    """A throwaway embedded server of the test's own (so it may stop and restart it), migrated,
    with `tokens` detected tokens; yields the server and its URL, and removes it afterwards."""
    from glisk_cli import migrations
    from glisk_cli.db import setup_db_session

    server, data_dir = new_embedded_server()
    try:
        url = server.ensure_running()
        engine = create_engine(url, poolclass=NullPool)
        migrations.upgrade(engine)
        engine.dispose()
        factory = setup_db_session(url, pool_size=1)
        seed_tokens(factory, tokens)
        factory.kw["bind"].dispose()
        yield server, url
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    if url := os.environ.get("GLISK_TEST_DATABASE_URL"):
        yield PostgresServer(admin_url=url)
        return
    if _docker_engine_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:14", driver="psycopg") as container:
            yield PostgresServer(admin_url=container.get_connection_url())
        return
    url, log_file = shared.embedded_server()  # one for the run: the controller stops it
    yield PostgresServer(admin_url=url, log_file=log_file)


@pytest.fixture
def database_url(pg_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database for this test alone; dropped afterwards."""
    name = pg_server.create_database()
    yield pg_server.url_for(name)
    pg_server.drop_database(name)


@pytest.fixture(scope="session")
def migrated_template(pg_server: PostgresServer) -> str:
    """A database migrated to head once per run and server, the template migrated databases
    are cloned from (the run's controller drops it at the end: tests/shared.py)."""

    def migrate(_: Path) -> dict[str, str]:
        from alembic import command

        from glisk_cli.migrations import alembic_config

        name = pg_server.create_database()
        engine = create_engine(pg_server.url_for(name), poolclass=NullPool)
        with engine.connect() as connection:
            command.upgrade(alembic_config(connection), "head")
            connection.commit()
        engine.dispose()  # a template must have no open connections to be cloned
        return {"name": name, "conninfo": pg_server.conninfo()}

    server = hashlib.sha256(pg_server.admin_url.encode()).hexdigest()[:12]
    return shared.once(f"template-{server}", migrate)["name"]


@pytest.fixture(scope="session")
def reused_database(pg_server: PostgresServer, migrated_template: str) -> Iterator[ReusedDatabase]:
    reused = ReusedDatabase(pg_server, migrated_template)
    yield reused
    reused.drop()


@pytest.fixture
def migrated_url(request: pytest.FixtureRequest, reused_database: ReusedDatabase) -> Iterator[str]:
    """A database at the head revision with no rows, for this test alone while it runs: as if
    cloned from the template for it (tests/reused_database.py)."""
    yield reused_database.take()
    reused_database.give_back(passed=not request.node.stash.get(_FAILED, False))


_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """Remember on the test whether its set-up or call failed (fixtures read it at teardown)."""
    report = yield
    if report.failed:
        item.stash[_FAILED] = True
    return report


@pytest.fixture
def glisk_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a `glisk` subprocess: none of the developer's settings, a private HOME."""
    env = {key: value for key, value in os.environ.items() if key not in SETTING_VARIABLES}
    home = tmp_path / "home"
    home.mkdir(mode=0o700, exist_ok=True)
    env.update(HOME=str(home), XDG_DATA_HOME=str(home / ".local" / "share"), TZ="UTC")
    # As root the default data directory is system-wide; keep tests out of it.
    env["GLISK_DATA_DIR"] = str(tmp_path / "unused-embedded-data")
    return env


@pytest.fixture
def run_glisk(tmp_path: Path, glisk_env: dict[str, str]):
    """Run the real `glisk` executable in an empty working directory (so no `.env` is read)."""

    def run(
        *args: str, env: dict[str, str | None] | None = None, timeout: float = 60, stdin: str = ""
    ) -> subprocess.CompletedProcess[str]:
        merged = {**glisk_env, **(env or {})}
        clean = {key: value for key, value in merged.items() if value is not None}
        return subprocess.run(
            [str(GLISK), *args],
            cwd=tmp_path,
            env=clean,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run


def glisk_at_once(
    count: int, *args: str, env: dict[str, str], cwd: Path
) -> list[subprocess.CompletedProcess[str]]:
    """Start `count` identical `glisk` processes together and wait for every one of them."""
    processes = [
        subprocess.Popen(
            [str(GLISK), *args],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    outputs = [process.communicate(timeout=120) for process in processes]
    return [
        subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
        for process, (stdout, stderr) in zip(processes, outputs, strict=True)
    ]


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    glisk_env: dict[str, str],
):
    """Run a glisk command in this process (fast), with the same isolation as `run_glisk`."""
    from glisk_cli.cli import context
    from glisk_cli.cli.app import run

    def invoke(*args: str, env: dict[str, str | None] | None = None) -> CliResult:
        for name in SETTING_VARIABLES:
            monkeypatch.delenv(name, raising=False)
        for name, value in {**glisk_env, **(env or {})}.items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        monkeypatch.chdir(tmp_path)
        context.reset()
        capsys.readouterr()
        try:
            exit_code = run(list(args))
        finally:
            context.reset()
        captured = capsys.readouterr()
        return CliResult(exit_code, captured.out, captured.err)

    return invoke


@pytest.fixture
def session_factory(migrated_url: str):
    """The session factory of a migrated database of this test's own."""
    from glisk_cli.db import setup_db_session

    factory = setup_db_session(migrated_url, pool_size=10)
    yield factory
    factory.kw["bind"].dispose()


@pytest.fixture
def uow_factory(session_factory):
    from glisk_cli.uow import create_uow_factory

    return create_uow_factory(session_factory)


@pytest.fixture
def database(migrated_url: str):
    """A migrated database of this test's own, as a worker opens it (`Database`: a pool of one,
    and the connection kept between Units of Work), disposed after the test."""
    from glisk_cli.db import Database

    database = Database(migrated_url, pool_size=1)
    yield database
    database.dispose()


def seed_tokens(
    session_factory, count: int, *, status: str = "detected", first_id: int = 1
) -> None:
    """Insert one author and `count` tokens in one statement, minted a second apart."""
    with session_factory() as session, session.begin():
        session.execute(
            text(
                "INSERT INTO authors (wallet_address, prompt_text) "
                "VALUES ('0x00000000000000000000000000000000000000aa', 'seed') "
                "ON CONFLICT DO NOTHING"
            )
        )
        session.execute(
            text(
                """
                INSERT INTO tokens_s0 (token_id, author_id, minter_address, status, mint_timestamp)
                SELECT n, (SELECT id FROM authors LIMIT 1),
                       '0x00000000000000000000000000000000000000bb', CAST(:status AS token_status),
                       timestamptz '2026-01-01 00:00:00+00' + n * interval '1 second'
                FROM generate_series(CAST(:first AS int), CAST(:last AS int)) AS n
                """
            ),
            {"status": status, "first": first_id, "last": first_id + count - 1},
        )


def index_reads(session, *, fetched: bool = False) -> Counter[str]:
    """What this backend has read of tokens_s0 so far: its sequential scans, and the entries read
    from each of its indexes, or with `fetched` the live rows fetched through each (the
    difference of two readings is what the statements between them read). Counts the backend
    has reported and those it has not yet, as it may report them at any moment; the reported
    ones read afresh each time (stats_fetch_consistency, PostgreSQL 15 and later; before,
    nothing is reported while a transaction runs)."""
    returned, reported = (
        ("pg_stat_get_tuples_fetched", "pg_stat_get_xact_tuples_fetched")
        if fetched
        else ("pg_stat_get_tuples_returned", "pg_stat_get_xact_tuples_returned")
    )
    session.execute(
        text(
            "SELECT set_config('stats_fetch_consistency', 'none', true) "
            "WHERE current_setting('stats_fetch_consistency', true) IS NOT NULL"
        )
    )
    rows = session.execute(
        text(
            "SELECT indexrelid::regclass::text, "
            + f"{returned}(indexrelid) + {reported}(indexrelid) "
            + "FROM pg_index WHERE indrelid = 'tokens_s0'::regclass UNION ALL "
            "SELECT 'seq_scan', pg_stat_get_numscans('tokens_s0'::regclass) "
            + "+ pg_stat_get_xact_numscans('tokens_s0'::regclass)"
        )
    ).all()
    return Counter({str(name): int(count) for name, count in rows})


def expire_leases(session_factory) -> None:
    """What the clock does to a worker that stalls: every lease runs out."""
    with session_factory() as session, session.begin():
        session.execute(
            text(
                "UPDATE tokens_s0 SET lease_expires_at = now() - interval '1 second' "
                "WHERE lease_expires_at IS NOT NULL"
            )
        )
