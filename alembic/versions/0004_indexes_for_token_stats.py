"""an index that lets `tokens stats` count a million tokens without reading the table

`tokens stats` counts tokens per status exactly. Read through `ix_tokens_s0_status_mint_timestamp`
or the table itself, that is a pass over every row's worth of wide data; `ix_tokens_s0_status`
holds the status alone, and B-tree deduplication stores each status once per page of row
pointers, so the index of a million tokens is about 12 MB (a sixth of the two-column index),
which an index-only scan (in parallel) counts in about a tenth of a second. (Rows on pages
changed since the last vacuum are
still visited; tokens_s0 is vacuumed after 2 % of it changes, see 0001.) The price is one more
index entry per claim and transition, which cannot be HOT updates anyway.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 13:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_tokens_s0_status", "tokens_s0", ["status"])


def downgrade() -> None:
    op.drop_index("ix_tokens_s0_status", table_name="tokens_s0")
