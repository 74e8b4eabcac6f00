"""token checkpoints: what a job recorded, under its lease, before a side effect

`tokens_s0.checkpoint` holds the latest checkpoint a job wrote for the token (`glisk tokens
checkpoint`, `uow.tokens.checkpoint`, or through `glisk work`): the next attempt reads it on
stdin and resumes instead of repeating the side effect. A move to the next stage clears it; the
history tables keep what each attempt recorded.

Adding a nullable column without a default changes the catalog only, but it needs the table's
exclusive lock for that moment: `brief_ddl.briefly` takes it so that running workers wait at most
a few hundred milliseconds.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 11:30:00
"""

from collections.abc import Sequence

from glisk_cli.brief_ddl import briefly

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    briefly("ALTER TABLE tokens_s0 ADD COLUMN checkpoint jsonb")


def downgrade() -> None:
    briefly("ALTER TABLE tokens_s0 DROP COLUMN checkpoint")
