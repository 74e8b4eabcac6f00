"""What the test processes of one run share, made once by the first that needs it: the embedded
PostgreSQL server with its migrated template, and a stopped, initialized cluster that tests of
the embedded server copy instead of running initdb again.

The run's controller — the process that starts the xdist workers, or the only one — makes the
directory they live in before any worker starts (workers inherit it through the environment),
and stops the server and clears the directory once every worker is done (`conftest.py`'s
`pytest_configure` and `pytest_unconfigure`). Each item is made under a lock of its own.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from glisk_cli.embedded import EmbeddedServer

_WHERE = "GLISK_TESTS_SHARED_DIR"


def begin() -> Path | None:
    """In the run's controller: the shared directory, made (None in a worker: it has one)."""
    if _WHERE in os.environ:
        return None
    where = Path(tempfile.mkdtemp(prefix="glisk-tests-"))
    # As root, PostgreSQL runs as an unprivileged user, who must be able to enter it.
    where.chmod(0o755)
    os.environ[_WHERE] = str(where)
    return where


def end(where: Path) -> None:
    """In the controller, once every worker is done: drop the templates made on servers that
    outlive the run, stop the embedded server, remove the directory."""
    for record in where.glob("template-*.json"):
        made = json.loads(record.read_text())
        try:
            with psycopg.connect(made["conninfo"], autocommit=True) as admin:
                drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                admin.execute(drop.format(sql.Identifier(made["name"])))
        except psycopg.Error:
            pass  # a server that went away with its worker (a container) took it along
    if (where / "server" / "pgdata").exists():
        EmbeddedServer(where / "server", durable=False).stop()
    shutil.rmtree(where, ignore_errors=True)


def once(name: str, make: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """What `make(shared directory)` returned the first time any test process asked for
    `name`; made then, under a lock, and remembered as JSON."""
    where = Path(os.environ[_WHERE])
    record = where / f"{name}.json"
    with open(where / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not record.exists():
            record.write_text(json.dumps(make(where)))
        return json.loads(record.read_text())


def embedded_server() -> tuple[str, Path]:
    """The run's embedded server: its admin URL and its log file."""

    def start(where: Path) -> dict[str, Any]:
        server = EmbeddedServer(where / "server", durable=False)
        url = server.ensure_running()
        with psycopg.connect(server_conninfo(server), autocommit=True) as admin:
            # Each log line names its database, so a test reading the log reads only its own.
            admin.execute("ALTER SYSTEM SET log_line_prefix = '%m [%p] %d '")
            admin.execute("SELECT pg_reload_conf()")
        return {"url": url, "log_file": str(server.log_file)}

    made = once("server", start)
    return made["url"], Path(made["log_file"])


def server_conninfo(server: EmbeddedServer) -> str:
    return f"host={server.socket_dir} port=5432 user=glisk dbname=glisk"


def initialized_cluster_copy(destination: Path) -> EmbeddedServer:
    """A stopped embedded server's data directory, initialized once per run, copied to
    `destination` (`cp -a`: as root, the server user keeps owning its files)."""

    def initialize(where: Path) -> dict[str, Any]:
        server = EmbeddedServer(where / "cluster", durable=False)
        server.ensure_running()
        server.stop()
        return {"path": str(server.data_dir)}

    made = once("cluster", initialize)
    subprocess.run(["cp", "-a", made["path"], str(destination)], check=True)
    return EmbeddedServer(destination, durable=False)
