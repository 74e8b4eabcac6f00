"""The embedded server: zero setup, shared by concurrent starts, recovered after kill -9,
stoppable, refused when DATABASE_URL is set, and never loosening a home directory's mode.
"""

import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from glisk_cli.embedded import EmbeddedServer, default_data_dir
from glisk_cli.embedded.processes import is_alive, is_postgres
from tests import shared
from tests.conftest import glisk_at_once, new_embedded_server

IS_ROOT = os.geteuid() == 0


@pytest.fixture
def new_data_dir() -> Iterator[EmbeddedServer]:
    """A server whose data directory is empty: its first start initializes it."""
    server, data_dir = new_embedded_server()
    yield server
    server.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def embedded() -> Iterator[EmbeddedServer]:
    """A server whose data directory was initialized and stopped, as after `glisk db stop`."""
    server, data_dir = new_embedded_server()
    data_dir.rmdir()
    server = shared.initialized_cluster_copy(data_dir)
    yield server
    server.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


conninfo = shared.server_conninfo


def test_two_processes_starting_at_once_share_one_server(
    new_data_dir: EmbeddedServer, glisk_env: dict[str, str], tmp_path: Path
) -> None:
    embedded = new_data_dir
    env = {**glisk_env, "GLISK_DATA_DIR": str(embedded.data_dir)}
    results = glisk_at_once(2, "db", "start", "--json", env=env, cwd=tmp_path)
    assert [result.returncode for result in results] == [0, 0], results
    reports = [json.loads(result.stdout) for result in results]
    assert reports[0]["pid"] == reports[1]["pid"] == embedded.state().pid
    assert all(report["reachable"] and report["running"] for report in reports)
    assert reports[0]["mode"] == "embedded"
    assert reports[0]["data_dir"] == str(embedded.data_dir)


def test_server_killed_with_sigkill_is_recovered_by_the_next_command_with_data_intact(
    embedded: EmbeddedServer, cli
) -> None:
    embedded.ensure_running()
    with psycopg.connect(conninfo(embedded), autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (value text)")
        conn.execute("INSERT INTO kept VALUES ('survives kill -9')")
    killed_pid = embedded.state().pid
    assert killed_pid is not None
    os.kill(killed_pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while embedded.state().running and time.monotonic() < deadline:
        time.sleep(0.05)

    result = cli("db", "status", "--json", env={"GLISK_DATA_DIR": str(embedded.data_dir)})

    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["running"] is True
    assert report["pid"] != killed_pid
    with psycopg.connect(conninfo(embedded)) as conn:
        assert conn.execute("SELECT value FROM kept").fetchall() == [("survives kill -9",)]


def test_a_zombie_postmaster_is_not_taken_for_a_live_server(tmp_path: Path) -> None:
    # A child named like the server that exits and is not waited for: a zombie, as a postmaster
    # killed with SIGKILL stays until its parent reaps it (forever, under a PID 1 that never does).
    fake = tmp_path / "postgres"
    shutil.copy("/bin/true", fake)
    child = subprocess.Popen([str(fake)])
    try:
        deadline = time.monotonic() + 10
        while _process_state(child.pid) != "Z" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _process_state(child.pid) == "Z"
        assert is_alive(child.pid)  # it still has its pid…
        assert not is_postgres(child.pid)  # …but it is no server
    finally:
        child.wait()


def test_a_server_of_another_data_directory_is_not_this_ones(embedded: EmbeddedServer) -> None:
    embedded.ensure_running()
    pid = embedded.state().pid
    assert pid is not None
    assert is_postgres(pid, embedded.pgdata)
    assert not is_postgres(pid, embedded.pgdata.parent / "elsewhere")


@pytest.mark.soak  # two crash recoveries of the postmaster, seconds each
def test_a_command_right_after_kill_9_of_the_postmaster_succeeds_with_the_data_intact(
    embedded: EmbeddedServer, run_glisk
) -> None:
    env = {"GLISK_DATA_DIR": str(embedded.data_dir)}
    embedded.ensure_running()
    with psycopg.connect(conninfo(embedded), autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (value text)")
        conn.execute("INSERT INTO kept VALUES ('survives kill -9')")
    # Twice: the second kill hits a server that the first recovery started.
    for _ in range(2):
        pid = embedded.state().pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        # At once: the postmaster is a zombie or on its way out, its pid file still there.
        result = run_glisk("db", "status", "--json", env=env)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["reachable"] is True
        assert embedded.state().pid != pid
        with psycopg.connect(conninfo(embedded)) as conn:
            assert conn.execute("SELECT value FROM kept").fetchall() == [("survives kill -9",)]


def _process_state(pid: int) -> str:
    stat_line = Path(f"/proc/{pid}/stat").read_text()
    return stat_line[stat_line.rfind(")") + 2]


def test_stop_is_refused_while_a_client_is_connected_then_stops_and_is_idempotent(
    embedded: EmbeddedServer, cli
) -> None:
    embedded.ensure_running()
    env: dict[str, str | None] = {"GLISK_DATA_DIR": str(embedded.data_dir)}
    with psycopg.connect(conninfo(embedded)):  # a glisk work or top, say
        refused = cli("db", "stop", env=env)
        assert refused.exit_code == 6, refused.stderr
        assert "1 other session(s) are connected" in refused.stderr
        assert embedded.state().running is True
    deadline = time.monotonic() + 5  # the server sees a closed session go a moment later
    while embedded.clients() and time.monotonic() < deadline:
        time.sleep(0.02)

    first = cli("db", "stop", "--json", env=env)
    second = cli("db", "stop", "--json", env=env)

    assert (first.exit_code, second.exit_code) == (0, 0)
    assert json.loads(first.stdout)["stopped"] is True
    assert json.loads(second.stdout)["stopped"] is False
    assert embedded.state().running is False

    embedded.ensure_running()
    with psycopg.connect(conninfo(embedded)):
        forced = cli("db", "stop", "--force", env=env)
    assert forced.exit_code == 0, forced.stderr
    assert embedded.state().running is False


@pytest.mark.parametrize("verb", ["start", "stop"])
def test_start_and_stop_refuse_with_exit_2_when_database_url_is_set(cli, verb: str) -> None:
    result = cli("db", verb, env={"DATABASE_URL": "postgresql://u:pw@db.invalid/glisk"})
    assert result.exit_code == 2
    assert "DATABASE_URL is set" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_private_home_directory_keeps_mode_0700_after_the_embedded_server_started(
    cli, glisk_env: dict[str, str]
) -> None:
    home = Path(glisk_env["HOME"])
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    if IS_ROOT:
        # As root the default is system-wide (/var/lib/glisk), which tests must not touch: the
        # data directory goes to a fresh temporary directory instead, outside the private HOME.
        data_dir = Path(tempfile.mkdtemp(prefix="glisk-test-home-")) / "glisk"
        data_dir.parent.chmod(0o755)
        env: dict[str, str | None] = {"GLISK_DATA_DIR": str(data_dir)}
    else:
        data_dir = Path(glisk_env["XDG_DATA_HOME"]) / "glisk"
        env = {"GLISK_DATA_DIR": None}  # the per-user default, below the private HOME
    # Only the ancestors that exist yet have a mode to keep; the rest glisk makes, privately.
    existing = [p for p in (data_dir, *data_dir.parents) if p.exists()]
    before = {path: stat.S_IMODE(path.stat().st_mode) for path in existing}
    server = EmbeddedServer(data_dir)
    try:
        result = cli("db", "start", "--json", env=env)
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout)["data_dir"] == str(data_dir)
        after = {path: stat.S_IMODE(path.stat().st_mode) for path in before}
        assert after == before
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
        created = [p for p in (data_dir, *data_dir.parents) if p not in before]
        if not IS_ROOT:  # as root the data directory must be reachable by the server's user
            assert {p: stat.S_IMODE(p.stat().st_mode) for p in created} == dict.fromkeys(
                created, 0o700
            )
        assert stat.S_IMODE(server.pgdata.stat().st_mode) == 0o700
    finally:
        server.stop()
        shutil.rmtree(data_dir.parent if IS_ROOT else data_dir, ignore_errors=True)


@pytest.mark.skipif(not IS_ROOT, reason="only root runs PostgreSQL as another user")
def test_root_refuses_a_data_directory_the_server_user_cannot_reach(
    cli, glisk_env: dict[str, str]
) -> None:
    home = Path(glisk_env["HOME"])
    result = cli("db", "start", env={"GLISK_DATA_DIR": str(home / "glisk")})
    assert result.exit_code == 4
    assert "not reachable" in result.stderr
    assert stat.S_IMODE(home.stat().st_mode) == 0o700


def test_default_data_directory_is_per_user_and_never_in_a_home_directory_for_root() -> None:
    assert default_data_dir(is_root=True) == Path("/var/lib/glisk")
    assert "glisk" in default_data_dir(is_root=False).parts
    assert default_data_dir(is_root=False) != Path("/var/lib/glisk")


@pytest.mark.skipif(IS_ROOT, reason="root may write anywhere: the ordinary user's case")
def test_a_data_directory_below_one_the_user_cannot_write_is_refused_with_exit_4(
    cli, tmp_path: Path
) -> None:
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o555)
    try:
        result = cli("db", "start", env={"GLISK_DATA_DIR": str(closed / "glisk")})
    finally:
        closed.chmod(0o755)
    assert result.exit_code == 4, result.stderr
    assert result.stderr.count("\n") == 1
    assert "not writable by this user" in result.stderr
    assert "GLISK_DATA_DIR" in result.stderr


@pytest.mark.skipif(IS_ROOT, reason="root may read anything: the ordinary user's case")
@pytest.mark.parametrize("command", [("db", "stop"), ("db", "start"), ("state", "get", "k")])
def test_another_users_data_directory_is_refused_with_exit_4_not_a_traceback(
    cli, tmp_path: Path, command: tuple[str, ...]
) -> None:
    # What another user's embedded server looks like to this one: a directory it cannot enter.
    theirs = tmp_path / "theirs"
    (theirs / "pgdata").mkdir(parents=True)
    (theirs / "pgdata" / "postmaster.pid").write_text("12345\n")
    theirs.chmod(0)
    try:
        result = cli(*command, env={"GLISK_DATA_DIR": str(theirs)})
    finally:
        theirs.chmod(0o700)
    assert result.exit_code == 4, result.stderr
    assert result.stderr.count("\n") == 1
    assert "is not this user's" in result.stderr
