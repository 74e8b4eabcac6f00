"""What every repository shares: its session, and the one place driver errors become glisk's.

Repositories never commit — the Unit of Work owns the transaction. Every statement a repository
runs goes through `_execute` or `_flush`, where a PostgreSQL error is translated by SQLSTATE into
glisk's own hierarchy: a duplicate is a Conflict, a value the schema rejects is InvalidInput, a
lock or statement timeout is a DatabaseTimeout, and a dropped connection is DatabaseUnavailable.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

from sqlalchemy import Executable, Result
from sqlalchemy.exc import DataError, DBAPIError, StatementError
from sqlalchemy.orm import Session

from glisk_cli.errors import (
    Conflict,
    DatabaseTimeout,
    GliskError,
    InvalidInput,
    NotFound,
    SchemaDrift,
)
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


def translate(error: DBAPIError) -> GliskError | None:
    sqlstate = getattr(error.orig, "sqlstate", None) or ""
    diag = getattr(error.orig, "diag", None)
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
    if sqlstate in ("23514", "23502") or sqlstate.startswith("22") or isinstance(error, DataError):
        # 22xxx: a value the type rejects; a DataError without a state: refused by the driver
        # before sending, such as a NUL character, which PostgreSQL text cannot hold.
        primary = getattr(diag, "message_primary", None) or str(error.orig).splitlines()[0]
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
