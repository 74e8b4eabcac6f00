"""One Unit of Work's transaction, in two kinds behind one protocol (docs/architecture.md, "The
workers' path below the ORM"):

- `PooledTransaction`, on a connection of an engine's pool, checked out at the first statement.
  The workers' path (claim, renew, advance, release) sends its driver SQL straight through the
  psycopg connection: no Connection or Session object, no SQLAlchemy result processing. Operator
  reads and the seed's single-token API get a Session on the same connection, in the same
  transaction, made only when they need it. Every Unit of Work of a `Database` runs in one.
- `SessionTransaction`, the transaction of a Session: one the caller made (a repository built
  on a Session, as the seed builds them), or one the seed's session factory made for a Unit of
  Work (`uow.py` adapts the factory). The Session commits it.

Both translate driver errors into glisk's (`translate.py`), and retry a transaction's first
statement once when it finds its connection dead (the database restarted since it was last used);
later statements, and COMMIT, are never retried: what they did is unknown.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

import psycopg
from psycopg.pq import TransactionStatus
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import Pool, PoolProxiedConnection

from glisk_cli.db.driver import Rows, driver, driver_error, driver_rows
from glisk_cli.db.kept_connection import KeptConnection
from glisk_cli.db.opening import Opening
from glisk_cli.db.planner import PlannerSettings
from glisk_cli.db.translate import connect_failure, translate_errors
from glisk_cli.errors import ConnectionLost

T = TypeVar("T")


class Transaction(Protocol):
    """What a Unit of Work and its repositories use of their transaction."""

    @property
    def session(self) -> Session:
        """An ORM Session in this transaction (made on first use)."""
        ...

    def run(self, operation: Callable[[], T]) -> T:
        """`operation()` with driver errors translated; retried once on a fresh connection when
        the transaction's first statement finds its connection dead."""
        ...

    def rows(
        self, sql: str, params: Mapping[str, Any], planner: PlannerSettings | None = None
    ) -> Rows:
        """The rows of driver SQL (`%(name)s` parameters) on the transaction's connection,
        planned under `planner`'s settings when given (`planner.py`)."""
        ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def close(self) -> None:
        """End the transaction's hold on its connection (after commit or rollback)."""
        ...


class PooledTransaction:
    """A transaction on a connection of `engine`'s pool; Sessions from `sessions` join it."""

    def __init__(
        self,
        engine: Engine,
        sessions: sessionmaker[Session],
        opening: Opening | None = None,
        kept: KeptConnection | None = None,
    ) -> None:
        """`opening`: glisk's own first statement, when there is one. `kept`: where a connection
        waits between transactions, when the database keeps one (`kept_connection.py`)."""
        self._engine = engine
        self._sessions = sessions
        self._opening = opening
        self._kept = kept
        self._pooled: PoolProxiedConnection | None = None  # the pool's connection, once out
        self._pool: Pool | None = None  # the pool it came from
        self._connection: Connection | None = None  # SQLAlchemy's, made for a Session
        self._session: Session | None = None
        self._used = False  # a statement has run: from then on nothing is retried

    @property
    def session(self) -> Session:
        if self._session is None:
            # On our connection the Session joins its transaction; committing stays ours.
            self._connection = Connection(self._engine, connection=self._checkout())
            self._connection.begin()  # psycopg began already, or begins at the next query
            self._session = self._sessions(bind=self._connection)
        return self._session

    def run(self, operation: Callable[[], T]) -> T:
        result = _retried_once(operation, first=not self._used, reconnect=self._reconnect)
        self._used = True
        return result

    def rows(
        self, sql: str, params: Mapping[str, Any], planner: PlannerSettings | None = None
    ) -> Rows:
        return self.run(lambda: driver_rows(self._checkout(), self._engine, sql, params, planner))

    def commit(self) -> None:
        with translate_errors():
            if self._session is not None:
                self._session.flush()
            if self._connection is not None:
                self._connection.commit()
            elif self._pooled is not None:  # nothing sent: nothing to commit
                try:
                    driver(self._pooled).commit()
                except psycopg.Error as error:
                    raise driver_error(self._pooled, self._engine, error) from error

    def rollback(self) -> None:
        if self._connection is not None:
            if not self._connection.invalidated:
                self._connection.rollback()
        elif self._pooled is not None and self._pooled.is_valid:
            self._pooled.rollback()

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
        if self._connection is not None:
            self._connection.close()  # gives the pooled connection back
        elif self._pooled is not None:
            kept, pool = self._kept, self._pool
            if kept is not None and pool is not None and _between_transactions(self._pooled):
                kept.keep(self._pooled, pool)
            else:
                self._pooled.close()  # the pool resets it, or drops it when invalidated
        self._session = self._connection = self._pooled = None

    def _reconnect(self) -> None:
        """Drop the connection (dead or not) and the Session on it; the next use starts afresh."""
        if self._pooled is not None and self._pooled.is_valid:
            self._pooled.invalidate()
        self.close()

    def _checkout(self) -> PoolProxiedConnection:
        if self._pooled is None:
            self._pool = self._engine.pool  # a new one after a dispose(): see `close`
            try:
                if self._kept is not None:
                    self._pooled = self._kept.take()
                else:
                    self._pooled = self._engine.raw_connection()
            except psycopg.OperationalError as error:
                raise connect_failure(self._engine, error) from error
            if self._opening is not None:
                self._opening.open(self._pooled, self._engine)
        return self._pooled


class SessionTransaction:
    """The transaction of a Session the caller made; its commit is the Session's."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._used = False

    def run(self, operation: Callable[[], T]) -> T:
        # After a rollback the Session replaces its dead connection itself.
        result = _retried_once(operation, first=not self._used, reconnect=self.session.rollback)
        self._used = True
        return result

    def rows(
        self, sql: str, params: Mapping[str, Any], planner: PlannerSettings | None = None
    ) -> Rows:
        engine = self.session.get_bind().engine  # bound to an Engine, or to a Connection of one
        return self.run(
            lambda: driver_rows(self.session.connection().connection, engine, sql, params, planner)
        )

    def commit(self) -> None:
        with translate_errors():
            self.session.commit()

    def rollback(self) -> None:
        self.session.rollback()

    def close(self) -> None:
        self.session.close()


def as_transaction(source: Transaction | Session) -> Transaction:
    """`source`, or the transaction of the Session a repository was built on (as the seed
    builds repositories)."""
    return SessionTransaction(source) if isinstance(source, Session) else source


def _retried_once(operation: Callable[[], T], *, first: bool, reconnect: Callable[[], None]) -> T:
    """`operation()`, and once more after `reconnect()` when it is the transaction's `first`
    statement and found its connection dead."""
    try:
        with translate_errors():
            return operation()
    except ConnectionLost:
        if not first:
            raise
    reconnect()
    with translate_errors():
        return operation()


def _between_transactions(pooled: PoolProxiedConnection) -> bool:
    """Whether `pooled` is sound and in no transaction: fit for the next Unit of Work as it is."""
    if not pooled.is_valid:
        return False
    connection = driver(pooled)
    return not connection.broken and connection.info.transaction_status == TransactionStatus.IDLE
