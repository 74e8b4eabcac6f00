"""CLI latency: median wall time of glisk commands against the import floor, in one run.

The floor is `python -c "import sqlalchemy.orm, psycopg"`: what any command that talks to the
database must pay before doing anything. Commands are run round-robin (floor, then each command,
repeated) so that the machine's noise hits all of them alike; medians are reported.

    uv run python bench/cli_latency.py [--runs 15] [--command "db status --json"] ...
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from scratch import process_env, timed

VENV_BIN = Path(sys.executable).parent
FLOOR = [sys.executable, "-c", "import sqlalchemy.orm, psycopg"]
DEFAULT_COMMANDS = ["--help", "db status --json"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--command", action="append", help="glisk arguments, quoted as one string")
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
    print(f"# {platform.node()} · {os.cpu_count()} cores · Python {platform.python_version()}")
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · {args.runs} runs each")
    print(f"{'command':<48} {'median':>9} {'min':>9} {'x floor':>8}")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"{name:<48} {median * 1000:>7.0f}ms {min(values) * 1000:>7.0f}ms "
              f"{median / floor:>8.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
