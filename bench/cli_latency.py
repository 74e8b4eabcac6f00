"""CLI latency: median wall time of glisk commands against the import floor, in one run.

The floor is `python -c "import sqlalchemy.orm, psycopg"`: what any command that talks to the
database must pay before doing anything. Commands are run round-robin (floor, then each command,
repeated) so that the machine's noise hits all of them alike; medians are reported.

    uv run python bench/cli_latency.py [--runs 15] [--command "db status --json"] ...

With --imports it also reports what the libraries a command loads cost on top of the floor: a
fresh process imports the floor, then times one import (the module and whatever it pulls in
that the floor did not).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from scratch import machine, process_env, timed

VENV_BIN = Path(sys.executable).parent
FLOOR = [sys.executable, "-c", "import sqlalchemy.orm, psycopg"]
DEFAULT_COMMANDS = ["--help", "db status --json"]
# What a database command imports beyond the floor, each timed on its own after the floor.
IMPORTS = {
    "pydantic (BaseModel)": "from pydantic import BaseModel",
    "pydantic-settings (with pydantic)": "import pydantic_settings",
    "glisk_cli.config (settings class, with both)": "import glisk_cli.config",
    "SQLAlchemy's PostgreSQL dialect": "import sqlalchemy.dialects.postgresql.psycopg",
    "glisk_cli.models (the seven models)": "import glisk_cli.models",
    "typer": "import typer",
    "typer._adapters (pydantic conversion)": "import typer._adapters",
    "both pydantic users: settings and typer._adapters": (
        "import glisk_cli.config, typer._adapters"
    ),
    "loguru": "import loguru",
    "all of the above, as `state get` imports them": (
        "import glisk_cli.cli.app, glisk_cli.config, glisk_cli.uow, typer._adapters, "
        "sqlalchemy.dialects.postgresql.psycopg"
    ),
}
MARGINAL = (
    "import sqlalchemy.orm, psycopg, time\n"
    "started = time.perf_counter()\n"
    "{statement}\n"
    "print(time.perf_counter() - started)"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--command", action="append", help="glisk arguments, quoted as one string")
    parser.add_argument("--imports", action="store_true", help="also time imports beyond the floor")
    args = parser.parse_args()
    commands = args.command or DEFAULT_COMMANDS
    env = process_env()  # bytecode cached after the warm-up run, as users have it
    glisk = str(VENV_BIN / "glisk")
    targets = {"floor: import sqlalchemy.orm, psycopg": FLOOR}
    targets |= {f"glisk {command}": [glisk, *command.split()] for command in commands}

    for argv in targets.values():  # warm-up: bytecode caches, embedded server start
        timed(argv, env)
    samples: dict[str, list[float]] = {name: [] for name in targets}
    for _ in range(args.runs):
        for name, argv in targets.items():
            samples[name].append(timed(argv, env))

    floor = statistics.median(samples["floor: import sqlalchemy.orm, psycopg"])
    print(f"# {machine()}")
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · {args.runs} runs each")
    print(f"{'command':<48} {'median':>9} {'min':>9} {'x floor':>8}")
    for name, values in samples.items():
        median = statistics.median(values)
        print(
            f"{name:<48} {median * 1000:>7.0f}ms {min(values) * 1000:>7.0f}ms "
            f"{median / floor:>8.2f}"
        )
    if args.imports:
        print(f"{'import, after the floor':<48} {'median':>9} {'min':>9} {'x floor':>8}")
        for name, statement in IMPORTS.items():
            values = [_marginal_import(statement, env) for _ in range(args.runs)]
            median = statistics.median(values)
            print(
                f"{name:<48} {median * 1000:>7.0f}ms {min(values) * 1000:>7.0f}ms "
                f"{median / floor:>8.2f}"
            )


def _marginal_import(statement: str, env: dict[str, str]) -> float:
    code = MARGINAL.format(statement=statement)
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return float(result.stdout)


if __name__ == "__main__":
    main()
