"""The one database handle: the library reads the CLI's settings, and every time comes from the
database clock (leases from the statement's time, not the transaction's start)."""

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, text

from glisk_cli.db import Database
from glisk_cli.pipeline import TokenStatus
from glisk_cli.uow import create_uow_factory
from tests.conftest import SETTING_VARIABLES, seed_tokens

LONG = timedelta(minutes=15)


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, migrated_url: str):
    """The environment a worker process would have: glisk's variables, and no `.env` file."""
    for name in SETTING_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", migrated_url)
    return monkeypatch


def test_the_library_entry_point_applies_the_settings_the_cli_reads(
    settings_env: pytest.MonkeyPatch, session_factory
) -> None:
    settings_env.setenv("GLISK_MAX_ATTEMPTS", "2")
    settings_env.setenv("GLISK_LEASE", "90s")
    settings_env.setenv("GLISK_LOCK_TIMEOUT", "3s")
    settings_env.setenv("GLISK_STATEMENT_TIMEOUT", "7s")
    seed_tokens(session_factory, 1)
    database = Database.from_settings()
    uow_factory = create_uow_factory(database)
    try:
        with uow_factory() as uow:
            limits = uow.session.execute(
                text("SELECT current_setting('lock_timeout'), current_setting('statement_timeout')")
            ).one()
            [token] = uow.tokens.claim("generation", 10, "w1")  # no lease given: GLISK_LEASE
            lease = uow.session.execute(
                text("SELECT lease_expires_at - statement_timestamp() FROM tokens_s0")
            ).scalar_one()
        assert tuple(limits) == ("3s", "7s")
        assert timedelta(seconds=85) < lease <= timedelta(seconds=90)
        # Two claims used up GLISK_MAX_ATTEMPTS=2: the third fails the token instead.
        for _ in range(2):
            with uow_factory() as uow:
                uow.session.execute(text("UPDATE tokens_s0 SET lease_expires_at = now()"))
            with uow_factory() as uow:
                claimed = uow.tokens.claim("generation", 10, "w2")
        assert claimed == []
        with uow_factory() as uow:
            failed = uow.tokens.require(token.token_id)
        assert failed.status is TokenStatus.FAILED
        assert failed.error_data == {
            "reason": "max_attempts",
            "stage": "generation",
            "attempts": 2,
            "last_worker": "w2",
        }
    finally:
        database.dispose()


def test_reap_in_the_library_uses_glisk_max_attempts(
    settings_env: pytest.MonkeyPatch, session_factory
) -> None:
    settings_env.setenv("GLISK_MAX_ATTEMPTS", "1")
    seed_tokens(session_factory, 2)
    database = Database.from_settings()
    try:
        with create_uow_factory(database)() as uow:
            uow.session.execute(text("UPDATE tokens_s0 SET attempts = 1 WHERE token_id = 1"))
            reaped = uow.tokens.reap()
        assert [token.token_id for token in reaped] == [1]
    finally:
        database.dispose()


def test_a_claim_late_in_a_long_transaction_still_gets_its_whole_lease(
    session_factory, uow_factory
) -> None:
    seed_tokens(session_factory, 1)
    with uow_factory() as uow:
        uow.session.execute(text("SELECT pg_sleep(1.2)"))
        uow.tokens.claim("generation", 1, "w1", timedelta(seconds=2))
        beyond_start = uow.session.execute(
            text("SELECT lease_expires_at - now() FROM tokens_s0")
        ).scalar_one()
    # now() is the transaction's start, 1.2 s before the claim: the lease counts from the claim.
    assert beyond_start >= timedelta(seconds=3.1)


def test_transitions_stamp_updated_at_from_the_database_clock(session_factory, uow_factory) -> None:
    seed_tokens(session_factory, 1)
    with uow_factory() as uow:
        database_now = uow.session.execute(text("SELECT now()")).scalar_one()
        token = uow.tokens.transition(1, TokenStatus.GENERATING)
    # Read back by the UPDATE itself, so still readable once the Unit of Work has ended.
    assert token.updated_at == database_now
    with uow_factory() as uow:
        released = uow.tokens.release_by_token_id([1])
    assert released[0].updated_at > database_now


def test_a_unit_of_work_retries_its_first_statement_on_a_connection_that_died_in_the_pool(
    database: Database, session_factory
) -> None:
    seed_tokens(session_factory, 2)
    uow_factory = create_uow_factory(database)
    for read in (
        lambda uow: uow.tokens.claim("generation", 1, "w", LONG),  # the workers' path
        lambda uow: uow.tokens.get_by_token_id(1),  # the ORM
    ):
        with uow_factory() as uow:
            pid = uow.session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        # The server ends that connection while it idles in the pool (a restart, say).
        with session_factory() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with uow_factory() as uow:
            assert read(uow)


def _backend_pid(uow) -> int:
    """The server process of the Unit of Work's connection, asked on the workers' path."""
    return uow.transaction.rows("SELECT pg_backend_pid()", {})[0][0]


def _connections(session_factory, url: str, expected: int) -> int:
    """How many connections the database of `url` has, other than the asker's, once it has
    `expected` or 5 s have passed: a backend leaves a moment after its client closed it."""
    deadline = time.monotonic() + 5
    while True:
        with session_factory() as admin:
            count = admin.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = :name "
                    "AND pid <> pg_backend_pid()"
                ),
                {"name": url.rsplit("/", 1)[-1].split("?")[0]},
            ).scalar_one()
        if count == expected or time.monotonic() > deadline:
            return count
        time.sleep(0.01)


def test_units_of_work_in_a_row_share_one_kept_connection_which_dispose_closes(
    database: Database, migrated_url: str, session_factory
) -> None:
    seed_tokens(session_factory, 1)
    uow_factory = create_uow_factory(database)
    checkouts = []
    event.listen(database.engine, "checkout", lambda *_: checkouts.append(1))
    pids = set()
    for _ in range(20):
        with uow_factory() as uow:
            pids.add(_backend_pid(uow))
    assert len(pids) == 1
    assert len(checkouts) == 1  # the pool's checkout and check-in are paid once, not per turn
    # The kept connection dies between Units of Work: the next one's first statement is
    # retried on a fresh connection, as for one that died in the pool.
    with session_factory() as admin:
        admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pids.pop()})
    with uow_factory() as uow:
        assert uow.tokens.claim("generation", 1, "w", LONG)
    session_factory.kw["bind"].dispose()  # the admin's own connections are not counted
    assert _connections(session_factory, migrated_url, 1) == 1
    database.dispose()
    assert _connections(session_factory, migrated_url, 0) == 0


def test_the_kept_connection_gives_way_when_other_users_fill_the_pool(database: Database) -> None:
    uow_factory = create_uow_factory(database)
    with uow_factory() as uow:
        _backend_pid(uow)  # now kept: one of the pool's two connections (one, plus one overflow)
    # Two direct users at once: the second would wait out the pool's timeout, were the kept
    # connection not handed back when the first filled the pool.
    with database.engine.connect() as first, database.engine.connect() as second:
        assert first.exec_driver_sql("SELECT 1").scalar() == 1
        assert second.exec_driver_sql("SELECT 2").scalar() == 2
    with uow_factory() as uow:  # and Units of Work carry on
        _backend_pid(uow)


def test_a_unit_of_work_that_ends_after_dispose_keeps_nothing_of_the_old_pool(
    database: Database, migrated_url: str, session_factory
) -> None:
    uow_factory = create_uow_factory(database)
    with uow_factory() as uow:
        _backend_pid(uow)
        database.dispose()  # a runner shutting down while a thread is mid-transaction
    session_factory.kw["bind"].dispose()
    with uow_factory() as uow:  # a connection of the new pool
        _backend_pid(uow)
    database.dispose()
    assert _connections(session_factory, migrated_url, 0) == 0


def test_a_forked_child_leaves_its_parents_kept_connection_alone(database: Database) -> None:
    uow_factory = create_uow_factory(database)
    with uow_factory() as uow:
        parent = _backend_pid(uow)
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # the child: a Unit of Work of its own, then out without clean-up
        try:
            with uow_factory() as uow:
                os.write(writer, str(_backend_pid(uow)).encode())
        finally:
            os._exit(0)
    os.close(writer)
    os.waitpid(child, 0)
    with os.fdopen(reader) as answer:
        child_pid = int(answer.read() or 0)
    assert child_pid not in (0, parent)
    with uow_factory() as uow:  # the parent's connection is still sound, and still its own
        assert _backend_pid(uow) == parent


def test_a_program_that_imports_the_library_hears_nothing_from_it_unless_it_asks(
    migrated_url: str, session_factory, glisk_env: dict[str, str]
) -> None:
    seed_tokens(session_factory, 2)
    program = f"""
import sys
import time
from datetime import timedelta
from loguru import logger
from glisk_cli.db import setup_db_session
from glisk_cli.uow import create_uow_factory

uow_factory = create_uow_factory(setup_db_session({migrated_url!r}))
with uow_factory() as uow:
    assert uow.tokens.claim("generation", 1, "quiet", timedelta(minutes=1))
if sys.argv[1] == "enable":
    logger.enable("glisk_cli")
    with uow_factory() as uow:
        uow.tokens.claim("generation", 1, "loud", timedelta(minutes=1))
"""
    quiet, loud = (
        subprocess.run(
            [sys.executable, "-c", program, mode],
            env=glisk_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        for mode in ("quiet", "enable")
    )
    assert quiet.stderr == ""  # loguru's default handler prints everything it is given
    assert "transaction.committed" in loud.stderr
