"""`glisk serve` run in this process (no start-up cost): with the database unreachable it still
starts, answers 503 without giving anything away, logs the outage once with the password masked,
and stops with exit 0 on SIGINT (not 130, as Ctrl-C elsewhere); a port in use is a clear error."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import threading
import time

from tests.health.conftest import closed_port

CANARY_USER, CANARY_PASSWORD = "canary_user", "canary-pw-5e1f"


def test_unreachable_database_gives_503_and_sigint_exits_0(cli) -> None:
    database_port, port = closed_port(), closed_port()
    url = f"postgresql://{CANARY_USER}:{CANARY_PASSWORD}@127.0.0.1:{database_port}/glisk"
    replies: list[tuple[str, int, bytes]] = []

    def client() -> None:
        """Talk to the server once it listens, then press Ctrl-C (only if it ever listened)."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                for path in ["/livez"] + ["/health", "/readyz"] * 10:
                    connection.request("GET", path)
                    response = connection.getresponse()
                    replies.append((path, response.status, response.read()))
                connection.close()
            except OSError:
                time.sleep(0.05)
                continue
            os.kill(os.getpid(), signal.SIGINT)
            return

    thread = threading.Thread(target=client)
    thread.start()
    result = cli("serve", "--port", str(port), env={"DATABASE_URL": url})
    thread.join()

    assert result.exit_code == 0, result.stderr
    assert replies[0][:2] == ("/livez", 200)
    for _, status, body in replies[1:]:
        assert status == 503
        assert json.loads(body) == {
            "status": "unhealthy",
            "error": {"code": "database_unavailable", "message": "database is unavailable"},
        }
        for secret in (CANARY_PASSWORD, CANARY_USER, "127.0.0.1", str(database_port), "refused"):
            assert secret.encode() not in body
    assert CANARY_PASSWORD not in result.stderr
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, result.stderr
    assert f"{CANARY_USER}:***@127.0.0.1:{database_port}" in errors[0]
    assert f"listening on http://127.0.0.1:{port}" in result.stderr


def test_a_port_in_use_is_refused_with_a_clear_error(cli) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("serve", "--port", str(port), env={"DATABASE_URL": "postgresql://u@/db"})
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}: ")


def test_the_dashboard_off_loopback_without_a_password_is_refused_with_exit_2(cli) -> None:
    env = {"DATABASE_URL": "postgresql://u@/db", "GLISK_DASHBOARD_PASSWORD": None}
    result = cli("serve", "--dashboard", "--host", "0.0.0.0", "--port", "0", env=env)
    assert result.exit_code == 2
    assert result.stderr == (
        "error: the dashboard listens on 0.0.0.0 only with a password: set "
        "GLISK_DASHBOARD_PASSWORD (or listen on a loopback address: --host 127.0.0.1)\n"
    )
