"""What every repository shares: its session, `add` and `get_by_id`, and error translation.

Repositories never commit — the Unit of Work owns the transaction. Every statement a repository
runs goes through `_execute` or `_flush`, inside `database.translate_errors`: a duplicate becomes
a Conflict, a value the schema rejects InvalidInput, a lock or statement timeout a
DatabaseTimeout, and a dropped connection DatabaseUnavailable.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from sqlalchemy import Executable, Result
from sqlalchemy.orm import Session

from glisk_cli.database import translate_errors
from glisk_cli.errors import ConnectionLost
from glisk_cli.models import Base

T = TypeVar("T")

M = TypeVar("M", bound=Base)


class Repository(Generic[M]):
    """Base of the per-table repositories: `add` and `get_by_id` for the table's model."""

    model: type[M]

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, instance: M) -> M:
        """Insert `instance` now (flushed, so its defaults and any conflict show at once)."""
        self.session.add(instance)
        self._flush()
        return instance

    def get_by_id(self, id: uuid.UUID) -> M | None:
        with translate_errors():
            return self.session.get(self.model, id)

    def _execute(self, statement: Executable, params: Mapping[str, Any] | None = None) -> Result:
        return self._first_retried(lambda: self.session.execute(statement, params))

    def _driver_rows(self, sql: str, params: Mapping[str, Any]) -> Sequence[Any]:
        """Rows of driver SQL (`%(name)s` parameters), run on the Unit of Work's connection."""
        return self._first_retried(
            lambda: self.session.connection().exec_driver_sql(sql, params).all()  # type: ignore[arg-type]
        )

    def _first_retried(self, run: Callable[[], T]) -> T:
        """`run()`, retried once on a fresh connection when the Unit of Work's first statement
        finds its pooled connection dead (the database restarted since it was last used). Later
        statements, and COMMIT, are never retried: what they did is unknown."""
        first = not self.session.in_transaction()
        try:
            with translate_errors():
                return run()
        except ConnectionLost:
            if not first:
                raise
            self.session.rollback()  # the dead connection goes; the next one is fresh
        with translate_errors():
            return run()

    def _flush(self) -> None:
        with translate_errors():
            self.session.flush()
