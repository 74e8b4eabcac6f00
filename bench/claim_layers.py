"""Client CPU per claim, layer by layer: where the library spends what raw SQL does not.

One process drains a freshly seeded queue at B = 10 through each of these, in turn, repeated;
each runs the very statement the library sends (captured from it once):

- raw psycopg, one transaction per claim (the raw path of bench/claim.py);
- SQLAlchemy Core, `engine.begin()` + `exec_driver_sql`, without and with the pool pre-ping;
- a Session from glisk's session factory, the statement on its connection;
- the Unit of Work: `uow.tokens.claim(...)`, i.e. the library.

It reports the medians of this process's CPU time per claim (not wall time, so the server's
share and the machine's load stay out of it).

    uv run python bench/claim_layers.py [--tokens 2000] [--repetitions 3]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import psycopg
from claim import LEASE, MAX_ATTEMPTS, STAGE, ClaimStatement, capture_claim, seed
from scratch import conninfo, migrate_with_author, scratch_database
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url

from glisk_cli.database import setup_db_session
from glisk_cli.logging import configure_logging
from glisk_cli.uow import create_uow_factory

BATCH = 10
Drain = Callable[[], int]  # claims until one comes back empty; returns how many claims it made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", help="use this server (a scratch database on it)")
    parser.add_argument("--tokens", type=int, default=2_000)
    parser.add_argument("--repetitions", type=int, default=3)
    args = parser.parse_args()
    configure_logging("WARNING")  # glisk's default: no INFO line per transaction

    with scratch_database(args.database_url) as url:
        migrate_with_author(url, "bench")
        statement = capture_claim(url)
        params = {**statement.params, statement.worker_key: "w", statement.limit_key: BATCH}
        session_factory = setup_db_session(url, pool_size=1)
        pinged: Engine = session_factory.kw["bind"]
        unpinged = create_engine(make_url(url).set(drivername="postgresql+psycopg"))
        uow_factory = create_uow_factory(session_factory)
        raw = psycopg.connect(conninfo(url))

        def drain_raw() -> int:
            return _drain(lambda: _raw_claim(raw, statement, params))

        def drain_core(engine: Engine) -> Drain:
            def drain() -> int:
                def claim() -> list[Any]:
                    with engine.begin() as connection:
                        return list(connection.exec_driver_sql(statement.text, params))

                return _drain(claim)

            return drain

        def drain_session() -> int:
            def claim() -> list[Any]:
                with session_factory() as session, session.begin():
                    return list(session.connection().exec_driver_sql(statement.text, params))

            return _drain(claim)

        def drain_library() -> int:
            def claim() -> list[Any]:
                with uow_factory() as uow:
                    return uow.tokens.claim(STAGE, BATCH, "w", LEASE, MAX_ATTEMPTS)

            return _drain(claim)

        layers: dict[str, Drain] = {
            "raw psycopg": drain_raw,
            "SQLAlchemy Core, no pre-ping": drain_core(unpinged),
            "SQLAlchemy Core, pre-ping (glisk's engine)": drain_core(pinged),
            "Session, statement on its connection": drain_session,
            "Unit of Work: uow.tokens.claim (the library)": drain_library,
        }
        samples: dict[str, list[float]] = {name: [] for name in layers}
        with psycopg.connect(conninfo(url), autocommit=True) as admin:
            for _ in range(args.repetitions):
                for name, drain in layers.items():
                    seed(admin, args.tokens, 0)
                    started = time.process_time()
                    claims = drain()
                    samples[name].append((time.process_time() - started) / claims)
        raw.close()
        unpinged.dispose()
        pinged.dispose()

    print(f"# {platform.node()} · Python {platform.python_version()} · "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · {args.tokens} tokens, B = "
          f"{BATCH}, {args.repetitions} repetitions (medians)")  # fmt: skip
    baseline = statistics.median(samples["raw psycopg"])
    print(f"{'claim through':<48} {'CPU per claim':>14} {'x raw':>7}")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"{name:<48} {median * 1000:>11.2f} ms {median / baseline:>7.2f}")


def _raw_claim(conn: psycopg.Connection, statement: ClaimStatement, params: dict) -> list[Any]:
    rows = conn.execute(statement.text, params).fetchall()
    conn.commit()
    return rows


def _drain(claim: Callable[[], list[Any]]) -> int:
    claims = 0
    while True:
        claims += 1
        if not claim():
            return claims


if __name__ == "__main__":
    main()
