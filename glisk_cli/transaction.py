"""One Unit of Work's transaction: a pooled connection checked out on first use, and an ORM
Session on that connection only when something needs one (docs/architecture.md, "The workers'
path below the ORM").

The workers' path (claim, renew, advance, release) sends its driver SQL straight through the
connection's psycopg cursor: no Session, no SQLAlchemy result processing, which together cost
more client CPU than the statement itself. Operator reads and the seed's single-token API use the
Session, on the same connection and in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

import psycopg
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from glisk_cli.database import translate_driver_error, translate_errors
from glisk_cli.errors import ConnectionLost

T = TypeVar("T")


class Transaction:
    """Begins when first used; `commit` or `rollback` ends it, `close` gives the connection back."""

    def __init__(self, engine: Engine | None, sessions: sessionmaker[Session]) -> None:
        """On `engine`'s connections, with Sessions from `sessions` when needed; with no engine
        (a bare session factory, as the seed builds it), the Session's own transaction."""
        self._engine = engine
        self._sessions = sessions
        self._connection: Connection | None = None
        self._session: Session | None = None
        self._used = False  # a statement has run: from then on nothing is retried

    @classmethod
    def of_session(cls, session: Session) -> Transaction:
        """The transaction of an existing Session (a repository built on one directly)."""
        transaction = cls(None, sessionmaker())
        transaction._session = session
        return transaction

    @property
    def connection(self) -> Connection:
        if self._connection is None:
            if self._engine is None:
                self._connection = self.session.connection()
            else:
                with translate_errors():
                    self._connection = self._engine.connect()
                    self._connection.begin()
        return self._connection

    @property
    def session(self) -> Session:
        if self._session is None:
            # On our connection, the Session joins its transaction; committing it stays ours.
            self._session = (
                self._sessions() if self._engine is None else self._sessions(bind=self.connection)
            )
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
        connection = self.connection
        dbapi = cast(psycopg.Connection, connection.connection.dbapi_connection)
        try:
            with dbapi.cursor() as cursor:
                cursor.execute(sql, params)  # type: ignore[arg-type]
                return cursor.fetchall()
        except psycopg.Error as error:
            if dbapi.closed or dbapi.broken:
                connection.invalidate()  # the pool must not hand this connection out again
            raise translate_driver_error(error, lost=dbapi.closed or dbapi.broken) from error

    def commit(self) -> None:
        with translate_errors():
            if self._engine is None:
                if self._session is not None:
                    self._session.commit()
            elif self._connection is not None:  # nothing sent: nothing to commit
                if self._session is not None:
                    self._session.flush()
                self._connection.commit()

    def rollback(self) -> None:
        if self._engine is None:
            if self._session is not None:
                self._session.rollback()
        elif self._connection is not None and not self._connection.invalidated:
            self._connection.rollback()

    def discard(self) -> None:
        """Drop the connection (dead or not) and the Session on it; the next use starts afresh."""
        if self._engine is None and self._session is not None:
            self._session.rollback()  # the Session replaces its dead connection itself
            self._connection = None
            return
        if self._connection is not None:
            self._connection.invalidate()
        self.close()

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
        if self._connection is not None and self._engine is not None:
            self._connection.close()
        self._session = self._connection = None
