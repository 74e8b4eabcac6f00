"""fenced leases and retry backoff

- `lease_id`: every claim writes a new one (one per claim statement), and renewing, advancing or
  releasing a token needs the lease id it was claimed under, so a worker whose token another
  claim took over is refused whatever its name. A partial index finds a lease's tokens
  (`glisk tokens renew --lease-id`); it holds only leased tokens.
- `available_at`: a token released after a failed attempt may not be claimed before this time.
  Such tokens leave the queue indexes (which now also require `available_at IS NULL`) for
  `ix_tokens_s0_retry_due`, by status and time, so a claim finds the due ones with a short
  range scan and never walks past tokens still waiting out their delay.

Indexes are rebuilt inside the migration's transaction, blocking writes to tokens_s0 for about a
second per million tokens.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 03:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GENERATION = "status IN ('detected', 'generating')"
UPLOAD_REVEAL = "status IN ('uploading', 'ready')"


def _queue_indexes(free: str) -> None:
    op.create_index(
        "ix_tokens_s0_generation_queue",
        "tokens_s0",
        ["mint_timestamp"],
        postgresql_where=sa.text(f"{free} AND {GENERATION}"),
    )
    op.create_index(
        "ix_tokens_s0_upload_reveal_queue",
        "tokens_s0",
        ["status", "mint_timestamp"],
        postgresql_where=sa.text(f"{free} AND {UPLOAD_REVEAL}"),
    )


def _drop_queue_indexes() -> None:
    op.drop_index("ix_tokens_s0_upload_reveal_queue", table_name="tokens_s0")
    op.drop_index("ix_tokens_s0_generation_queue", table_name="tokens_s0")


def upgrade() -> None:
    op.add_column("tokens_s0", sa.Column("lease_id", sa.UUID(), nullable=True))
    op.add_column(
        "tokens_s0", sa.Column("available_at", sa.DateTime(timezone=True), nullable=True)
    )
    _drop_queue_indexes()
    _queue_indexes("lease_expires_at IS NULL AND available_at IS NULL")
    op.create_index(
        "ix_tokens_s0_retry_due",
        "tokens_s0",
        ["status", "available_at"],
        postgresql_where=sa.text("available_at IS NOT NULL"),
    )
    op.create_index(
        "ix_tokens_s0_lease_id",
        "tokens_s0",
        ["lease_id"],
        postgresql_where=sa.text("lease_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_tokens_s0_lease_id", table_name="tokens_s0")
    op.drop_index("ix_tokens_s0_retry_due", table_name="tokens_s0")
    _drop_queue_indexes()
    _queue_indexes("lease_expires_at IS NULL")
    op.drop_column("tokens_s0", "available_at")
    op.drop_column("tokens_s0", "lease_id")
