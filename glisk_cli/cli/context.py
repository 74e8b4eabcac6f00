"""What a running command needs, loaded once per process and only when asked for.

Nothing here runs at import time: `glisk --help` must not pay for settings, logging or the
database driver. The first command that calls `settings()` validates the configuration and
configures logging; `database()` builds the one database handle from those settings (DATABASE_URL
or the embedded server), exactly as a worker's `Database.from_settings()` does.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy import Engine

    from glisk_cli.config import Settings
    from glisk_cli.db import Database
    from glisk_cli.uow import UnitOfWork

debug = False  # set by the global --debug option before any command runs


@cache
def settings() -> Settings:
    from glisk_cli.config import load_settings
    from glisk_cli.logging import configure_logging

    loaded = load_settings()
    configure_logging(
        "DEBUG" if debug else loaded.log_level, json_lines=loaded.app_env == "production"
    )
    return loaded


@cache
def database() -> Database:
    from glisk_cli.db import Database

    return Database.from_settings(settings())


def engine() -> Engine:
    return database().engine


def session_engine(purpose: str) -> Engine:
    """The engine for work that needs a session (exit 4 behind a transaction pooler without
    DATABASE_DIRECT_URL)."""
    return database().session_engine(purpose)


@cache
def uow_factory() -> Callable[[], UnitOfWork]:
    """Units of Work on the configured database. The first one checks that the schema is at head
    in its own first statement (exit 7 when not), which costs no transaction of its own."""
    from glisk_cli.models import SCHEMA_REVISION
    from glisk_cli.uow import create_uow_factory

    return create_uow_factory(database(), require_revision=SCHEMA_REVISION)


def unit_of_work() -> UnitOfWork:
    """A new Unit of Work (one transaction): `with context.unit_of_work() as uow: …`."""
    return uow_factory()()


@cache
def schema_revision() -> str | None:
    """The revision the database is at (None when never migrated)."""
    from glisk_cli.db.handle import recorded_revisions

    return ", ".join(recorded_revisions(engine())) or None


def reset() -> None:
    """Forget loaded settings and close the connection pool, so the next command starts afresh
    (for callers that run several commands in one process, such as tests)."""
    if database.cache_info().currsize:
        database().dispose()
    for cached in (settings, database, schema_revision, uow_factory):
        cached.cache_clear()
