"""The database handle every layer shares, and the one place driver errors become glisk's.

`Database.from_settings(settings)` resolves the URL (DATABASE_URL, or the embedded server, started
on first use), and builds the engine and session factory with the configured timeouts and queue
policy — the CLI and a worker that imports glisk get the same database, the same way
(docs/architecture.md, "One database handle"). `setup_db_session(url, pool_size)` is the seed's
explicit entry point over the same engine, with glisk's default numbers.

Every connection runs with the server-side TimeZone = UTC, whatever the server's or the database's
default, so `now()` and timestamptz text are UTC everywhere. A connection that cannot be made
(refused, timed out, dropped) surfaces as DatabaseUnavailable (exit 3) with the URL's password
masked; other driver errors are translated by SQLSTATE (`database_errors.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import psycopg
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from glisk_cli.database_errors import translate_unavailable
from glisk_cli.policy import QueuePolicy, Timeouts
from glisk_cli.redact import mask_url

if TYPE_CHECKING:
    from glisk_cli.config import Settings

DEFAULT_TIMEOUTS = Timeouts()
DEFAULT_POLICY = QueuePolicy()
# The health check gives up on the database after this long (`glisk serve`).
HEALTH_CHECK_TIMEOUT = timedelta(seconds=1)


class Database:
    """One PostgreSQL database: where it is, its engine (a pool), its session factory, and the
    queue policy its Units of Work apply. Nothing connects until a session or connection is used.
    """

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        policy: QueuePolicy = DEFAULT_POLICY,
        keepalives: bool = False,
        pre_ping: bool = False,
        on_refused: Callable[[], None] | None = None,
    ) -> None:
        """`on_refused`: called when a connection is refused, before one more try (the embedded
        server restarts its postmaster there if it died)."""
        self.url = url
        self.pool_size = pool_size
        self.timeouts = timeouts
        self.policy = policy
        self._on_refused = on_refused
        self.engine = _create_engine(
            url, pool_size, timeouts, keepalives=keepalives, pre_ping=pre_ping
        )
        if on_refused is not None:
            event.listen(self.engine, "do_connect", _retry_refused(on_refused))
        # expire_on_commit=False: objects returned from a Unit of Work stay readable after it.
        self.sessions = sessionmaker(bind=self.engine, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Database:
        """The database the settings name (read from the environment when not given)."""
        if settings is None:
            from glisk_cli.config import load_settings

            settings = load_settings()
        on_refused = None
        if not settings.database_url_value:
            from glisk_cli.embedded import embedded_server

            on_refused = embedded_server(settings.glisk_data_dir).recover
        return cls(
            resolve_database_url(settings),
            pool_size=settings.db_pool_size,
            timeouts=Timeouts(
                connect=settings.glisk_connect_timeout,
                lock=settings.glisk_lock_timeout,
                statement=settings.glisk_statement_timeout,
            ),
            policy=QueuePolicy(
                max_attempts=settings.glisk_max_attempts,
                lease=settings.glisk_lease,
                retry_base=settings.glisk_retry_base,
                retry_max=settings.glisk_retry_max,
            ),
            on_refused=on_refused,
        )

    def for_health_checks(self) -> Database:
        """The same database with the health check's limits: every connection attempt and query
        gives up within about a second (libpq's connect timeout cannot go below 2 s; the waiter
        bounds the rest), and TCP keepalives notice a server that vanished from the network."""
        limits = Timeouts(
            connect=timedelta(seconds=2), lock=HEALTH_CHECK_TIMEOUT, statement=HEALTH_CHECK_TIMEOUT
        )
        # A check must not fail on a pooled connection that died while the database was down
        # (the Unit of Work retries its first statement instead; a check is one statement).
        return Database(
            self.url,
            pool_size=self.pool_size,
            timeouts=limits,
            policy=self.policy,
            keepalives=True,
            pre_ping=True,
            on_refused=self._on_refused,
        )

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def setup_db_session(
    database_url: str,
    pool_size: int = 10,
    *,
    connect_timeout: timedelta = DEFAULT_TIMEOUTS.connect,
    lock_timeout: timedelta | None = DEFAULT_TIMEOUTS.lock,
    statement_timeout: timedelta | None = DEFAULT_TIMEOUTS.statement,
) -> sessionmaker[Session]:
    """The session factory of `database_url`, with glisk's default timeouts unless given."""
    timeouts = Timeouts(connect=connect_timeout, lock=lock_timeout, statement=statement_timeout)
    return Database(database_url, pool_size=pool_size, timeouts=timeouts).sessions


def _create_engine(
    url: str, pool_size: int, timeouts: Timeouts, *, keepalives: bool, pre_ping: bool
) -> Engine:
    """An Engine whose every connection is UTC-pinned and bounded by `timeouts`."""
    options = ["-c TimeZone=UTC"]
    for name, limit in (("lock_timeout", timeouts.lock), ("statement_timeout", timeouts.statement)):
        if limit is not None:
            options.append(f"-c {name}={max(1, round(limit.total_seconds() * 1000))}")
    connect_args: dict[str, Any] = {
        # libpq takes whole seconds and treats anything under 2 as 2.
        "connect_timeout": max(2, round(timeouts.connect.total_seconds())),
        # Set at connection start-up, so it costs no round trip and survives pool resets.
        "options": " ".join(options),
    }
    if keepalives:
        # libpq ignores these on a Unix socket (the embedded server).
        connect_args.update(
            keepalives=1, keepalives_idle=5, keepalives_interval=1, keepalives_count=3,
            tcp_user_timeout=3000,
        )  # fmt: skip
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    engine = create_engine(
        parsed,
        pool_size=pool_size,
        max_overflow=pool_size,
        # No ping before every checkout: it is a round trip per Unit of Work. A connection that
        # died in the pool fails the first statement, which the repositories retry once.
        pool_pre_ping=pre_ping,
        connect_args=connect_args,
    )
    event.listen(engine, "handle_error", translate_unavailable)
    return engine


def _retry_refused(on_refused: Callable[[], None]) -> Callable[..., Any]:
    """A `do_connect` hook: a refused connection calls `on_refused`, then tries once more."""

    def connect(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        try:
            return dialect.connect(*cargs, **cparams)
        except psycopg.OperationalError:
            on_refused()
            return dialect.connect(*cargs, **cparams)

    return connect


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
