"""What the claim's planner settings cost (docs/architecture.md, "Plans that need no
statistics"), on an analysed queue of 400,000 detected tokens, claims of 10 in blocks of 200,
the variants alternating block by block in one process, medians over the blocks:

- raw psycopg, one transaction per claim: the library's claim statement alone (`plain`); with
  the settings before it in its round trip (`settings`, psycopg's pipeline); with their reset
  after it too (`settings+reset`, what the library sends); with the free source in a PL/pgSQL
  function declared with the settings instead (`function`, the alternative not built);
- the library, `uow.tokens.claim` in a Unit of Work of its own, without and with the settings:
  wall time, this process's CPU and the server backend's CPU (from /proc) per claim.

    uv run python bench/claim_planner.py [--blocks 16]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, LiteralString, cast

import psycopg
from scratch import conninfo, migrate_with_author, scratch_database
from sqlalchemy import text

import glisk_cli.repositories.token_leases as token_leases
from glisk_cli.db import Database
from glisk_cli.logging import configure_logging
from glisk_cli.pipeline import stage_named
from glisk_cli.repositories.array_literal import array_literal
from glisk_cli.repositories.token_sql import IN_INDEX_ORDER, claim_sql
from glisk_cli.uow import create_uow_factory

BATCH, PER_BLOCK = 10, 200
CLAIM = claim_sql(stage_named("generation"), BATCH)
_FREE_IN_FUNCTION = """
CREATE FUNCTION bench_free(p_limit integer) RETURNS SETOF uuid LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_sort = off AS $$
BEGIN
    RETURN QUERY SELECT id FROM tokens_s0
        WHERE status IN ('detected', 'generating') AND lease_expires_at IS NULL
        ORDER BY mint_timestamp LIMIT p_limit FOR UPDATE SKIP LOCKED;
END $$
"""
_free = CLAIM[CLAIM.index("    free AS (") : CLAIM.index("    picked AS (")]
CLAIM_WITH_FUNCTION = CLAIM.replace(
    _free,
    f"    free AS (SELECT id FROM bench_free({BATCH} - (SELECT count(*) FROM expired)::integer)"
    " AS f(id)),\n",
)


def q(sql: str) -> LiteralString:
    return cast(LiteralString, sql)


def params() -> dict[str, Any]:
    return {
        "worker": "bench",
        "lease": timedelta(minutes=5),
        "max_attempts": 5,
        "lease_ids": array_literal([uuid.uuid4()]),
    }


def raw_claim(variant: str) -> Callable[[psycopg.Connection], int]:
    def claim(conn: psycopg.Connection) -> int:
        if variant == "function":
            rows = conn.execute(q(CLAIM_WITH_FUNCTION), params()).fetchall()
        elif variant == "plain":
            rows = conn.execute(q(CLAIM), params()).fetchall()
        else:
            with conn.cursor() as cursor:
                with conn.pipeline():
                    conn.execute(q(IN_INDEX_ORDER.before))
                    cursor.execute(q(CLAIM), params())
                    if variant == "settings+reset":
                        conn.execute(q(IN_INDEX_ORDER.after))
                rows = cursor.fetchall()
        conn.commit()
        return len(rows)

    return claim


def cpu_of(pid: int) -> float:
    """CPU seconds the process `pid` has used (user + system)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--blocks", type=int, default=16)
    args = parser.parse_args()
    configure_logging("WARNING")
    planned = token_leases.IN_INDEX_ORDER

    with scratch_database(None) as url:
        migrate_with_author(url, "claim planner")
        with psycopg.connect(conninfo(url), autocommit=True) as conn:
            conn.execute(_FREE_IN_FUNCTION)
            conn.execute(
                "INSERT INTO tokens_s0 (token_id, author_id, minter_address, mint_timestamp) "
                "SELECT n, (SELECT id FROM authors), '0x00000000000000000000000000000000000000bb',"
                " timestamptz '2026-01-01 00:00:00+00' + n * interval '1 second' "
                "FROM generate_series(1, 400000) AS n"
            )
            conn.execute("VACUUM ANALYZE tokens_s0")
        database = Database(url, pool_size=1)
        uow_factory = create_uow_factory(database)
        with uow_factory() as uow:
            backend = uow.session.execute(text("SELECT pg_backend_pid()")).scalar_one()

        def library(settings: bool) -> Callable[[object], int]:
            def claim(_: object) -> int:
                token_leases.IN_INDEX_ORDER = planned if settings else None  # type: ignore[assignment]
                with uow_factory() as uow:
                    return len(uow.tokens.claim("generation", BATCH, "bench"))

            return claim

        raw = psycopg.connect(conninfo(url))
        runs: dict[str, tuple[Callable[[Any], int], Any, int | None]] = {
            name: (raw_claim(name), raw, None)
            for name in ("plain", "settings", "settings+reset", "function")
        }
        runs |= {"library": (library(False), None, backend)}
        runs |= {"library+settings": (library(True), None, backend)}
        measured: dict[str, list[tuple[float, float, float]]] = {name: [] for name in runs}
        names = list(runs)
        for block in range(args.blocks + 1):  # the first warms up; not counted
            for name in names if block % 2 else reversed(names):
                claim, conn, pid = runs[name]
                wall, cpu = time.perf_counter(), time.process_time()
                server = cpu_of(pid) if pid else 0.0
                for _ in range(PER_BLOCK):
                    assert claim(conn) == BATCH
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                server = cpu_of(pid) - server if pid else 0.0
                if block:
                    measured[name].append((wall, cpu, server))
        raw.close()
        database.dispose()

    print(f"# {platform.node()} · {os.cpu_count()} cores · Python {platform.python_version()}")
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · load {os.getloadavg()[0]:.1f}")
    print(f"# µs per claim of {BATCH}, medians of {args.blocks} blocks of {PER_BLOCK}")
    for name, blocks in measured.items():
        wall, cpu, server = (
            statistics.median(b[i] for b in blocks) * 1e6 / PER_BLOCK for i in range(3)
        )
        line = f"{name:>17}: wall {wall:6.0f}"
        if runs[name][2]:
            line += f"   client CPU {cpu:5.0f}   server CPU {server:5.0f}"
        print(line)


if __name__ == "__main__":
    main()
