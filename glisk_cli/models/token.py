"""tokens_s0: one row per minted token, moving through the pipeline's state machine (DESIGN §3).

detected → generating → uploading → ready → revealed; any non-terminal state → failed.
Every transition stamps updated_at and ends the current lease, and a move to the next stage
resets `attempts`, which counts the claims of the current stage (max_attempts is per stage).
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import CheckConstraint, Enum, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column, validates

from glisk_cli.errors import Conflict
from glisk_cli.models.base import Address, Base, DefaultNow, UUIDPrimaryKey, require_aware


class TokenStatus(enum.StrEnum):
    """Pipeline states, in pipeline order (the order of the PostgreSQL enum, too)."""

    DETECTED = "detected"
    GENERATING = "generating"
    UPLOADING = "uploading"
    READY = "ready"
    REVEALED = "revealed"
    FAILED = "failed"


TERMINAL_STATUSES = frozenset({TokenStatus.REVEALED, TokenStatus.FAILED})

token_status_enum = Enum(
    TokenStatus,
    name="token_status",
    values_callable=lambda statuses: [status.value for status in statuses],
    validate_strings=True,
)


class InvalidStateTransition(Conflict):
    """A transition the state machine does not allow from the token's current status."""


class Token(Base):
    __tablename__ = "tokens_s0"
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
            postgresql_where=text(
                "lease_expires_at IS NULL AND status IN ('detected', 'generating')"
            ),
        ),
        Index(
            "ix_tokens_s0_upload_reveal_queue",
            "status",
            "mint_timestamp",
            postgresql_where=text("lease_expires_at IS NULL AND status IN ('uploading', 'ready')"),
        ),
        Index(
            "ix_tokens_s0_lease_expiry",
            "status",
            "lease_expires_at",
            postgresql_where=text("lease_expires_at IS NOT NULL"),
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
    lease_expires_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(server_default=text("0"), default=0)
    created_at: Mapped[DefaultNow]
    updated_at: Mapped[DefaultNow]

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
        self._move(TokenStatus.GENERATING, TokenStatus.DETECTED, "generating")

    def mark_uploading(self, image_path: str) -> None:
        self._move(TokenStatus.UPLOADING, TokenStatus.GENERATING, "uploading")
        self.image_path = image_path
        self.attempts = 0

    def mark_ready(self, metadata_cid: str) -> None:
        self._move(TokenStatus.READY, TokenStatus.UPLOADING, "ready")
        self.metadata_cid = metadata_cid
        self.attempts = 0

    def mark_revealed(self, tx_hash: str) -> None:
        self._move(TokenStatus.REVEALED, TokenStatus.READY, "revealed")
        self.reveal_tx_hash = tx_hash

    def mark_failed(self, error_dict: dict[str, Any]) -> None:
        if self.status in TERMINAL_STATUSES:
            raise InvalidStateTransition(
                f"Cannot mark failed from {self.status.value}. "
                "Token is already in a terminal state."
            )
        self._finish_transition(TokenStatus.FAILED)
        self.error_data = error_dict

    def _move(self, target: TokenStatus, required: TokenStatus, verb: str) -> None:
        if self.status in TERMINAL_STATUSES:
            raise InvalidStateTransition(
                f"Cannot mark {verb} from {self.status.value}. "
                "Token is already in a terminal state."
            )
        if self.status is not required:
            raise InvalidStateTransition(
                f"Cannot mark {verb} from {self.status.value}. "
                f"Token must be in {required.value} state."
            )
        self._finish_transition(target)

    def _finish_transition(self, target: TokenStatus) -> None:
        self.status = target
        self.claimed_by = None
        self.lease_expires_at = None
        self.updated_at = datetime.now(UTC)

    def __repr__(self) -> str:
        return f"Token(token_id={self.token_id!r}, status={self.status!r})"
