"""A transaction's opening statement: what glisk sends with the checkout, before the caller's
first statement, in one round trip — the per-transaction settings behind a transaction pooler,
and the CLI's schema-at-head check (docs/architecture.md, "Every transaction runs with fixed
settings").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg

from glisk_cli.db.driver import driver, driver_error
from glisk_cli.errors import SchemaNotAtHead

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.pool import PoolProxiedConnection


@dataclass
class Opening:
    """What a transaction's first statement does before the caller's: `settings` (select-list
    items such as `set_config('TimeZone', 'UTC', true)`), and, until one transaction has passed
    it, the check that the database is at `revision` (SchemaNotAtHead, exit 7, when not)."""

    settings: tuple[str, ...] = ()
    revision: str | None = None
    checked: bool = False  # shared by the Units of Work of one factory: one check per process

    def open(self, pooled: PoolProxiedConnection, engine: Engine) -> None:
        """Send the opening statement on `pooled`, a connection just checked out of `engine`."""
        statement = self._statement()
        if statement is None:
            return
        connection = driver(pooled)
        try:
            row = connection.execute(statement).fetchone()  # type: ignore[arg-type]
        except psycopg.errors.UndefinedTable:
            connection.rollback()
            raise SchemaNotAtHead(
                "the database is not migrated", hint="run: glisk db upgrade"
            ) from None
        except psycopg.Error as error:
            raise driver_error(pooled, engine, error, statement) from error
        assert row is not None
        self._verify(tuple(row))

    def _statement(self) -> str | None:
        items = list(self.settings)
        if self.revision is not None and not self.checked:
            items.append(
                "(SELECT string_agg(version_num, ', ' ORDER BY version_num) FROM alembic_version)"
            )
        return f"SELECT {', '.join(items)}" if items else None

    def _verify(self, row: tuple[Any, ...]) -> None:
        if self.revision is None or self.checked:
            return
        current = row[-1]  # the revision check is the statement's last item
        if current != self.revision:
            state = f"is at {current}, not {self.revision}" if current else "is not migrated"
            raise SchemaNotAtHead(f"the database {state}", hint="run: glisk db upgrade")
        self.checked = True
