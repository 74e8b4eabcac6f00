"""an index on the tokens each reveal transaction carries, so a token's reveals are index reads

A token's story (`glisk tokens show`, the web view's token page) lists its reveal transactions:
the rows of `reveal_transactions` whose `token_ids` array holds it. Without an index that is a
read of every reveal ever sent; a GIN index on the array answers `token_ids @> ARRAY[id]` from
the index alone, whatever history has piled up.

The index is built inside the migration's transaction, blocking writes to reveal_transactions
(written once per reveal batch) for a moment.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 13:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_reveal_transactions_token_ids",
        "reveal_transactions",
        ["token_ids"],
        postgresql_using="gin",
    )


def downgrade() -> None:
    op.drop_index("ix_reveal_transactions_token_ids", table_name="reveal_transactions")
