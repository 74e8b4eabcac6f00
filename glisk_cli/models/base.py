"""The declarative base every model shares: naming convention, column types, UTC timestamps.

Constraint and index names come from one MetaData naming convention, so migrations, `db verify`
and error messages all speak of the same names. Timestamps are `timestamptz` and must be
timezone-aware: a naive datetime is refused before it can reach PostgreSQL, where it would be
read in the session's zone and silently shift.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from sqlalchemy import DateTime, MetaData, Numeric, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, mapped_column
from sqlalchemy.types import TypeDecorator

from glisk_cli.errors import InvalidInput

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class NaiveDatetimeError(InvalidInput, ValueError):
    """A datetime without a time zone was handed to the database layer."""


def require_aware(value: datetime | None, what: str = "timestamp") -> datetime | None:
    """Return `value` unchanged if it carries a time zone; refuse a naive one. A SQL expression
    (say `statement_timestamp() + delay`) is the database's to compute, in its own zone."""
    if isinstance(value, datetime) and (value.tzinfo is None or value.utcoffset() is None):
        raise NaiveDatetimeError(
            f"{what} {value.isoformat()} has no time zone; pass an aware datetime (e.g. UTC)"
        )
    return value


class AwareDateTime(TypeDecorator[datetime]):
    """`timestamptz` that accepts only timezone-aware datetimes."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return require_aware(value)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 — SQLAlchemy reads this class attribute by name
        datetime: AwareDateTime(),
        uuid.UUID: PG_UUID(as_uuid=True),
        dict[str, Any]: JSONB(),
        Any: JSONB(),
        Decimal: Numeric(),
        str: Text(),
    }


# Reusable column shapes.
UUIDPrimaryKey = Annotated[
    uuid.UUID, mapped_column(primary_key=True, server_default=func.gen_random_uuid())
]
DefaultNow = Annotated[datetime, mapped_column(server_default=func.now())]
Address = Annotated[str, mapped_column(String(42))]
TxHash = Annotated[str, mapped_column(String(66))]


def check_in(column: str, values: tuple[str, ...]) -> str:
    """SQL for a CHECK constraint that `column` is one of `values`."""
    listed = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({listed})"


__all__ = [
    "Address",
    "AwareDateTime",
    "Base",
    "DefaultNow",
    "NaiveDatetimeError",
    "TxHash",
    "UUIDPrimaryKey",
    "check_in",
    "require_aware",
]
