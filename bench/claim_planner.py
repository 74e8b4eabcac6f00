"""What picking in `glisk_pick` costs a claim (docs/architecture.md, "Plans that need no
statistics"), on an analysed queue of 400,000 detected tokens, claims of 10 in blocks of 200,
the variants alternating block by block in one process, medians over the blocks:

- raw psycopg, one transaction per claim: the library's claim statement (`function`: its
  sources in `glisk_pick`, under the planner settings declared with it); the same statement with
  the sources written into it as CTEs (`inline`: no settings, a plan that needs statistics);
  the inline statement with the settings made before it and reset after it in its round trip
  (`inline+settings`, psycopg's pipeline);
- the library, `uow.tokens.claim` in a Unit of Work of its own: wall time, this process's CPU
  and the server backend's CPU (from /proc) per claim.

    uv run python bench/claim_planner.py [--blocks 16]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, LiteralString, cast

import psycopg
from scratch import conninfo, machine, migrate_with_author, scratch_database
from sqlalchemy import text

from glisk_cli.db import Database
from glisk_cli.logging import configure_logging
from glisk_cli.pipeline import stage_named
from glisk_cli.repositories.array_literal import array_literal
from glisk_cli.repositories.token_sql import IN_INDEX_ORDER, claim_sql
from glisk_cli.uow import create_uow_factory

BATCH, PER_BLOCK = 10, 200
CLAIM = claim_sql(stage_named("generation"), BATCH)
# The sources as the claim had them before migration 0011: CTEs of the statement itself.
_FREE = "status IN ('detected', 'generating') AND lease_expires_at"
_SOURCES = f"""expired AS (
    SELECT id FROM tokens_s0 WHERE {_FREE} < statement_timestamp()
    LIMIT {BATCH} FOR UPDATE SKIP LOCKED
),
free AS (
    SELECT id FROM tokens_s0 WHERE {_FREE} IS NULL
    ORDER BY mint_timestamp LIMIT {BATCH} FOR UPDATE SKIP LOCKED
),
picked AS (SELECT id FROM expired UNION ALL SELECT id FROM free LIMIT {BATCH}),
"""
_PICK = CLAIM[CLAIM.index("glisk_pick(") : CLAIM.index("AS picked(id)") + len("AS picked(id)")]
CLAIM_INLINE = CLAIM.replace("started AS (", _SOURCES + "started AS (").replace(
    _PICK, "(SELECT id FROM picked LIMIT (SELECT jobs FROM admitted)) AS admitted_ids"
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
            rows = conn.execute(q(CLAIM), params()).fetchall()
        elif variant == "inline":
            rows = conn.execute(q(CLAIM_INLINE), params()).fetchall()
        else:
            with conn.cursor() as cursor:
                with conn.pipeline():
                    conn.execute(q(IN_INDEX_ORDER.before))
                    cursor.execute(q(CLAIM_INLINE), params())
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

    with scratch_database(None) as url:
        migrate_with_author(url, "claim planner")
        with psycopg.connect(conninfo(url), autocommit=True) as conn:
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

        def library(_: object) -> int:
            with uow_factory() as uow:
                return len(uow.tokens.claim("generation", BATCH, "bench"))

        raw = psycopg.connect(conninfo(url))
        runs: dict[str, tuple[Callable[[Any], int], Any, int | None]] = {
            name: (raw_claim(name), raw, raw.info.backend_pid)
            for name in ("function", "inline", "inline+settings")
        }
        runs |= {"library": (library, None, backend)}
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

    print(f"# {machine()}")
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
