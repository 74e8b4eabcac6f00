"""tokens_s0: one row per minted token, moving through the pipeline's state machine.

The statuses and the moves between them come from `glisk_cli.pipeline`: detected → generating →
uploading → ready → revealed; any non-terminal state → failed (docs/architecture.md, "Token
lifecycle"). Every transition stamps updated_at from the database clock and ends the current
lease, and a move to the next stage resets `attempts`, which counts the claims of the current
stage (max_attempts is per stage).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Enum, ForeignKey, Index, String, func, text
from sqlalchemy.orm import Mapped, mapped_column, validates

from glisk_cli.errors import Conflict
from glisk_cli.models.base import Address, Base, DefaultNow, UUIDPrimaryKey, require_aware
from glisk_cli.models.literals import LEASE_COLUMNS, status_in
from glisk_cli.pipeline import (
    REQUIRED_BEFORE,
    STAGE_OF,
    STAGES,
    TERMINAL_STATUSES,
    StageName,
    TokenStatus,
)

token_status_enum = Enum(
    TokenStatus,
    name="token_status",
    values_callable=lambda statuses: [status.value for status in statuses],
    validate_strings=True,
)


class InvalidStateTransition(Conflict):
    """A transition the state machine does not allow from the token's current status."""


# A token nobody holds and no retry delay keeps back.
_FREE = "lease_expires_at IS NULL"
_GENERATION_QUEUE = status_in(STAGES[StageName.GENERATION].claimable)
_UPLOAD_REVEAL_QUEUE = status_in(
    STAGES[StageName.UPLOAD].claimable + STAGES[StageName.REVEAL].claimable
)


class Token(Base):
    __tablename__ = "tokens_s0"
    # Values the database computes in an UPDATE (updated_at = now()) come back in its RETURNING,
    # so a token stays readable after its Unit of Work ends.
    __mapper_args__ = {"eager_defaults": True}  # noqa: RUF012 — read by SQLAlchemy by name
    __table_args__ = (
        # Serves get_by_status and the oldest token per status.
        Index("ix_tokens_s0_status_mint_timestamp", "status", "mint_timestamp"),
        # Serves the counts of `tokens stats` (migration 0004): the status alone, which B-tree
        # deduplication packs into about 12 MB per million tokens, for index-only scans.
        Index("ix_tokens_s0_status", "status"),
        # The claim's two sources (migration 0003): tokens nobody holds, oldest mint first, per
        # stage; and every lease by its expiry, so the expired ones are a short range scan.
        # Leased tokens are in neither queue index, so a claim never walks past work in flight,
        # and finished tokens are in none, so history does not slow the queue down.
        Index(
            "ix_tokens_s0_generation_queue",
            "mint_timestamp",
            postgresql_where=text(f"{_FREE} AND {_GENERATION_QUEUE}"),
        ),
        Index(
            "ix_tokens_s0_upload_reveal_queue",
            "status",
            "mint_timestamp",
            postgresql_where=text(f"{_FREE} AND {_UPLOAD_REVEAL_QUEUE}"),
        ),
        # A retry delay is a lease nobody holds (migration 0005), so this index also finds the
        # tokens whose delay is over; lease_id tells the two apart, and finds a lease's tokens,
        # without reading the table.
        Index(
            "ix_tokens_s0_lease_expiry",
            "status",
            "lease_expires_at",
            postgresql_where=text("lease_expires_at IS NOT NULL"),
            postgresql_include=["lease_id"],
        ),
        # Failed tokens, newest first (a failed token is terminal: updated_at is when it
        # failed), for `glisk top`'s failures (migration 0006); live tokens are not in it.
        Index(
            "ix_tokens_s0_failed_at",
            "updated_at",
            postgresql_where=text(f"status = '{TokenStatus.FAILED.value}'"),
        ),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
    )

    id: Mapped[UUIDPrimaryKey]
    token_id: Mapped[int] = mapped_column(unique=True)
    author_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("authors.id", ondelete="RESTRICT"), index=True
    )
    minter_address: Mapped[Address]
    status: Mapped[TokenStatus] = mapped_column(
        token_status_enum, server_default=TokenStatus.DETECTED.value
    )
    mint_timestamp: Mapped[datetime]
    image_path: Mapped[str | None]
    image_cid: Mapped[str | None]
    metadata_cid: Mapped[str | None]
    reveal_tx_hash: Mapped[str | None] = mapped_column(String(66))
    error_data: Mapped[dict[str, Any] | None]
    claimed_by: Mapped[str | None]
    lease_id: Mapped[uuid.UUID | None]
    lease_expires_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(server_default=text("0"), default=0)
    created_at: Mapped[DefaultNow]
    updated_at: Mapped[DefaultNow]
    # What a job recorded under its lease before a side effect (migration 0008): the next
    # attempt resumes from it; a move to the next stage clears it.
    checkpoint: Mapped[dict[str, Any] | None]

    def __init__(self, **fields: Any) -> None:
        # A new token starts its life detected, with no claims behind it, before any flush.
        fields.setdefault("status", TokenStatus.DETECTED)
        fields.setdefault("attempts", 0)
        super().__init__(**fields)

    @validates("mint_timestamp", "lease_expires_at")
    def _validate_aware(self, key: str, value: datetime | None) -> datetime | None:
        return require_aware(value, key)

    # -- state machine ------------------------------------------------------------------------

    def mark_generating(self) -> None:
        self._move(TokenStatus.GENERATING)

    def mark_uploading(self, image_path: str) -> None:
        self._move(TokenStatus.UPLOADING)
        self.image_path = image_path
        self.attempts = 0
        self.checkpoint = None

    def mark_ready(self, metadata_cid: str, image_cid: str | None = None) -> None:
        self._move(TokenStatus.READY)
        self.metadata_cid = metadata_cid
        if image_cid is not None:
            self.image_cid = image_cid
        self.attempts = 0
        self.checkpoint = None

    def mark_revealed(self, tx_hash: str) -> None:
        self._move(TokenStatus.REVEALED)
        self.reveal_tx_hash = tx_hash
        self.checkpoint = None

    def mark_failed(self, error_dict: dict[str, Any]) -> None:
        """Fail the token with `error_dict`, which names the stage it was failed in (unless it
        says one) and keeps the error recorded before it under `earlier`: nothing is lost."""
        self._refuse_if_terminal("failed")
        error = dict(error_dict)
        if (stage := STAGE_OF.get(self.status)) is not None:
            error.setdefault("stage", stage.name.value)
        if self.error_data:
            error.setdefault("earlier", self.error_data)
        self._finish_transition(TokenStatus.FAILED)
        self.error_data = error

    def _move(self, target: TokenStatus) -> None:
        self._refuse_if_terminal(target.value)
        required = REQUIRED_BEFORE[target]
        if self.status is not required:
            raise InvalidStateTransition(
                f"Cannot mark {target.value} from {self.status.value}. "
                f"Token must be in {required.value} state."
            )
        self._finish_transition(target)

    def _refuse_if_terminal(self, verb: str) -> None:
        if self.status in TERMINAL_STATUSES:
            raise InvalidStateTransition(
                f"Cannot mark {verb} from {self.status.value}. "
                "Token is already in a terminal state."
            )

    def _finish_transition(self, target: TokenStatus) -> None:
        self.status = target
        for column in LEASE_COLUMNS:  # every move ends the lease, as the queue's SQL does
            setattr(self, column, None)
        # The database clock, as for claims: worker machines' clocks never reach the row. The
        # mapper's eager_defaults reads the value back in the UPDATE's RETURNING.
        self.updated_at = func.now()  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Token(token_id={self.token_id!r}, status={self.status!r})"
