"""DDL that takes a table's exclusive lock only briefly, for migrations of tables workers write.

Adding or dropping a nullable column without a default changes the catalog only, but it needs the
table's exclusive lock for that moment, which waits for the transactions using the table and holds
up those behind it. So the lock is tried with a short lock_timeout, a few times, each in a
savepoint of its own, and running workers wait at most that long (docs/architecture.md,
"Migrations that are safe to start anywhere").
"""

from __future__ import annotations

import time

from alembic import context, op
from sqlalchemy.exc import OperationalError

TRIES = 20
LOCK_TIMEOUT = "200ms"


def briefly(statement: str) -> None:
    """Run `statement` (in a migration), whose table lock must never hold workers up for long."""
    if context.is_offline_mode():  # `glisk db upgrade --sql`: the statement, for a person to run
        op.execute(statement)
        return
    connection = op.get_bind()
    before = connection.exec_driver_sql("SHOW lock_timeout").scalar_one()
    for attempt in range(1, TRIES + 1):
        try:
            with connection.begin_nested():
                connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                connection.exec_driver_sql(statement)
                connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{before}'")
            return
        except OperationalError as error:
            if "lock timeout" not in str(error) or attempt == TRIES:
                raise
            time.sleep(0.05 * attempt)
