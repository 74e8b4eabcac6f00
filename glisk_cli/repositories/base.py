"""What every repository shares: its session, `add` and `get_by_id`, and error translation.

Repositories never commit — the Unit of Work owns the transaction. Every statement a repository
runs goes through `_execute` or `_flush`, inside `database.translate_errors`: a duplicate becomes
a Conflict, a value the schema rejects InvalidInput, a lock or statement timeout a
DatabaseTimeout, and a dropped connection DatabaseUnavailable.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from sqlalchemy import Executable, Result
from sqlalchemy.orm import Session

from glisk_cli.database import translate_errors
from glisk_cli.models import Base

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
        with translate_errors():
            return self.session.execute(statement, params)

    def _flush(self) -> None:
        with translate_errors():
            self.session.flush()
