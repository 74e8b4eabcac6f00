"""mint_events: the on-chain Mint logs glisk has seen, one row per (tx_hash, log_index)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, validates

from glisk_cli.models.base import Base, DefaultNow, TxHash, UUIDPrimaryKey, require_aware


class MintEvent(Base):
    __tablename__ = "mint_events"
    __table_args__ = (
        # A log is identified by its transaction and position: recording it twice is a no-op.
        UniqueConstraint("tx_hash", "log_index"),
        Index("ix_mint_events_block_number", "block_number"),
    )

    id: Mapped[UUIDPrimaryKey]
    tx_hash: Mapped[TxHash]
    log_index: Mapped[int]
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_timestamp: Mapped[datetime]
    token_id: Mapped[int]
    detected_at: Mapped[DefaultNow]

    @validates("block_timestamp")
    def _validate_aware(self, key: str, value: datetime) -> datetime | None:
        return require_aware(value, key)
