"""The database tests reuse (tests/reused_database.py) comes to each test as a fresh clone
would: without the last test's rows, schema changes, statistics or sessions."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import PostgresServer
from tests.reused_database import ReusedDatabase


@pytest.fixture
def reused(pg_server: PostgresServer, migrated_template: str) -> Iterator[ReusedDatabase]:
    reused = ReusedDatabase(pg_server, migrated_template)
    yield reused
    reused.drop()


def _connect(url: str) -> psycopg.Connection:
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    return psycopg.connect(conninfo, autocommit=True)


def _name(url: str) -> str:
    return str(make_url(url).database)


def test_rows_a_test_wrote_are_gone_and_the_same_database_serves_the_next(
    reused: ReusedDatabase,
) -> None:
    first = reused.take()
    with _connect(first) as conn:
        conn.execute("INSERT INTO system_state (key, state_value) VALUES ('k', '1')")
    reused.give_back(passed=True)

    second = reused.take()

    assert _name(second) == _name(first)
    with _connect(second) as conn:
        assert conn.execute("SELECT count(*) FROM system_state").fetchone() == (0,)


@pytest.mark.parametrize(
    "change",
    [
        "CREATE INDEX extra ON tokens_s0 (image_cid)",
        "ALTER TABLE authors ADD COLUMN extra text",
        "ANALYZE authors",
        "UPDATE alembic_version SET version_num = '0001'",
    ],
    ids=["index", "column", "statistics", "revision"],
)
def test_a_database_a_test_changed_beyond_its_rows_is_replaced_by_a_fresh_clone(
    reused: ReusedDatabase, change: str
) -> None:
    first = reused.take()
    with _connect(first) as conn:
        conn.execute(
            "INSERT INTO authors (wallet_address, prompt_text) "
            "VALUES ('0x00000000000000000000000000000000000000aa', 'p')"
        )
        conn.execute(change)  # type: ignore[arg-type]
    reused.give_back(passed=True)

    second = reused.take()

    assert _name(second) != _name(first)


def test_after_a_failed_test_its_database_is_dropped_with_whoever_still_uses_it(
    reused: ReusedDatabase,
) -> None:
    first = reused.take()
    leftover = _connect(first)  # as a process the failed test left behind would hold one
    reused.give_back(passed=False)

    second = reused.take()

    assert _name(second) != _name(first)
    assert leftover.broken or leftover.closed or _gone(leftover)


def _gone(conn: psycopg.Connection) -> bool:
    try:
        conn.execute("SELECT 1")
    except psycopg.Error:
        return True
    return False


def test_sessions_a_test_left_open_are_ended_before_the_next_takes_the_database(
    reused: ReusedDatabase,
) -> None:
    first = reused.take()
    leftover = _connect(first)
    reused.give_back(passed=True)

    second = reused.take()

    with _connect(second) as conn:
        others = conn.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    assert others == (0,)
    assert _gone(leftover)
