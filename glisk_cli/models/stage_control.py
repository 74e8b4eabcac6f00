"""stage_controls: each stage's flow control — pause, concurrency limit, rate limit (a token
bucket) and cooldown — read and enforced by every claim (docs/architecture.md, "Flow control in
the claim"). One row per stage, made by the first change of its controls."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Double, String, text
from sqlalchemy.orm import Mapped, mapped_column

from glisk_cli.models.base import Base, DefaultNow, check_in
from glisk_cli.pipeline import StageName


class StageControl(Base):
    __tablename__ = "stage_controls"
    __table_args__ = (
        CheckConstraint(check_in("stage", tuple(StageName)), name="stage"),
        CheckConstraint("concurrency > 0", name="concurrency"),
        CheckConstraint(
            "(rate_jobs IS NULL) = (rate_seconds IS NULL) AND rate_jobs > 0 "
            "AND rate_seconds IN (1, 60)",
            name="rate",
        ),
        CheckConstraint("burst > 0", name="burst"),
    )

    stage: Mapped[str] = mapped_column(String(16), primary_key=True)
    paused_at: Mapped[datetime | None]
    pause_reason: Mapped[str | None]
    paused_until: Mapped[datetime | None]
    concurrency: Mapped[int | None]
    rate_jobs: Mapped[int | None]  # job starts per rate_seconds (1 or 60)
    rate_seconds: Mapped[int | None]
    burst: Mapped[int] = mapped_column(server_default=text("1"))
    bucket: Mapped[float] = mapped_column(Double, server_default=text("0"))  # as of bucket_at
    bucket_at: Mapped[datetime | None] = mapped_column(server_default=text("now()"))
    cooldown_until: Mapped[datetime | None]
    cooldown_reason: Mapped[str | None]
    updated_at: Mapped[DefaultNow]
