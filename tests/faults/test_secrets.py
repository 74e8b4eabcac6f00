"""A password in DATABASE_URL never reaches stdout, stderr or the logs — on any failure path,
with or without --debug and --json — and the embedded server is private."""

from __future__ import annotations

import os
import stat

import psycopg
import pytest
from sqlalchemy.engine import make_url

SECRET = "pa55-w0rd-never-shown"
COMMANDS = [["db", "status"], ["db", "verify"], ["tokens", "claim"], ["state", "get", "cursor"]]
FLAGS = [[], ["--json"], ["--debug"], ["--debug", "--json"]]


def with_password(url: str, user: str = "glisk") -> str:
    return make_url(url).set(username=user, password=SECRET).render_as_string(False)


@pytest.mark.parametrize("failure", ["unreachable", "unknown-role", "unmigrated"])
def test_the_password_appears_nowhere_on_any_failure_path(
    cli, database_url: str, failure: str
) -> None:
    url = {
        "unreachable": f"postgresql://glisk:{SECRET}@127.0.0.1:9/glisk",
        "unknown-role": with_password(database_url, user="nobody_here"),
        "unmigrated": with_password(database_url),
    }[failure]
    expected_exit = {"unreachable": 3, "unknown-role": 3, "unmigrated": 7}[failure]
    for command in COMMANDS:
        for flags in FLAGS:
            debug = ["--debug"] if "--debug" in flags else []
            args = [*debug, *command, *(["--json"] if "--json" in flags else [])]
            result = cli(*args, env={"DATABASE_URL": url, "LOG_LEVEL": "DEBUG"})
            shown = result.stdout + result.stderr
            assert SECRET not in shown, (args, shown)
            if command[0] == "db":
                continue  # db commands report these states in their own ways
            assert result.exit_code == expected_exit, (args, result.stderr)


def test_embedded_data_is_private_and_served_on_a_unix_socket_only(pg_server) -> None:
    url = make_url(pg_server.admin_url)
    socket_dir = url.query.get("host")
    if not isinstance(socket_dir, str):
        pytest.skip("the test server is not glisk's embedded server")
    pgdata = (
        os.path.dirname(socket_dir.rstrip("/")) if not socket_dir.endswith("pgdata") else socket_dir
    )
    assert stat.S_IMODE(os.stat(pgdata).st_mode) == 0o700
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo) as conn:
        assert conn.execute("SHOW listen_addresses").fetchone() == ("",)
        directories = conn.execute("SHOW unix_socket_directories").fetchone()
    assert directories is not None
    assert directories[0] == socket_dir
