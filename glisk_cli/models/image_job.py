"""image_generation_jobs: each attempt to generate a token's image with an external service."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from glisk_cli.models.base import Base, DefaultNow, UUIDPrimaryKey, check_in

IMAGE_JOB_STATUSES = ("pending", "running", "succeeded", "failed")


class ImageGenerationJob(Base):
    __tablename__ = "image_generation_jobs"
    __table_args__ = (
        CheckConstraint(check_in("status", IMAGE_JOB_STATUSES), name="status"),
        # Finished attempts by outcome and time: `glisk top`'s last hour (migration 0006).
        Index(
            "ix_image_generation_jobs_finished",
            "status",
            "completed_at",
            postgresql_where=text("completed_at IS NOT NULL"),
        ),
    )

    id: Mapped[UUIDPrimaryKey]
    token_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tokens_s0.id", ondelete="CASCADE"), index=True
    )
    service: Mapped[str] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(20), server_default=text("'pending'"))
    external_job_id: Mapped[str | None] = mapped_column(String(255))
    retry_count: Mapped[int] = mapped_column(server_default=text("0"), default=0)
    error_data: Mapped[dict[str, Any] | None]
    created_at: Mapped[DefaultNow]
    completed_at: Mapped[datetime | None]
