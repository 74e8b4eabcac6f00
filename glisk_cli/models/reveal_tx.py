"""reveal_transactions: on-chain transactions that reveal a batch of ready tokens."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Index, String, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Mapped, mapped_column

from glisk_cli.models.base import Base, DefaultNow, UUIDPrimaryKey, check_in

REVEAL_TX_STATUSES = ("pending", "sent", "confirmed", "failed")


class RevealTransaction(Base):
    __tablename__ = "reveal_transactions"
    __table_args__ = (
        CheckConstraint(check_in("status", REVEAL_TX_STATUSES), name="status"),
        Index("ix_reveal_transactions_status", "status"),
        # Confirmed reveals by time: `glisk top`'s last hour (migration 0006).
        Index(
            "ix_reveal_transactions_confirmed",
            "status",
            "confirmed_at",
            postgresql_where=text("confirmed_at IS NOT NULL"),
        ),
        # The reveals that carry a token: a token's story (migration 0010).
        Index("ix_reveal_transactions_token_ids", "token_ids", postgresql_using="gin"),
    )

    id: Mapped[UUIDPrimaryKey]
    token_ids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(PG_UUID(as_uuid=True)))
    # Unique when set; PostgreSQL lets any number of rows leave it NULL (not yet sent).
    tx_hash: Mapped[str | None] = mapped_column(String(66), unique=True)
    block_number: Mapped[int | None] = mapped_column(BigInteger)
    gas_price_gwei: Mapped[Decimal | None]
    status: Mapped[str] = mapped_column(String(20), server_default=text("'pending'"))
    error_data: Mapped[dict[str, Any] | None]  # why a failed attempt failed (migration 0009)
    created_at: Mapped[DefaultNow]
    confirmed_at: Mapped[datetime | None]
