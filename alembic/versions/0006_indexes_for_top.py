"""indexes that let `glisk top` read the last hour of work without reading the history

`glisk top` refreshes every few seconds and must cost little on a big pipeline. What it asks of
the history tables is "what finished (or failed) in the last hour, and the newest failures";
before this revision they had only an index on `token_id`, so every refresh would read every
attempt ever recorded. Each index here holds finished attempts only (the running ones have no
completion time), by outcome and time, so the last hour is a short range at the end:

- `image_generation_jobs (status, completed_at)` and `ipfs_upload_records (status, record_type,
  completed_at)`: the attempts that ended, succeeded or failed, by when;
- `reveal_transactions (status, confirmed_at)`: the confirmed reveals, by when;
- `tokens_s0 (updated_at) WHERE status = 'failed'`: the tokens that failed, newest first (a
  failed token is terminal, so its `updated_at` is when it failed). It holds failed tokens only,
  so claims and moves of live tokens never touch it.

Indexes are built inside the migration's transaction, blocking writes to the table for about a
second per million rows.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_image_generation_jobs_finished",
        "image_generation_jobs",
        ["status", "completed_at"],
        postgresql_where=sa.text("completed_at IS NOT NULL"),
    )
    op.create_index(
        "ix_ipfs_upload_records_finished",
        "ipfs_upload_records",
        ["status", "record_type", "completed_at"],
        postgresql_where=sa.text("completed_at IS NOT NULL"),
    )
    op.create_index(
        "ix_reveal_transactions_confirmed",
        "reveal_transactions",
        ["status", "confirmed_at"],
        postgresql_where=sa.text("confirmed_at IS NOT NULL"),
    )
    op.create_index(
        "ix_tokens_s0_failed_at",
        "tokens_s0",
        ["updated_at"],
        postgresql_where=sa.text("status = 'failed'"),
    )


def downgrade() -> None:
    op.drop_index("ix_tokens_s0_failed_at", table_name="tokens_s0")
    op.drop_index("ix_reveal_transactions_confirmed", table_name="reveal_transactions")
    op.drop_index("ix_ipfs_upload_records_finished", table_name="ipfs_upload_records")
    op.drop_index("ix_image_generation_jobs_finished", table_name="image_generation_jobs")
