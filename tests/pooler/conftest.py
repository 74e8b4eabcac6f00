"""A real PgBouncer in transaction mode in front of the test server, started per test session.

Debian's `pgbouncer` package provides the binary (CI installs it). Outside CI a machine without
it skips these tests, saying why; in CI (env CI set) its absence fails them instead.

PgBouncer refuses to run as root; as root it runs as the unprivileged account that already runs
the embedded test server (which can also reach that server's Unix socket). Clients are trusted
(`auth_type = trust`), as the embedded server trusts its local connections; every database of
the test server is reachable through PgBouncer under its own name.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import PostgresServer
from tests.programs import require_program


def require_pgbouncer() -> str:
    """The pgbouncer binary, or skip (fail in CI) saying how to get it."""
    return require_program("pgbouncer", ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"), "pooler")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _run_as() -> tuple[int, int] | None:
    """The (uid, gid) to run PgBouncer as: the embedded server's account when root."""
    if os.geteuid() != 0:
        return None
    from glisk_cli.embedded.root import ensure_server_user

    return ensure_server_user()


class PgBouncer:
    """One PgBouncer process in transaction mode, on a free loopback port."""

    def __init__(self, binary: str, server: PostgresServer, **settings: str) -> None:
        self.binary = binary
        self.port = _free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="glisk-pgbouncer-"))
        self._account = _run_as()
        self._process: subprocess.Popen[bytes] | None = None
        target = make_url(server.admin_url)
        host = target.host or str(target.query["host"])  # a Unix socket directory
        self.user = target.username or "postgres"
        backend = f"host={host} port={target.port or 5432} user={self.user}"
        if target.password:
            backend += f" password={target.password}"
        config = {
            "listen_addr": "127.0.0.1",
            "listen_port": str(self.port),
            "unix_socket_dir": "",
            "auth_type": "trust",
            "auth_file": str(self.directory / "users.txt"),
            "pool_mode": "transaction",
            "max_client_conn": "500",
            "default_pool_size": "20",
            "logfile": str(self.directory / "pgbouncer.log"),
            "pidfile": str(self.directory / "pgbouncer.pid"),
            **settings,
        }
        lines = ["[databases]", f"* = {backend}", "[pgbouncer]"]
        lines += [f"{key} = {value}" for key, value in config.items()]
        (self.directory / "pgbouncer.ini").write_text("\n".join(lines) + "\n")
        (self.directory / "users.txt").write_text(f'"{self.user}" ""\n')
        if self._account:
            for path in (self.directory, *self.directory.iterdir()):
                os.chown(path, *self._account)

    def url_for(self, database: str) -> str:
        """The SQLAlchemy URL of `database` through this PgBouncer."""
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        uid, gid = self._account or (None, None)
        self._process = subprocess.Popen(
            [self.binary, str(self.directory / "pgbouncer.ini")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            user=uid,
            group=gid,
            extra_groups=[] if uid is not None else None,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"pgbouncer exited at start: {self.log()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"pgbouncer did not listen on {self.port}: {self.log()[-2000:]}")

    def stop(self) -> None:
        """Immediate shutdown (SIGTERM): open client and server connections are cut."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()

    def log(self) -> str:
        try:
            return (self.directory / "pgbouncer.log").read_text(errors="replace")
        except OSError:
            return ""

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture
def start_pgbouncer(pg_server: PostgresServer) -> Iterator[Callable[..., PgBouncer]]:
    """Start a PgBouncer (transaction mode, stock start-up parameter rules unless `settings`
    say otherwise) in front of the test server; every one started is stopped after the test."""
    binary = require_pgbouncer()
    started: list[PgBouncer] = []

    def start(**settings: str) -> PgBouncer:
        bouncer = PgBouncer(binary, pg_server, **settings)
        started.append(bouncer)
        bouncer.start()
        return bouncer

    yield start
    for bouncer in started:
        bouncer.close()


@pytest.fixture
def pgbouncer(start_pgbouncer: Callable[..., PgBouncer]) -> PgBouncer:
    """A PgBouncer with Debian's stock settings, in transaction mode."""
    return start_pgbouncer()


def database_name(url: str) -> str:
    name = make_url(url).database
    assert name
    return name
