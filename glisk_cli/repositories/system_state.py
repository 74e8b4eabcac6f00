"""SystemStateRepository: system_state, small named JSON values (cursors, flags).

Reading, writing and deleting one key are a single statement each, sent as driver SQL on the
Unit of Work's connection: `glisk state get` loads no ORM model and configures no mapper
(docs/architecture.md, "A one-shot command loads what it uses"). The listing returns models.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from psycopg.types.json import Jsonb

from glisk_cli.errors import NotFound
from glisk_cli.repositories.base import Repository

if TYPE_CHECKING:
    from glisk_cli.models import SystemState

_MISSING = object()
_GET = "SELECT state_value FROM system_state WHERE key = %(key)s"
# One INSERT … ON CONFLICT DO UPDATE: atomic, so concurrent writers never collide on a duplicate
# key and the last write wins.
_SET = (
    "INSERT INTO system_state (key, state_value) VALUES (%(key)s, %(value)s) "
    "ON CONFLICT (key) DO UPDATE SET state_value = excluded.state_value, updated_at = now() "
    "RETURNING key"
)
_DELETE = "DELETE FROM system_state WHERE key = %(key)s RETURNING key"


class SystemStateRepository(Repository):
    def get_state(self, key: str, default: Any = _MISSING) -> Any:
        """The JSON value stored under `key` (deserialised); NotFound unless `default` given."""
        rows = self.transaction.rows(_GET, {"key": key})
        if not rows:
            if default is _MISSING:
                raise NotFound(f"state key {key!r} not found")
            return default
        return rows[0][0]

    def set_state(self, key: str, value: Any) -> None:
        """Store `value` (any JSON value, null included) under `key`, replacing what was there."""
        self.transaction.rows(_SET, {"key": key, "value": Jsonb(value)})

    def delete_state(self, key: str) -> bool:
        """Remove `key`; returns whether it existed. Deleting a missing key is not an error."""
        return bool(self.transaction.rows(_DELETE, {"key": key}))

    def list(self, prefix: str | None = None) -> Sequence[SystemState]:
        """All entries, by key; only keys starting with `prefix` (taken literally) if given."""
        from sqlalchemy import func, select

        from glisk_cli.models import SystemState

        query = select(SystemState).order_by(SystemState.key)
        if prefix:
            query = query.where(func.starts_with(SystemState.key, prefix))
        return self._execute(query).scalars().all()
