"""Statements sent straight through a pooled connection's psycopg connection, with no
SQLAlchemy Connection or result processing in between (docs/architecture.md, "The workers' path
below the ORM"), and what their errors mean to glisk."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import psycopg
from sqlalchemy import Engine
from sqlalchemy.pool import PoolProxiedConnection

from glisk_cli.db.planner import PlannerSettings
from glisk_cli.db.translate import translate_driver_error

Rows = Sequence[tuple[Any, ...]]


def driver_rows(
    pooled: PoolProxiedConnection,
    engine: Engine,
    sql: str,
    params: Mapping[str, Any],
    planner: PlannerSettings | None = None,
) -> Rows:
    """The rows of `sql` run on `pooled`'s psycopg connection, errors translated; planned under
    `planner`'s settings when given, which are sent with it in one round trip."""
    connection = driver(pooled)
    try:
        with connection.cursor() as cursor:
            if planner is None:
                cursor.execute(sql, params)  # type: ignore[arg-type]
            else:
                _planned(connection, cursor, sql, params, planner)
            return cursor.fetchall()
    except psycopg.Error as error:
        raise driver_error(pooled, engine, error, sql) from error


def _planned(
    connection: psycopg.Connection,
    cursor: psycopg.Cursor,
    sql: str,
    params: Mapping[str, Any],
    planner: PlannerSettings,
) -> None:
    """Send `planner`'s settings, `sql` and their reset in one round trip (pipeline mode)."""
    failed: psycopg.Error | None = None
    try:
        with connection.pipeline():
            try:
                connection.execute(planner.before)  # type: ignore[arg-type]
                cursor.execute(sql, params)  # type: ignore[arg-type]
                connection.execute(planner.after)  # type: ignore[arg-type]
            except psycopg.Error as error:
                # A failure may surface while the pipeline is still being filled; the pipeline's
                # exit then meets it again, and would log a warning (on glisk's stderr) had it
                # left the block with an exception.
                failed = error
    except psycopg.Error as error:
        failed = failed or error
    if failed is not None:
        raise failed


def driver_error(
    pooled: PoolProxiedConnection, engine: Engine, error: psycopg.Error, sql: str | None = None
) -> Exception:
    """What `error`, raised by `pooled`'s psycopg connection, means to glisk. A connection it
    left broken is invalidated first, so that the pool never hands it out again."""
    connection = driver(pooled)
    lost = connection.closed or connection.broken
    if lost:
        pooled.invalidate()
    role = None if lost else connection.info.user
    return translate_driver_error(engine, error, lost=lost, statement=sql, role=role)


def driver(pooled: PoolProxiedConnection) -> psycopg.Connection:
    return cast(psycopg.Connection, pooled.dbapi_connection)
