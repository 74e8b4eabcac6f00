"""Alembic environment for glisk: runs on the Connection glisk hands over, never on a URL.

glisk builds the Alembic Config in code (glisk_cli/migrations.py) and passes its own connection
in `config.attributes["connection"]`, already holding the migration advisory lock and the DDL
timeouts. There is no alembic.ini and no `fileConfig`, so glisk's logging stays as configured.
"""

from __future__ import annotations

import alembic_postgresql_enum  # noqa: F401 — registers enum comparison and operations
from alembic import context

from glisk_cli.models import Base

target_metadata = Base.metadata
SETTINGS = {
    "target_metadata": target_metadata,
    "compare_type": True,
    "compare_server_default": False,
}


def run_offline() -> None:
    """`glisk db upgrade --sql`: print the SQL instead of touching a database."""
    context.configure(
        dialect_name="postgresql",
        literal_binds=True,
        transaction_per_migration=True,
        **SETTINGS,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    attributes = context.config.attributes
    # One transaction per migration, so a failure leaves the database at the last good revision.
    context.configure(
        connection=attributes["connection"],
        transaction_per_migration=True,
        on_version_apply=attributes.get("on_version_apply", ()),
        **SETTINGS,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
