"""The database handle every layer shares: where the database is, its engines and session
factory, the timeouts and the queue policy its Units of Work apply.

`Database.from_settings(settings)` resolves the URL (DATABASE_URL, or the embedded server, started
on first use), and builds the engine and session factory with the configured timeouts and queue
policy — the CLI and a worker that imports glisk get the same database, the same way
(docs/architecture.md, "One database handle"). `setup_db_session(url, pool_size)` is the seed's
explicit entry point over the same engine, with glisk's default numbers.

Every transaction runs with the server-side TimeZone = UTC, whatever the server's or the database's
default, so `now()` and timestamptz text are UTC everywhere: set per connection, or per
transaction behind a transaction pooler (GLISK_POOLER, `connection_setup.py`). Then what needs a
session — LISTEN, the migrations' advisory lock — uses DATABASE_DIRECT_URL (`session_engine`).
A connection that cannot be made (refused, timed out, dropped) surfaces as DatabaseUnavailable
(exit 3) with the URL's password masked; other driver errors are translated by SQLSTATE
(`translate.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import psycopg
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from glisk_cli.db.connection_setup import (
    PoolerMode,
    answer_probes_locally,
    connect_args,
    transaction_settings,
)
from glisk_cli.db.kept_connection import KeptConnection
from glisk_cli.db.translate import translate_unavailable
from glisk_cli.errors import ConfigError
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
        pooler: PoolerMode = "none",
        direct_url: str | None = None,
    ) -> None:
        """`on_refused`: called when a connection is refused, before one more try (the embedded
        server restarts its postmaster there if it died). `pooler`: "transaction" when `url`
        goes through a transaction pooler; `direct_url`: a connection that keeps its session,
        for LISTEN and migrations (DATABASE_DIRECT_URL)."""
        self.url = url
        self.pool_size = pool_size
        self.timeouts = timeouts
        self.policy = policy
        self.pooler: PoolerMode = pooler
        self.direct_url = direct_url
        self._on_refused = on_refused
        self._keepalives = keepalives
        # What each transaction's first statement sets (nothing unless behind a pooler).
        self.transaction_settings = transaction_settings(pooler, timeouts)
        self.engine = _create_engine(
            url, pool_size, timeouts, keepalives=keepalives, pre_ping=pre_ping, pooler=pooler
        )
        # One connection waits between Units of Work (a pinging pool checks every checkout);
        # the pool holds its size plus as many again in overflow (`_create_engine`).
        self.kept = None if pre_ping else KeptConnection(self.engine, capacity=2 * pool_size)
        self._direct_engine: Engine | None = None
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
            pooler=settings.glisk_pooler,
            direct_url=settings.database_direct_url_value,
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
            pooler=self.pooler,
        )

    def session_engine(self, purpose: str) -> Engine:
        """An engine whose connections keep their session (LISTEN, session advisory locks):
        DATABASE_DIRECT_URL's when set, else the main one unless it goes through a transaction
        pooler — then ConfigError (exit 4) naming `purpose`."""
        if self.direct_url:
            if self._direct_engine is None:
                self._direct_engine = _create_engine(
                    self.direct_url,
                    1,
                    self.timeouts,
                    keepalives=self._keepalives,
                    pre_ping=False,
                    pooler="none",
                )
            return self._direct_engine
        if self.pooler == "transaction":
            raise ConfigError(
                f"{purpose} needs a session, which GLISK_POOLER=transaction does not keep: set "
                "DATABASE_DIRECT_URL to a connection that bypasses the pooler"
            )
        return self.engine

    @property
    def can_listen(self) -> bool:
        """Whether LISTEN works: a direct URL, or no transaction pooler in the way."""
        return bool(self.direct_url) or self.pooler != "transaction"

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)

    @property
    def masked_libpq_url(self) -> str:
        """The masked URL as psql and other libpq clients take it (no SQLAlchemy driver name)."""
        scheme, _, rest = self.masked_url.partition("://")
        return f"{scheme.partition('+')[0]}://{rest}"

    @property
    def masked_direct_url(self) -> str | None:
        return mask_url(self.direct_url) if self.direct_url else None

    def dispose(self) -> None:
        """Close every pooled connection."""
        if self.kept is not None:
            self.kept.close()
        self.engine.dispose()
        if self.kept is not None:  # one that a Unit of Work still running kept meanwhile
            self.kept.close()
        if self._direct_engine is not None:
            self._direct_engine.dispose()


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
    url: str,
    pool_size: int,
    timeouts: Timeouts,
    *,
    keepalives: bool,
    pre_ping: bool,
    pooler: PoolerMode = "none",
) -> Engine:
    """An Engine whose every connection is UTC-pinned and bounded by `timeouts` (per connection,
    or per transaction behind a transaction pooler: `connection_setup.py`)."""
    arguments = connect_args(pooler, timeouts)
    if keepalives:
        # libpq ignores these on a Unix socket (the embedded server).
        arguments.update(
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=1,
            keepalives_count=3,
            tcp_user_timeout=3000,
        )
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
        connect_args=arguments,
        # glisk uses no hstore column; the probe for it is a savepoint and a query per engine.
        use_native_hstore=False,
    )
    answer_probes_locally(engine.dialect)
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


def reflecting(connection: Connection) -> Connection:
    """`connection`, with its dialect knowing the default schema, which reflection (Alembic,
    `db verify`) needs and which glisk's engines do not ask for at connect time."""
    dialect = connection.dialect
    if dialect.default_schema_name is None:
        dialect.default_schema_name = connection.exec_driver_sql("SELECT current_schema()").scalar()
    return connection


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
