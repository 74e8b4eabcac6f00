"""system_state: small named JSON values the pipeline keeps between runs (cursors, flags)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from glisk_cli.models.base import Base, DefaultNow


class SystemState(Base):
    __tablename__ = "system_state"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    # JSON null is a value like any other here: Python None is stored as JSON `null`.
    state_value: Mapped[Any]
    updated_at: Mapped[DefaultNow]
