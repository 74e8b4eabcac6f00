"""SystemStateRepository: system_state, small named JSON values (cursors, flags)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert

from glisk_cli.errors import NotFound
from glisk_cli.models import SystemState
from glisk_cli.repositories.base import Repository

_MISSING = object()


class SystemStateRepository(Repository):
    def get_state(self, key: str, default: Any = _MISSING) -> Any:
        """The JSON value stored under `key` (deserialised); NotFound unless `default` given."""
        query = select(SystemState.state_value).where(SystemState.key == key)
        row = self._execute(query).first()
        if row is None:
            if default is _MISSING:
                raise NotFound(f"state key {key!r} not found")
            return default
        return row[0]

    def set_state(self, key: str, value: Any) -> None:
        """Store `value` (any JSON value, null included) under `key`, replacing what was there.

        One INSERT … ON CONFLICT DO UPDATE: atomic, so concurrent writers never collide on a
        duplicate key and the last write wins.
        """
        statement = insert(SystemState).values(key=key, state_value=value)
        statement = statement.on_conflict_do_update(
            index_elements=[SystemState.key],
            set_={"state_value": statement.excluded.state_value, "updated_at": func.now()},
        )
        self._execute(statement)

    def delete_state(self, key: str) -> bool:
        """Remove `key`; returns whether it existed. Deleting a missing key is not an error."""
        result = self._execute(delete(SystemState).where(SystemState.key == key))
        return bool(getattr(result, "rowcount", 0))

    def list(self, prefix: str | None = None) -> Sequence[SystemState]:
        """All entries, by key; only keys starting with `prefix` (taken literally) if given."""
        query = select(SystemState).order_by(SystemState.key)
        if prefix:
            query = query.where(func.starts_with(SystemState.key, prefix))
        return self._execute(query).scalars().all()
