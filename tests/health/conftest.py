"""Helpers for the health server's tests: a real `glisk serve` process, and a TCP proxy in front
of the test PostgreSQL that can be taken down and brought back (a database outage on demand)."""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url

from glisk_cli.config import Settings
from tests.conftest import GLISK

SETTING_VARIABLES = tuple(name.upper() for name in Settings.model_fields)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes


@dataclass
class ServeProcess:
    """`glisk serve --port 0` with its stderr in a file (so nothing can fill a pipe)."""

    process: subprocess.Popen[bytes]
    log_file: Path
    base_port: int = 0

    def logs(self) -> str:
        return self.log_file.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60) -> None:
        """Until the listening line is logged and /livez answers."""
        deadline = time.monotonic() + timeout
        while not (found := re.search(r"listening on http://[^\s,]+:(\d+)", self.logs())):
            assert self.process.poll() is None, f"glisk serve exited early:\n{self.logs()}"
            assert time.monotonic() < deadline, f"glisk serve did not start:\n{self.logs()}"
            time.sleep(0.02)
        self.base_port = int(found[1])
        assert self.request("GET", "/livez").status == 200

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, timeout: float = 5
    ) -> Reply:
        connection = http.client.HTTPConnection("127.0.0.1", self.base_port, timeout=timeout)
        try:
            connection.request(method, path, headers=headers or {})
            response = connection.getresponse()
            body = response.read()
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, body)
        finally:
            connection.close()

    def wait_for_status(self, path: str, status: int, timeout: float = 10) -> Reply:
        deadline = time.monotonic() + timeout
        while (reply := self.request("GET", path)).status != status:
            assert time.monotonic() < deadline, f"{path} still {reply.status}:\n{self.logs()}"
            time.sleep(0.05)
        return reply

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 10) -> tuple[int, float]:
        """Send `signum`; return the exit code and how long the process took to exit."""
        started = time.monotonic()
        self.process.send_signal(signum)
        try:
            return self.process.wait(timeout), time.monotonic() - started
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()


def start_serve(workdir: Path, env: dict[str, str], *options: str) -> ServeProcess:
    """Start `glisk serve` on a free port, with `options` (call `wait_ready` before using it)."""
    workdir.mkdir(parents=True, exist_ok=True)
    home = workdir / "home"
    home.mkdir(mode=0o700, exist_ok=True)
    clean = {key: value for key, value in os.environ.items() if key not in SETTING_VARIABLES}
    clean |= {
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "TZ": "UTC",
        "GLISK_DATA_DIR": str(workdir / "unused-embedded-data"),
    }
    log_file = workdir / "serve.log"
    with open(log_file, "wb") as stderr:
        process = subprocess.Popen(
            [str(GLISK), "serve", "--port", "0", *options],
            cwd=workdir,  # an empty directory: no developer's .env is read
            env=clean | env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    return ServeProcess(process, log_file)


def closed_port() -> int:
    """A local TCP port nothing listens on (connections to it are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class PostgresProxy:
    """Forwards 127.0.0.1:<port> to a PostgreSQL server. `down()` cuts every open connection and
    every new one at once, as a server restart or crash would; `up()` forwards again. The port
    stays bound meanwhile: closed, another process's connection could take its number, and the
    proxy could not come back on it."""

    upstream_url: str
    port: int = 0
    _listener: socket.socket | None = None
    _down: bool = False
    _open: set[socket.socket] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def url_for(self, database: str) -> str:
        """The SQLAlchemy URL of `database` reached through the proxy."""
        url = make_url(self.upstream_url).difference_update_query(["host"])
        url = url.set(host="127.0.0.1", port=self.port, database=database)
        return url.render_as_string(hide_password=False)

    def up(self) -> None:
        self._down = False
        if self._listener is not None:
            return
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        listener.settimeout(0.05)
        self.port, self._listener = listener.getsockname()[1], listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        self._down = True
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()

    def close(self) -> None:
        """Down for good: the port is let go."""
        self.down()
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()

    def _upstream(self) -> socket.socket:
        url = make_url(self.upstream_url)
        host = str(url.query.get("host") or url.host or "localhost")
        port = url.port or 5432
        if host.startswith("/"):  # a Unix socket directory (the embedded server)
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(f"{host}/.s.PGSQL.{port}")
        else:
            sock = socket.create_connection((host, port))
        return sock

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._down:  # reset at once, as a port nothing listens on would refuse it
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                client.close()
                continue
            client.settimeout(None)
            server = self._upstream()
            with self._lock:
                self._open.update((client, server))
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
