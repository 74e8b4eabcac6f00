"""Engine and session factory: UTC-pinned sessions, fast connect failures, translated errors.

Every connection glisk opens runs with the server-side TimeZone = UTC, whatever the server's or
the database's default, so `now()` and timestamptz text are UTC everywhere. A connection that
cannot be made (refused, timed out, dropped) surfaces as DatabaseUnavailable (exit 3) with the
URL's password masked, never as a driver traceback.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import psycopg
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.orm import Session, sessionmaker

from glisk_cli.errors import DatabaseUnavailable
from glisk_cli.redact import redact

if TYPE_CHECKING:
    from glisk_cli.config import Settings

DEFAULT_CONNECT_TIMEOUT = timedelta(seconds=5)


def create_db_engine(
    database_url: str,
    pool_size: int = 5,
    *,
    connect_timeout: timedelta = DEFAULT_CONNECT_TIMEOUT,
    lock_timeout: timedelta | None = None,
    statement_timeout: timedelta | None = None,
) -> Engine:
    """An Engine whose every connection is UTC-pinned and gives up after `connect_timeout`.

    `lock_timeout` and `statement_timeout` bound how long any statement may wait for a lock or
    run, so a command facing a table another session has locked fails instead of hanging.
    """
    options = ["-c TimeZone=UTC"]
    for name, limit in (("lock_timeout", lock_timeout), ("statement_timeout", statement_timeout)):
        if limit is not None:
            options.append(f"-c {name}={max(1, round(limit.total_seconds() * 1000))}")
    url = make_url(database_url)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args={
            # libpq takes whole seconds and treats anything under 2 as 2.
            "connect_timeout": max(2, round(connect_timeout.total_seconds())),
            # Set at connection start-up, so it costs no round trip and survives pool resets.
            "options": " ".join(options),
        },
    )
    event.listen(engine, "handle_error", _translate_unavailable)
    return engine


def setup_db_session(
    database_url: str,
    pool_size: int = 5,
    *,
    connect_timeout: timedelta = DEFAULT_CONNECT_TIMEOUT,
    lock_timeout: timedelta | None = None,
    statement_timeout: timedelta | None = None,
) -> sessionmaker[Session]:
    """The session factory every command and worker shares (DESIGN §5).

    `expire_on_commit=False` keeps objects returned from a Unit of Work readable after it commits.
    """
    engine = create_db_engine(
        database_url,
        pool_size,
        connect_timeout=connect_timeout,
        lock_timeout=lock_timeout,
        statement_timeout=statement_timeout,
    )
    return sessionmaker(bind=engine, expire_on_commit=False)


def _translate_unavailable(context: ExceptionContext) -> Any:
    """Turn "cannot reach the server" into DatabaseUnavailable; leave every other error alone."""
    original = context.original_exception
    if not isinstance(original, Exception):
        # Ctrl-C mid-statement also invalidates the connection; it must stay an interrupt.
        return None
    connecting = context.connection is None or context.is_pre_ping
    if context.is_disconnect or (connecting and isinstance(original, psycopg.OperationalError)):
        engine = context.engine
        where = engine.url.render_as_string(hide_password=True) if engine else "the database"
        raise DatabaseUnavailable(
            f"cannot reach PostgreSQL at {where}: {_first_line(original)}",
            hint="is the server running? is DATABASE_URL right?",
        ) from original
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return redact(text[0]) if text else type(exc).__name__


def resolve_database_url(settings: Settings) -> str:
    """DATABASE_URL when set; otherwise the embedded server's URL, starting it on first use."""
    if settings.database_url_value:
        return settings.database_url_value
    from glisk_cli.embedded import embedded_server

    return embedded_server(settings.glisk_data_dir).ensure_running()


def server_version(engine: Engine) -> str:
    """Connect and ask the server its version: the cheapest proof that it answers."""
    with engine.connect() as connection:
        return str(connection.exec_driver_sql("SHOW server_version").scalar_one())


def recorded_revisions(engine: Engine) -> tuple[str, ...]:
    """The migration revisions alembic_version records, read without loading Alembic.

    Empty when the database was never migrated. Cheap enough to run once per command.
    """
    with engine.connect() as connection:
        exists = connection.exec_driver_sql("SELECT to_regclass('alembic_version')").scalar()
        if exists is None:
            return ()
        rows = connection.exec_driver_sql("SELECT version_num FROM alembic_version")
        return tuple(sorted(str(row[0]) for row in rows))
