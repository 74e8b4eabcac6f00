"""fenced leases

- `lease_id`: every claim writes a new one (one per claim statement), and renewing, advancing or
  releasing a token needs the lease id it was claimed under, so a worker whose token another
  claim took over is refused whatever its name.
- A failed attempt's retry delay is a lease nobody holds: `lease_expires_at` set, `lease_id` and
  `claimed_by` empty. Such a token is out of the queue indexes, and once its time has come the
  claim finds it in `ix_tokens_s0_lease_expiry` with the leases that ran out — no third source
  for the claim to read. The lease index now carries `lease_id`, so `tokens stats` tells live
  leases from retry delays, and `glisk tokens renew --lease-id` finds a lease's tokens, from the
  index alone. (An index of its own on `lease_id` would cost every claim one more index entry
  per token.)

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


def _lease_expiry_index(include: list[str]) -> None:
    op.create_index(
        "ix_tokens_s0_lease_expiry",
        "tokens_s0",
        ["status", "lease_expires_at"],
        postgresql_where=sa.text("lease_expires_at IS NOT NULL"),
        postgresql_include=include,
    )


def upgrade() -> None:
    op.add_column("tokens_s0", sa.Column("lease_id", sa.UUID(), nullable=True))
    op.drop_index("ix_tokens_s0_lease_expiry", table_name="tokens_s0")
    _lease_expiry_index(["lease_id"])


def downgrade() -> None:
    op.drop_index("ix_tokens_s0_lease_expiry", table_name="tokens_s0")
    _lease_expiry_index([])
    op.drop_column("tokens_s0", "lease_id")
