"""Alembic driven from code: the Config, the migration lock, and upgrade/downgrade/current/history.

Migrations are safe to start from several places at once (a deploy's one-shot job, an operator,
a CI step): each run holds a session-level PostgreSQL advisory lock for its whole duration, polled
with a timeout, and Alembic reads the current revision only once the lock is held — so the
schema is built exactly once and a late runner finds nothing left to do. DDL runs with a
lock_timeout, so a migration queued behind a long transaction fails fast instead of stalling every
query that queues up behind it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext, MigrationInfo
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine, text

from glisk_cli.db.handle import reflecting
from glisk_cli.db.translate import translate_errors
from glisk_cli.errors import Conflict, InvalidInput

# pg_advisory_lock key: any constant bigint other software on the database is unlikely to use.
MIGRATION_LOCK_KEY = 0x676C69736B  # "glisk"
MIGRATION_LOCK_WAIT_S = 120.0
DDL_LOCK_TIMEOUT = "5s"
DDL_STATEMENT_TIMEOUT = "10min"


def script_location() -> Path:
    """The migration scripts: inside the installed wheel, or the repository's alembic/."""
    packaged = Path(__file__).with_name("_alembic")
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "alembic"


def alembic_config(connection: Connection | None = None, stdout: TextIO | None = None) -> Config:
    config = Config(stdout=stdout) if stdout else Config()
    config.set_main_option("script_location", str(script_location()))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    heads = script_directory().get_heads()
    if len(heads) != 1:
        raise Conflict(f"the migration scripts have {len(heads)} heads: {', '.join(heads)}")
    return heads[0]


def current_revisions(connection: Connection) -> tuple[str, ...]:
    """Revisions recorded in the database's alembic_version table (empty when not migrated)."""
    return tuple(MigrationContext.configure(connection).get_current_heads())


@dataclass
class MigrationStep:
    revision: str
    message: str
    direction: str  # "upgrade" or "downgrade"


@dataclass
class MigrationRun:
    """What one upgrade or downgrade did."""

    before: tuple[str, ...]
    after: tuple[str, ...] = ()
    steps: list[MigrationStep] = field(default_factory=list)
    seconds: float = 0.0


def upgrade(engine: Engine, target: str = "head") -> MigrationRun:
    return _migrate(engine, "upgrade", target)


def downgrade(engine: Engine, target: str) -> MigrationRun:
    return _migrate(engine, "downgrade", target)


def upgrade_sql(target: str, out: TextIO) -> None:
    """Write the SQL of an upgrade from an empty database to `target`, touching no database."""
    target = "head" if target in ("head", "heads") else target
    with _alembic_errors():
        command.upgrade(alembic_config(stdout=out), target, sql=True)


def history() -> list[dict[str, Any]]:
    """Every migration, newest first."""
    script = script_directory()
    heads = set(script.get_heads())
    return [
        {
            "revision": revision.revision,
            "down_revision": revision.down_revision,
            "message": revision.doc,
            "is_head": revision.revision in heads,
        }
        for revision in script.walk_revisions()
    ]


def _migrate(engine: Engine, direction: str, target: str) -> MigrationRun:
    started = time.monotonic()
    with engine.connect() as connection, _migration_lock(connection):
        reflecting(connection)  # Alembic's enum comparison reflects in the default schema
        run = MigrationRun(before=current_revisions(connection))
        connection.commit()  # Alembic opens one transaction per migration itself

        def record(*, step: MigrationInfo, **_: Any) -> None:
            doc = getattr(step.up_revision, "doc", None) or ""
            run.steps.append(MigrationStep(step.up_revision_id or "", doc, direction))

        config = alembic_config(connection)
        config.attributes["on_version_apply"] = record
        # A DDL lock wait past lock_timeout is a DatabaseTimeout (exit 3), like any other.
        with _alembic_errors(), translate_errors():
            getattr(command, direction)(config, target)
        run.after = current_revisions(connection)
        connection.commit()
    run.seconds = time.monotonic() - started
    return run


@contextmanager
def _migration_lock(connection: Connection) -> Iterator[None]:
    """Hold the migration advisory lock (session level) and DDL timeouts for the block."""
    deadline = time.monotonic() + MIGRATION_LOCK_WAIT_S
    try_lock = text("SELECT pg_try_advisory_lock(:key)")
    while not connection.execute(try_lock, {"key": MIGRATION_LOCK_KEY}).scalar_one():
        connection.commit()
        if time.monotonic() > deadline:
            raise Conflict(
                f"another migration has held the lock for over {MIGRATION_LOCK_WAIT_S:.0f}s",
                hint="wait for it to finish, then retry",
            )
        time.sleep(0.1)
    connection.exec_driver_sql(f"SET lock_timeout = '{DDL_LOCK_TIMEOUT}'")
    connection.exec_driver_sql(f"SET statement_timeout = '{DDL_STATEMENT_TIMEOUT}'")
    connection.commit()
    try:
        yield
    finally:
        if not connection.closed and not connection.invalidated:
            connection.rollback()
            connection.exec_driver_sql("RESET lock_timeout")
            connection.exec_driver_sql("RESET statement_timeout")
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
            connection.commit()


@contextmanager
def _alembic_errors() -> Iterator[None]:
    """Alembic's own "no such revision" and the like are the user's input errors (exit 2)."""
    try:
        yield
    except CommandError as error:
        raise InvalidInput(str(error).splitlines()[0]) from None
