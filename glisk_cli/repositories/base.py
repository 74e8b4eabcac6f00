"""What repositories share: their transaction, ORM statements run in it, and the seed's verbs
`add` and `get_by_id` for a table's model.

Repositories never commit — the Unit of Work owns the transaction. Every statement a repository
runs goes through the Unit of Work's transaction (`db/transaction.py`), which translates driver
errors (`db/translate.py`: a duplicate becomes a Conflict, a value the schema rejects
InvalidInput, a lock or statement timeout a DatabaseTimeout, a dropped connection
DatabaseUnavailable) and retries a first statement that finds its pooled connection dead.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy import Executable, Result
from sqlalchemy.orm import Session

from glisk_cli.db.transaction import Transaction, as_transaction

if TYPE_CHECKING:
    from glisk_cli.models import Base

M = TypeVar("M", bound="Base")


class Repository:
    """A repository working in `transaction` (a Unit of Work's, or a Session's own)."""

    def __init__(self, transaction: Transaction | Session) -> None:
        self.transaction = as_transaction(transaction)

    @property
    def session(self) -> Session:
        """The ORM Session, on the Unit of Work's connection (made on first use)."""
        return self.transaction.session

    def _execute(self, statement: Executable, params: Mapping[str, Any] | None = None) -> Result:
        return self.transaction.run(lambda: self.session.execute(statement, params))

    def _flush(self) -> None:
        self.transaction.run(self.session.flush)


class TableRepository(Repository, Generic[M]):
    """The repository of one table's `model`."""

    model: type[M]

    def add(self, instance: M) -> M:
        """Insert `instance` now (flushed, so its defaults and any conflict show at once)."""
        self.session.add(instance)
        self._flush()
        return instance

    def get_by_id(self, id: uuid.UUID) -> M | None:
        return self.transaction.run(lambda: self.session.get(self.model, id))
