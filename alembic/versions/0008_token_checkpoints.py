"""token checkpoints: what a job recorded, under its lease, before a side effect

`tokens_s0.checkpoint` holds the latest checkpoint a job wrote for the token (`glisk tokens
checkpoint`, `uow.tokens.checkpoint`, or through `glisk work`): the next attempt reads it on
stdin and resumes instead of repeating the side effect. A move to the next stage clears it; the
history tables keep what each attempt recorded.

Adding a nullable column without a default changes the catalog only, but it needs the table's
exclusive lock for that moment, which waits for the transactions using the table and holds up
those behind it. So the lock is tried with a short lock_timeout, a few times, each in a savepoint
of its own, and running workers wait at most that long.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 11:30:00
"""

import time
from collections.abc import Sequence

from alembic import context, op
from sqlalchemy.exc import OperationalError

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TRIES = 20
_LOCK_TIMEOUT = "200ms"


def _briefly(statement: str) -> None:
    """Run `statement`, whose lock on tokens_s0 must never hold workers up for long."""
    if context.is_offline_mode():  # `glisk db upgrade --sql`: the statement, for a person to run
        op.execute(statement)
        return
    connection = op.get_bind()
    before = connection.exec_driver_sql("SHOW lock_timeout").scalar_one()
    for attempt in range(1, _TRIES + 1):
        try:
            with connection.begin_nested():
                connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{_LOCK_TIMEOUT}'")
                connection.exec_driver_sql(statement)
                connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{before}'")
            return
        except OperationalError as error:
            if "lock timeout" not in str(error) or attempt == _TRIES:
                raise
            time.sleep(0.05 * attempt)


def upgrade() -> None:
    _briefly("ALTER TABLE tokens_s0 ADD COLUMN checkpoint jsonb")


def downgrade() -> None:
    _briefly("ALTER TABLE tokens_s0 DROP COLUMN checkpoint")
