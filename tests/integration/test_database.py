"""Sessions are pinned to UTC and an unreachable server fails fast, as glisk's own error."""

import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import text

from glisk_cli.db import setup_db_session
from glisk_cli.errors import DatabaseUnavailable
from tests.conftest import PostgresServer


def test_sessions_run_in_utc_even_when_the_database_default_is_los_angeles(
    pg_server: PostgresServer,
) -> None:
    name = pg_server.create_database()
    try:
        with psycopg.connect(pg_server.conninfo(), autocommit=True) as conn:
            statement = sql.SQL("ALTER DATABASE {} SET TimeZone = 'America/Los_Angeles'")
            conn.execute(statement.format(sql.Identifier(name)))
        with psycopg.connect(pg_server.conninfo(name)) as raw:
            # Proves the database default really is another zone for an unpinned connection.
            assert raw.execute("SHOW TimeZone").fetchone() == ("America/Los_Angeles",)

        factory = setup_db_session(pg_server.url_for(name), pool_size=2)
        with factory() as session:
            assert session.execute(text("SHOW TimeZone")).scalar_one() == "UTC"
            now = session.execute(text("SELECT now()")).scalar_one()
            assert now.utcoffset() == timedelta(0)
            rendered = session.execute(text("SELECT '2026-01-01 12:00+00'::timestamptz::text"))
            assert rendered.scalar_one() == "2026-01-01 12:00:00+00"
        factory.kw["bind"].dispose()
    finally:
        pg_server.drop_database(name)


def test_timezone_aware_values_round_trip_as_the_same_instant(database_url: str) -> None:
    factory = setup_db_session(database_url, pool_size=1)
    instant = datetime(2026, 3, 8, 10, 30, tzinfo=UTC)
    with factory() as session:
        stored = session.execute(text("SELECT CAST(:at AS timestamptz)"), {"at": instant})
        assert stored.scalar_one() == instant
    factory.kw["bind"].dispose()


def test_unreachable_server_raises_database_unavailable_quickly_with_password_masked() -> None:
    factory = setup_db_session(
        "postgresql+psycopg://glisk:hunter2@127.0.0.1:9/glisk",
        connect_timeout=timedelta(seconds=2),
    )
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable) as caught, factory() as session:
        session.execute(text("SELECT 1"))
    assert time.monotonic() - started < 3
    assert "hunter2" not in caught.value.message
    assert "glisk:***@127.0.0.1:9" in caught.value.message
    assert caught.value.exit_code == 3
