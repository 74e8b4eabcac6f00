"""reveal errors: why a reveal attempt failed, per token

A failed reveal row (`reveal_transactions.status = 'failed'`) says why in `error_data`, as the
other history tables do: the job's words for the tokens it failed ("nonce too low"), so `glisk
tokens show` tells each failed reveal apart. The column is added with a brief lock
(`brief_ddl.briefly`): running workers wait at most a few hundred milliseconds.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 13:30:00
"""

from collections.abc import Sequence

from glisk_cli.brief_ddl import briefly

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    briefly("ALTER TABLE reveal_transactions ADD COLUMN error_data jsonb")


def downgrade() -> None:
    briefly("ALTER TABLE reveal_transactions DROP COLUMN error_data")
