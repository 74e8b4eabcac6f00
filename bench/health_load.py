"""Health server under load: wrk against `glisk serve`, and what PostgreSQL saw meanwhile.

Runs wrk (1 thread, 32 connections, 10 s by default) against /health of a real `glisk serve`
process and reports requests/s, p99 latency and non-2xx responses next to the goals of the issue
(≥ 5,000 req/s, p99 ≤ 10 ms, no non-2xx, ≤ 10 database transactions/s). Database load is measured
twice: transactions committed or rolled back in the database over the server's whole life
(pg_stat_database, read on the server after glisk serve has exited, divided by the load's
duration: an upper bound), and health checks the server counted during the load itself
(glisk_health_check_seconds_count on /metrics).

The database is GLISK_BENCH_DATABASE_URL when set, else a throwaway embedded PostgreSQL in a
temporary directory.

    uv run python bench/health_load.py [--runs 1] [--duration 10] [--connections 32] [--path P]...

With several --path options the paths are measured round-robin on the same server, e.g.
`--path /health --path /livez` compares /health with a path that never looks at the database.

With --dashboard the server runs `glisk serve --dashboard` on a migrated database seeded with
--tokens tokens (`glisk dev seed`), and a headless Chromium (Debian's, through Playwright) keeps
the pipeline page and a token's page open during the load, each refreshing itself every few
seconds; the refreshes it made are counted and printed.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
from prometheus_client.parser import text_string_to_metric_families
from scratch import machine
from sqlalchemy.engine import make_url

from glisk_cli.embedded import EmbeddedServer

GLISK = Path(sys.executable).with_name("glisk")
WRK = shutil.which("wrk") or "/usr/bin/wrk"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
GOALS = {"req/s": 5000.0, "p99 ms": 10.0, "non-2xx": 0, "db xacts/s": 10.0}


@contextmanager
def database() -> Iterator[str]:
    """The URL of a database to point glisk serve at."""
    if url := os.environ.get("GLISK_BENCH_DATABASE_URL"):
        yield url
        return
    data_dir = Path(tempfile.mkdtemp(prefix="glisk-bench-"))
    data_dir.chmod(0o755)  # as root, the server's own user must be able to enter it
    server = EmbeddedServer(data_dir, durable=False)
    try:
        yield server.ensure_running()
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@contextmanager
def serve(url: str, workdir: Path, *options: str) -> Iterator[tuple[str, float]]:
    """A running `glisk serve` (its base URL, and seconds from exec to listening)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("GLISK_")}
    env |= {"DATABASE_URL": url, "LOG_LEVEL": "WARNING", "GLISK_DATA_DIR": str(workdir / "x")}
    log = workdir / "serve.log"
    started = time.monotonic()
    with open(log, "w") as stderr:
        process = subprocess.Popen(
            [str(GLISK), "serve", "--port", "0", *options], cwd=workdir, env=env, stderr=stderr
        )
    try:
        while not (found := re.search(r"listening on (http://\S+:\d+)", log.read_text())):
            if process.poll() is not None or time.monotonic() - started > 60:
                raise SystemExit(f"glisk serve did not start:\n{log.read_text()}")
            time.sleep(0.02)
        yield found[1], time.monotonic() - started
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(10)


def transactions(url: str) -> int:
    """Transactions ended in the database so far, as far as its statistics have been published."""
    sa_url = make_url(url)
    conninfo = sa_url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
            [sa_url.database],
        ).fetchone()
    return int(row[0]) if row else 0


def get(base: str, path: str) -> bytes:
    host, port = urlsplit(base).hostname, urlsplit(base).port
    connection = http.client.HTTPConnection(host or "127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        return connection.getresponse().read()
    finally:
        connection.close()


def checks(base: str) -> float:
    text = get(base, "/metrics").decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "glisk_health_check_seconds_count":
                return sample.value
    raise SystemExit("no glisk_health_check_seconds_count on /metrics")


def seeded(url: str, tokens: int) -> None:
    """Migrate the database and seed `tokens` tokens through glisk itself."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("GLISK_")}
    env |= {"DATABASE_URL": url, "APP_ENV": "development"}
    for argv in (["db", "upgrade"], ["dev", "seed", "--tokens", str(tokens), "--yes"]):
        subprocess.run([str(GLISK), *argv], env=env, check=True, capture_output=True)


class Browser:
    """Headless Chromium with the dashboard's pipeline page and a token's page open, counting
    the refreshes the pages make by themselves (Playwright delivers events while it waits)."""

    def __init__(self, base: str) -> None:
        from playwright.sync_api import sync_playwright

        self._driver = sync_playwright().start()
        self._browser = self._driver.chromium.launch(executable_path=CHROMIUM)
        self.refreshes = 0
        for path in ("/", "/tokens/1"):
            page = self._browser.new_page()
            page.on("response", self._count)
            page.goto(base + path)
        self._page = page

    def _count(self, response: Any) -> None:
        self.refreshes += "part=main" in response.url and response.status == 200

    def wait(self, process: subprocess.Popen[str]) -> str:
        """Keep the pages' events flowing until `process` (wrk) ends; its stdout."""
        while process.poll() is None:
            self._page.wait_for_timeout(200)
        return process.communicate()[0]

    def close(self) -> None:
        self._browser.close()
        self._driver.stop()


def wrk(
    target: str, connections: int, duration: int, browser: Browser | None = None
) -> dict[str, float]:
    argv = [WRK, "-t1", f"-c{connections}", f"-d{duration}s", "--latency", target]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    output = browser.wait(process) if browser else process.communicate()[0]
    if process.returncode != 0:
        raise SystemExit(f"wrk failed:\n{output}")
    print(output, file=sys.stderr)
    p99 = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    if not (p99 and rate):
        raise SystemExit(f"could not read wrk's output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors:.*", output)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99[2]]
    return {
        "req/s": float(rate[1]),
        "p99 ms": float(p99[1]) * scale,
        "non-2xx": int(non_2xx[1]) if non_2xx else 0,
        "socket errors": 1 if errors else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--path", action="append", help="repeat to interleave paths (/health)")
    parser.add_argument("--runs", type=int, default=1, help="wrk runs per path, same server")
    parser.add_argument("--dashboard", action="store_true", help="with a browser on the view")
    parser.add_argument("--tokens", type=int, default=100_000, help="seeded for --dashboard")
    args = parser.parse_args()
    paths: list[str] = args.path or ["/health"]
    runs: dict[str, list[dict[str, float]]] = {path: [] for path in paths}
    loads = [os.getloadavg()[0]]
    loaded = 0.0  # seconds under load, over all runs
    with database() as url, tempfile.TemporaryDirectory() as workdir:
        # A backend publishes its statistics lazily, but always when it exits: count everything
        # the server's connections did over its whole life, read after it has closed its pool.
        if args.dashboard:
            seeded(url, args.tokens)
        xacts_before = transactions(url)
        options = ("--dashboard",) if args.dashboard else ()
        with serve(url, Path(workdir), *options) as (base, startup):
            get(base, "/health")  # warm the pool
            browser = Browser(base) if args.dashboard else None
            for _ in range(args.runs):
                for path in paths:  # round-robin, so the machine's noise hits every path alike
                    checks_before, started = checks(base), time.monotonic()
                    result = wrk(base + path, args.connections, args.duration, browser)
                    elapsed = time.monotonic() - started
                    result["checks/s"] = (checks(base) - checks_before) / elapsed
                    loaded += elapsed
                    runs[path].append(result)
                loads.append(os.getloadavg()[0])
            if browser is not None:
                browser.close()
        time.sleep(0.5)
        xacts_after = transactions(url)
    # An upper bound: start-up and warm-up checks count too (less the first statistics query).
    xacts_per_second = max(0, xacts_after - xacts_before - 1) / loaded

    print(f"# {machine()}")
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · wrk -t1 "
        f"-c{args.connections} -d{args.duration}s · {args.runs} run(s) per path"
    )
    print(f"# glisk serve: exec to listening {startup:.2f} s")
    if browser is not None:
        print(
            f"# dashboard open in Chromium ({args.tokens:,} tokens): pipeline and token pages "
            f"refreshed themselves {browser.refreshes} times under load ({loaded:.0f} s)"
        )
    load_text = " ".join(f"{load:.1f}" for load in loads)
    print(f"# 1-min load average before each round and after the last: {load_text}")
    print(
        f"{'path':<9} {'run':>3} {'req/s':>9} {'p99 ms':>8} {'non-2xx':>8} {'sock err':>8} "
        f"{'checks/s':>9}"
    )
    for path, results in runs.items():
        for number, result in enumerate(results, 1):
            print(
                f"{path:<9} {number:>3} {result['req/s']:>9.0f} {result['p99 ms']:>8.2f} "
                f"{result['non-2xx']:>8.0f} {result['socket errors']:>8.0f} "
                f"{result['checks/s']:>9.2f}"
            )
    for path, results in runs.items():
        median = {name: statistics.median(run[name] for run in results) for name in results[0]}
        median["non-2xx"] = max(run["non-2xx"] for run in results)  # any at all is a miss
        median["db xacts/s"] = xacts_per_second  # the whole server's, all paths together
        print(f"{path}: median of {len(results)} run(s)")
        print(f"  {'measure':<12} {'value':>10} {'goal':>10}  verdict")
        for name, goal in GOALS.items():
            met = median[name] >= goal if name == "req/s" else median[name] <= goal
            print(f"  {name:<12} {median[name]:>10.2f} {goal:>10g}  {'ok' if met else 'MISSED'}")


if __name__ == "__main__":
    main()
