"""The database handle every layer shares, and the one place driver errors become glisk's.

`Database.from_settings(settings)` resolves the URL (DATABASE_URL, or the embedded server, started
on first use), and builds the engine and session factory with the configured timeouts and queue
policy — the CLI and a worker that imports glisk get the same database, the same way
(docs/architecture.md, "One database handle"). `setup_db_session(url, pool_size)` is the seed's
explicit entry point over the same engine, with glisk's default numbers.

Every connection runs with the server-side TimeZone = UTC, whatever the server's or the database's
default, so `now()` and timestamptz text are UTC everywhere. A connection that cannot be made
(refused, timed out, dropped) surfaces as DatabaseUnavailable (exit 3) with the URL's password
masked; other driver errors are translated by SQLSTATE in `translate_errors`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import psycopg
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import DataError, DBAPIError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from glisk_cli.errors import (
    Conflict,
    ConnectionLost,
    DatabaseTimeout,
    DatabaseUnavailable,
    GliskError,
    InvalidInput,
    NotFound,
    SchemaDrift,
)
from glisk_cli.policy import QueuePolicy, Timeouts
from glisk_cli.redact import mask_url, redact

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
    ) -> None:
        self.url = url
        self.pool_size = pool_size
        self.timeouts = timeouts
        self.policy = policy
        self.engine = _create_engine(
            url, pool_size, timeouts, keepalives=keepalives, pre_ping=pre_ping
        )
        # expire_on_commit=False: objects returned from a Unit of Work stay readable after it.
        self.sessions = sessionmaker(bind=self.engine, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Database:
        """The database the settings name (read from the environment when not given)."""
        if settings is None:
            from glisk_cli.config import load_settings

            settings = load_settings()
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
    event.listen(engine, "handle_error", _translate_unavailable)
    return engine


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


# -- driver errors → glisk errors ---------------------------------------------------------------


def _translate_unavailable(context: ExceptionContext) -> Any:
    """Turn "cannot reach the server" into DatabaseUnavailable; leave every other error alone."""
    original = context.original_exception
    if not isinstance(original, Exception):
        # Ctrl-C mid-statement also invalidates the connection; it must stay an interrupt.
        return None
    connecting = context.connection is None or context.is_pre_ping
    if context.is_disconnect or (connecting and isinstance(original, psycopg.OperationalError)):
        raise unreachable(context.engine, original, lost=not connecting) from original
    return None


def unreachable(engine: Engine | None, error: BaseException, *, lost: bool) -> DatabaseUnavailable:
    """The error for a server that cannot be reached (or a connection to it that broke, `lost`),
    naming the server with its password masked."""
    where = engine.url.render_as_string(hide_password=True) if engine else "the database"
    # A pooled connection that died is worth one retry (transaction.py); a server that cannot
    # be reached is not.
    kind = ConnectionLost if lost else DatabaseUnavailable
    return kind(
        f"cannot reach PostgreSQL at {where}: {_first_line(error)}",
        hint="is the server running? is DATABASE_URL right?",
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return redact(text[0]) if text else type(exc).__name__


@contextmanager
def translate_errors() -> Iterator[None]:
    """Re-raise database errors as GliskErrors; anything else passes through unchanged."""
    try:
        yield
    except DBAPIError as error:
        translated = translate(error)
        if translated is None:
            raise
        raise translated from error
    except StatementError as error:
        # Raised before reaching the server, e.g. a naive datetime refused by a column type.
        if isinstance(error.orig, GliskError):
            raise error.orig from error
        raise
    except UnicodeEncodeError:
        # Text from the command line can carry lone surrogates (undecodable bytes in argv).
        raise InvalidInput("text is not valid Unicode (it has undecodable characters)") from None


def translate_driver_error(engine: Engine, error: psycopg.Error, *, lost: bool) -> Exception:
    """What a psycopg error raised outside SQLAlchemy (the workers' path) means to glisk:
    ConnectionLost when the connection broke, else as `translate`, else the error itself."""
    if lost:
        return unreachable(engine, error, lost=True)
    return translate(error) or error


def translate(error: DBAPIError | psycopg.Error) -> GliskError | None:
    """The GliskError a driver error means, by SQLSTATE; None for one glisk does not expect."""
    driver = error.orig if isinstance(error, DBAPIError) else error
    sqlstate = getattr(driver, "sqlstate", None) or ""
    diag = getattr(driver, "diag", None)
    constraint = getattr(diag, "constraint_name", None) or "a constraint"
    detail = getattr(diag, "message_detail", None)
    if sqlstate == "23505":
        return Conflict(f"duplicate: {detail or constraint} already exists")
    if sqlstate in ("23503", "23001"):  # foreign_key_violation, restrict_violation
        if sqlstate == "23001" or getattr(diag, "message_primary", "").startswith("update or"):
            referenced = f"still referenced ({constraint})"
            return Conflict(f"{referenced}: {detail}" if detail else referenced)
        missing = f"referenced row does not exist ({constraint})"
        return NotFound(f"{missing}: {detail}" if detail else missing)
    rejected = isinstance(error, DataError | psycopg.DataError)
    if sqlstate in ("23514", "23502") or sqlstate.startswith("22") or rejected:
        # 22xxx: a value the type rejects; a DataError without a state: refused by the driver
        # before sending, such as a NUL character, which PostgreSQL text cannot hold.
        primary = getattr(diag, "message_primary", None) or str(driver).splitlines()[0]
        return InvalidInput(f"rejected by the database: {primary}")
    if sqlstate in ("42P01", "42703", "42704"):  # undefined table / column / object
        return SchemaDrift(
            "the database schema does not match this glisk version",
            hint="run: glisk db verify",
        )
    if sqlstate in ("55P03", "57014"):
        what = "a lock" if sqlstate == "55P03" else "the statement to finish"
        return DatabaseTimeout(
            f"gave up waiting for {what} (another session may be holding rows or tables)",
            hint="retry; see GLISK_LOCK_TIMEOUT and GLISK_STATEMENT_TIMEOUT",
        )
    return None
