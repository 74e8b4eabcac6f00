"""What every benchmark needs: throwaway databases, so none touches anyone's data, and timed
`glisk` processes.

A benchmark gets a fresh database of its own, on the server it was pointed at or on an embedded
server started for it in a temporary directory; both are removed afterwards, even on Ctrl-C.
"""

from __future__ import annotations

import os
import platform
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from glisk_cli.embedded import EmbeddedServer

_BENCH_WALLET = "0x00000000000000000000000000000000000000aa"


def machine() -> str:
    """What every benchmark's first line says of where it ran: host, cores, Python."""
    return f"{platform.node()} · {os.cpu_count()} cores · Python {platform.python_version()}"


def process_env() -> dict[str, str]:
    """This process's environment for the processes a benchmark times.

    Bytecode stays cached as users have it: some machines set PYTHONDONTWRITEBYTECODE, which
    makes every process recompile every module it imports.
    """
    return {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}


def timed(argv: list[str], env: dict[str, str]) -> float:
    """Wall seconds of one process, which must succeed (its stderr is in the error if not)."""
    started = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True)
    return time.perf_counter() - started


def migrate_with_author(url: str, prompt: str) -> None:
    """Migrate `url` to head with glisk's own migrations and add the one author tokens need."""
    from glisk_cli.db import Database
    from glisk_cli.migrations import upgrade

    database = Database(url, pool_size=1)
    try:
        upgrade(database.engine)
    finally:
        database.dispose()
    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO authors (wallet_address, prompt_text) VALUES (%s, %s)",
            [_BENCH_WALLET, prompt],
        )


def conninfo(url: str) -> str:
    """A libpq connection string for a SQLAlchemy URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def no_interrupts() -> Iterator[None]:
    """Ctrl-C waits until the block is done (uv forwards a second SIGINT to cleanup, too)."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def scratch_server() -> Iterator[EmbeddedServer]:
    """Start a non-durable embedded server in a temporary directory; remove it afterwards."""
    data_dir = Path(tempfile.mkdtemp(prefix="glisk-bench-"))
    data_dir.chmod(0o755)  # as root the server runs as another user, who must enter it
    server = EmbeddedServer(data_dir, durable=False)
    try:
        server.ensure_running()
        yield server
    finally:
        with no_interrupts():
            server.stop()
            shutil.rmtree(data_dir, ignore_errors=True)


@contextmanager
def scratch_database(database_url: str | None, prefix: str = "glisk_bench") -> Iterator[str]:
    """A fresh database of our own, on `database_url`'s server or on a throwaway embedded one."""
    with _admin_url(database_url) as admin_url:
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(conninfo(admin_url), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with no_interrupts(), psycopg.connect(conninfo(admin_url), autocommit=True) as conn:
                drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                conn.execute(drop.format(sql.Identifier(name)))


@contextmanager
def sibling_database(url: str, prefix: str) -> Iterator[str]:
    """Another fresh database on `url`'s server (for a peer measured in the same run)."""
    with scratch_database(url, prefix) as sibling:
        yield sibling


@contextmanager
def _admin_url(database_url: str | None) -> Iterator[str]:
    if database_url:
        yield database_url
        return
    with scratch_server() as server:
        yield server.url
