"""claim indexes that leave leased tokens out

A claim wants, per stage, the oldest tokens that no live lease holds. 0001's generation index
(`WHERE status IN ('detected', 'generating')`) kept every leased generating token too, so while
workers held many leases each claim walked past all of them before finding free work: draining
a backlog took time quadratic in its size. Whether a lease is live depends on the clock, which
no index can hold; whether a token has a lease at all it can. So a claim now reads two small,
ordered sources:

- tokens whose lease has run out: `ix_tokens_s0_lease_expiry`, every lease by status and expiry,
  so `lease_expires_at < now()` reads only the expired ones (normally none). The status column
  lets this one index answer the whole condition;
- then tokens with no lease, oldest mint first: `ix_tokens_s0_generation_queue` (detected, and
  generating with no holder) and `ix_tokens_s0_upload_reveal_queue` (uploading, ready).

A claimed token leaves the queue indexes and enters the lease index; a transition ends the lease
and puts it back into a queue index, for the next stage. Finished tokens are in none.

The indexes are built with plain CREATE INDEX inside the migration's transaction, which blocks
writes to tokens_s0 while each is built (about a second per million tokens on a small machine).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 13:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_tokens_s0_generation_queue", table_name="tokens_s0")
    op.create_index(
        "ix_tokens_s0_generation_queue",
        "tokens_s0",
        ["mint_timestamp"],
        postgresql_where=sa.text(
            "lease_expires_at IS NULL AND status IN ('detected', 'generating')"
        ),
    )
    op.create_index(
        "ix_tokens_s0_upload_reveal_queue",
        "tokens_s0",
        ["status", "mint_timestamp"],
        postgresql_where=sa.text("lease_expires_at IS NULL AND status IN ('uploading', 'ready')"),
    )
    op.create_index(
        "ix_tokens_s0_lease_expiry",
        "tokens_s0",
        ["status", "lease_expires_at"],
        postgresql_where=sa.text("lease_expires_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_tokens_s0_lease_expiry", table_name="tokens_s0")
    op.drop_index("ix_tokens_s0_upload_reveal_queue", table_name="tokens_s0")
    op.drop_index("ix_tokens_s0_generation_queue", table_name="tokens_s0")
    op.create_index(
        "ix_tokens_s0_generation_queue",
        "tokens_s0",
        ["mint_timestamp"],
        postgresql_where=sa.text("status IN ('detected', 'generating')"),
    )
