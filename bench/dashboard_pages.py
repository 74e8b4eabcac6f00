"""What each page of `glisk serve --dashboard` costs on a million tokens: the reader behind the
page (`cli/dashboard_reads.py`, wall time, round trips included) and the database's own time for
every statement it sent (planning + execution, from EXPLAIN ANALYZE of each statement recorded
as sent, with its parameters), as medians.

    uv run python bench/dashboard_pages.py [--runs 21] [--tokens 1000000]

The pipeline is `bench/top_refresh.py`'s busy one (mid-mint, 70 % revealed, 100 workers, an
attempt row per finished token); the pages are the pipeline and four tokens: revealed (a full
story), held by a worker, failed, and waiting deep in the generation queue (the tokens ahead of
it counted up to the cap).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from scratch import conninfo, machine, scratch_database
from sqlalchemy import event
from top_refresh import BUSY, BUSY_STATUS, seed

from glisk_cli.cli.dashboard_reads import pipeline_reader, token_reader
from glisk_cli.db import Database, transaction
from glisk_cli.db.planner import PlannerSettings
from glisk_cli.logging import configure_logging
from glisk_cli.uow import create_uow_factory

LEASE = timedelta(minutes=15)
GOAL_MS = 50.0
Sent = list[tuple[str, Any, PlannerSettings | None]]  # SQL, parameters, planner settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--tokens", type=int, default=1_000_000)
    parser.add_argument("--database-url", help="a server to use instead of an embedded one")
    args = parser.parse_args()
    configure_logging("WARNING")
    with scratch_database(args.database_url, "glisk_bench_dashboard") as url:
        started = time.perf_counter()
        seed(url, args.tokens, BUSY_STATUS, BUSY)
        print(
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine()}, "
            f"load {os.getloadavg()[0]:.1f}, {args.tokens:,} tokens seeded in "
            f"{time.perf_counter() - started:.0f}s, {args.runs} runs per page"
        )
        database = Database(url, pool_size=1)
        units = create_uow_factory(database)
        pipeline = pipeline_reader(units, lambda: "head", url="bench", lease=LEASE, interval=3)
        token = token_reader(units)
        pages: dict[str, Callable[[], object]] = {
            "pipeline": pipeline,
            "token revealed (1)": lambda: token(1),
            "token held (117)": lambda: token(117),
            "token failed (71)": lambda: token(71),
            f"token queued ({args.tokens - 3})": lambda: token(args.tokens - 3),
        }
        print(f"{'page':<24} {'reader ms':>10} {'db ms':>8} {'db min/max':>14} {'stmts':>6}  goal")
        with psycopg.connect(conninfo(url), autocommit=True) as conn:
            for name, read in pages.items():
                library, server, count = _measure(database, read, conn, args.runs)
                db = statistics.median(server)
                print(
                    f"{name:<24} {statistics.median(library):>10.1f} {db:>8.1f} "
                    f"{min(server):>6.1f}/{max(server):<7.1f} {count:>6}  "
                    f"{'met' if db <= GOAL_MS else 'MISSED'} (≤ {GOAL_MS:g} ms)"
                )
        database.dispose()


def _measure(
    database: Database, read: Callable[[], object], conn: psycopg.Connection, runs: int
) -> tuple[list[float], list[float], int]:
    """Milliseconds per page: the reader's call, and the server's time for what it sent."""
    library: list[float] = []
    for _ in range(runs + 1):  # the first warms the connection and the caches; not counted
        started = time.perf_counter()
        read()
        library.append((time.perf_counter() - started) * 1000)
    sent = _recorded(database, read)
    server = [_replayed(conn, sent) for _ in range(runs)]
    return library[1:], server, len(sent)


def _replayed(conn: psycopg.Connection, sent: Sent) -> float:
    """The server's time for the statements as they were sent: in one transaction, each driver
    statement under the planner settings glisk sent with it (the ORM's own settings statements
    are among those replayed, and take effect as they did)."""
    total = 0.0
    with conn.transaction():
        for sql, params, planner in sent:
            if planner is not None:
                conn.execute(planner.before.encode())
            total += _server_ms(conn, sql, params)
            if planner is not None:
                conn.execute(planner.after.encode())
    return total


def _recorded(database: Database, read: Callable[[], object]) -> Sent:
    """The statements one reading sends, with their parameters: driver SQL and ORM statements."""
    sent: Sent = []
    driver_rows = transaction.driver_rows

    def recorded(connection: Any, engine: Any, sql: str, params: Any, planner: Any = None) -> Any:
        sent.append((sql, dict(params), planner))
        return driver_rows(connection, engine, sql, params, planner)

    def orm(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        sent.append((statement, params, None))

    transaction.driver_rows = recorded
    event.listen(database.engine, "before_cursor_execute", orm)
    try:
        read()
    finally:
        event.remove(database.engine, "before_cursor_execute", orm)
        transaction.driver_rows = driver_rows
    return sent


def _server_ms(conn: psycopg.Connection, sql: str, params: Any) -> float:
    """Planning and execution time of `sql`, as the server measured them (an EXPLAIN that a
    reading sends itself costs its planning)."""
    options = "FORMAT JSON, SUMMARY" if sql.lstrip().upper().startswith("EXPLAIN") else None
    if options is not None:
        sql = sql.lstrip()[len("EXPLAIN (FORMAT JSON)") :]
        statement = f"EXPLAIN ({options}) {sql}"
    else:
        statement = f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}"
    row = conn.execute(statement.encode(), params or None).fetchone()
    assert row is not None
    report = row[0][0]
    return report.get("Planning Time", 0.0) + report.get("Execution Time", 0.0)


if __name__ == "__main__":
    main()
