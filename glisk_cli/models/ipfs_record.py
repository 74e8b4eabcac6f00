"""ipfs_upload_records: each upload of a token's image or metadata to IPFS."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from glisk_cli.models.base import Base, DefaultNow, UUIDPrimaryKey, check_in

IPFS_RECORD_TYPES = ("image", "metadata")
IPFS_UPLOAD_STATUSES = ("pending", "uploading", "succeeded", "failed")


class IPFSUploadRecord(Base):
    __tablename__ = "ipfs_upload_records"
    __table_args__ = (
        CheckConstraint(check_in("record_type", IPFS_RECORD_TYPES), name="record_type"),
        CheckConstraint(check_in("status", IPFS_UPLOAD_STATUSES), name="status"),
        # Finished uploads by outcome, kind and time: `glisk top`'s last hour (migration 0006).
        Index(
            "ix_ipfs_upload_records_finished",
            "status",
            "record_type",
            "completed_at",
            postgresql_where=text("completed_at IS NOT NULL"),
        ),
    )

    id: Mapped[UUIDPrimaryKey]
    token_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tokens_s0.id", ondelete="CASCADE"), index=True
    )
    record_type: Mapped[str] = mapped_column(String(20))
    cid: Mapped[str | None]
    status: Mapped[str] = mapped_column(String(20), server_default=text("'pending'"))
    retry_count: Mapped[int] = mapped_column(server_default=text("0"), default=0)
    error_data: Mapped[dict[str, Any] | None]
    created_at: Mapped[DefaultNow]
    completed_at: Mapped[datetime | None]
