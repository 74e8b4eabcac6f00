"""notify listeners when tokens become claimable

`glisk tokens claim --wait` LISTENs on the channel `glisk_claimable` instead of polling. These
statement-level triggers send one notification per statement that leaves at least one token
claimable without a lease (a new detected token, a token moved on to uploading or ready, a
generating token released back to detected); PostgreSQL delivers it at commit. Claims themselves
write a lease, so they do not wake anyone. A lease running out is not an event: waiters poll too.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 10:55:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION glisk_notify_claimable() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF EXISTS (
                SELECT 1 FROM changed_tokens
                WHERE claimed_by IS NULL AND status IN ('detected', 'uploading', 'ready')
            ) THEN
                PERFORM pg_notify('glisk_claimable', '');
            END IF;
            RETURN NULL;
        END
        $$
        """
    )
    # Transition tables allow one event per trigger, hence two triggers sharing the function.
    for event in ("INSERT", "UPDATE"):
        op.execute(
            f"CREATE TRIGGER tokens_s0_notify_claimable_{event.lower()} AFTER {event} ON tokens_s0 "
            "REFERENCING NEW TABLE AS changed_tokens "
            "FOR EACH STATEMENT EXECUTE FUNCTION glisk_notify_claimable()"
        )


def downgrade() -> None:
    for event in ("insert", "update"):
        op.execute(f"DROP TRIGGER tokens_s0_notify_claimable_{event} ON tokens_s0")
    op.execute("DROP FUNCTION glisk_notify_claimable()")
