"""One Unit of Work's transaction: a pooled connection checked out on first use, and an ORM
Session on it only when something needs one (docs/architecture.md, "The workers' path below the
ORM").

The workers' path (claim, renew, advance, release) sends its driver SQL straight through the
pooled psycopg connection: no Connection or Session object, no SQLAlchemy result processing,
which together cost more client CPU than building the statement's records. Operator reads and
the seed's single-token API use a Session, on the same connection and in the same transaction.

A transaction may open with one statement of glisk's own (`Opening`), sent with the checkout:
the per-transaction settings behind a transaction pooler, and the CLI's schema-at-head check,
together in one round trip (docs/architecture.md, "Every transaction runs with fixed settings").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import psycopg
from psycopg.pq import TransactionStatus
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import Pool, PoolProxiedConnection

from glisk_cli.db.kept_connection import KeptConnection
from glisk_cli.db.translate import connect_failure, translate_driver_error, translate_errors
from glisk_cli.errors import ConnectionLost, SchemaNotAtHead

T = TypeVar("T")


@dataclass
class Opening:
    """What a transaction's first statement does before the caller's: `settings` (select-list
    items such as `set_config('TimeZone', 'UTC', true)`), and, until one transaction has passed
    it, the check that the database is at `revision` (SchemaNotAtHead, exit 7, when not)."""

    settings: tuple[str, ...] = ()
    revision: str | None = None
    checked: bool = False  # shared by the Units of Work of one factory: one check per process

    def statement(self) -> str | None:
        items = list(self.settings)
        if self.revision is not None and not self.checked:
            items.append(
                "(SELECT string_agg(version_num, ', ' ORDER BY version_num) FROM alembic_version)"
            )
        return f"SELECT {', '.join(items)}" if items else None

    def verify(self, row: tuple[Any, ...]) -> None:
        if self.revision is None or self.checked:
            return
        if row[-1] != self.revision:
            current = f"is at {row[-1]}, not {self.revision}" if row[-1] else "is not migrated"
            raise SchemaNotAtHead(f"the database {current}", hint="run: glisk db upgrade")
        self.checked = True


class Transaction:
    """Begins when first used; `commit` or `rollback` ends it, `close` gives the connection back."""

    def __init__(
        self,
        engine: Engine | None,
        sessions: sessionmaker[Session],
        opening: Opening | None = None,
        kept: KeptConnection | None = None,
    ) -> None:
        """On `engine`'s connections, with Sessions from `sessions` when needed; with no engine
        (a bare session factory, as the seed builds it), the Session's own transaction.
        `opening`: glisk's own first statement, when there is one. `kept`: where a connection
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

    @classmethod
    def of_session(cls, session: Session) -> Transaction:
        """The transaction of an existing Session (a repository built on one directly)."""
        transaction = cls(None, sessionmaker())
        transaction._session = session
        return transaction

    @property
    def session(self) -> Session:
        if self._session is None:
            if self._engine is None:
                self._session = self._sessions()
            else:
                # On our connection the Session joins its transaction; committing stays ours.
                self._connection = Connection(self._engine, connection=self._checkout())
                self._connection.begin()  # psycopg began already, or begins at the next query
                self._session = self._sessions(bind=self._connection)
        return self._session

    def run(self, operation: Callable[[], T]) -> T:
        """`operation()`, retried once on a fresh connection when the transaction's first
        statement finds its pooled connection dead (the database restarted since it was last
        used). Later statements, and COMMIT, are never retried: what they did is unknown."""
        try:
            with translate_errors():
                result = operation()
        except ConnectionLost:
            if self._used:
                raise
            self.discard()
            with translate_errors():
                result = operation()
        self._used = True
        return result

    def rows(self, sql: str, params: Mapping[str, Any]) -> Sequence[tuple[Any, ...]]:
        """The rows of driver SQL (`%(name)s` parameters) on the transaction's connection."""
        return self.run(lambda: self._driver_rows(sql, params))

    def _driver_rows(self, sql: str, params: Mapping[str, Any]) -> Sequence[tuple[Any, ...]]:
        # With a bare Session, its connection is the one to use.
        pooled = self._checkout() if self._engine else self.session.connection().connection
        driver = cast(psycopg.Connection, pooled.dbapi_connection)
        try:
            with driver.cursor() as cursor:
                cursor.execute(sql, params)  # type: ignore[arg-type]
                return cursor.fetchall()
        except psycopg.Error as error:
            lost = driver.closed or driver.broken
            if lost:
                pooled.invalidate()  # the pool must not hand this connection out again
            raise translate_driver_error(
                self._engine or self.session.get_bind(),  # type: ignore[arg-type]
                error,
                lost=lost,
                statement=sql,
                role=None if lost else driver.info.user,
            ) from error

    def _checkout(self) -> PoolProxiedConnection:
        assert self._engine is not None
        if self._pooled is None:
            self._pool = self._engine.pool  # a new one after a dispose(): see `close`
            try:
                if self._kept is not None:
                    self._pooled = self._kept.take()
                else:
                    self._pooled = self._engine.raw_connection()
            except psycopg.OperationalError as error:
                raise connect_failure(self._engine, error) from error
            opening = self._opening.statement() if self._opening else None
            if opening is not None:
                assert self._opening is not None
                self._opening.verify(self._open(self._pooled, opening))
        return self._pooled

    def _open(self, pooled: PoolProxiedConnection, sql: str) -> tuple[Any, ...]:
        driver = cast(psycopg.Connection, pooled.dbapi_connection)
        try:
            row = driver.execute(sql).fetchone()  # type: ignore[arg-type]
        except psycopg.errors.UndefinedTable:
            driver.rollback()
            raise SchemaNotAtHead(
                "the database is not migrated", hint="run: glisk db upgrade"
            ) from None
        except psycopg.Error as error:
            lost = driver.closed or driver.broken
            if lost:
                pooled.invalidate()  # `run` retries once on a fresh connection
            assert self._engine is not None
            raise translate_driver_error(self._engine, error, lost=lost, statement=sql) from error
        assert row is not None
        return tuple(row)

    def commit(self) -> None:
        with translate_errors():
            if self._engine is None:
                if self._session is not None:
                    self._session.commit()
                return
            if self._session is not None:
                self._session.flush()
            if self._connection is not None:
                self._connection.commit()
            elif self._pooled is not None:  # nothing sent: nothing to commit
                self._commit_pooled(self._pooled)

    def _commit_pooled(self, pooled: PoolProxiedConnection) -> None:
        driver = cast(psycopg.Connection, pooled.dbapi_connection)
        try:
            driver.commit()
        except psycopg.Error as error:
            lost = driver.closed or driver.broken
            if lost:
                pooled.invalidate()
            assert self._engine is not None
            raise translate_driver_error(self._engine, error, lost=lost) from error

    def rollback(self) -> None:
        if self._engine is None:
            if self._session is not None:
                self._session.rollback()
        elif self._connection is not None:
            if not self._connection.invalidated:
                self._connection.rollback()
        elif self._pooled is not None and self._pooled.is_valid:
            self._pooled.rollback()

    def discard(self) -> None:
        """Drop the connection (dead or not) and the Session on it; the next use starts afresh."""
        if self._engine is None:
            if self._session is not None:
                self._session.rollback()  # the Session replaces its dead connection itself
            return
        if self._pooled is not None and self._pooled.is_valid:
            self._pooled.invalidate()
        self.close()

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


def _between_transactions(pooled: PoolProxiedConnection) -> bool:
    """Whether `pooled` is sound and in no transaction: fit for the next Unit of Work as it is."""
    if not pooled.is_valid:
        return False
    driver = cast(psycopg.Connection, pooled.dbapi_connection)
    return not driver.broken and driver.info.transaction_status == TransactionStatus.IDLE
