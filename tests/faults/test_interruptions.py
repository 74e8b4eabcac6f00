"""Commands facing a locked table give up with a clear timeout; Ctrl-C in a long seed leaves
whole batches only."""

from __future__ import annotations

import signal
import subprocess
import time

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import GLISK, seed_tokens


def conninfo(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.mark.parametrize(
    ("table", "command"),
    [("tokens_s0", ["tokens", "claim", "--json"]), ("system_state", ["state", "get", "cursor"])],
)
def test_a_command_blocked_by_another_sessions_lock_fails_with_a_timeout_instead_of_hanging(
    cli, migrated_url: str, session_factory, table: str, command: list[str]
) -> None:
    seed_tokens(session_factory, 1)
    with psycopg.connect(conninfo(migrated_url)) as blocker:
        blocker.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")  # type: ignore[arg-type]
        started = time.monotonic()
        result = cli(*command, env={"DATABASE_URL": migrated_url, "GLISK_LOCK_TIMEOUT": "1s"})
        elapsed = time.monotonic() - started
        blocker.rollback()
    assert result.exit_code == 3
    assert "gave up waiting for a lock" in result.stderr
    assert elapsed < 10


def test_ctrl_c_during_a_large_seed_exits_130_leaving_only_whole_batches(
    migrated_url: str, glisk_env: dict[str, str], tmp_path
) -> None:
    env = {**glisk_env, "DATABASE_URL": migrated_url}
    seed = subprocess.Popen(
        [str(GLISK), "dev", "seed", "--tokens", "1000000", "--yes"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with psycopg.connect(conninfo(migrated_url), autocommit=True) as watcher:
        deadline = time.monotonic() + 120
        count = 0
        while count == 0 and time.monotonic() < deadline:  # wait for the first committed batch
            time.sleep(0.2)
            count = watcher.execute("SELECT count(*) FROM tokens_s0").fetchone()[0]  # type: ignore[index]
        seed.send_signal(signal.SIGINT)
        _, stderr = seed.communicate(timeout=60)
        final = watcher.execute("SELECT count(*) FROM tokens_s0").fetchone()[0]  # type: ignore[index]

    assert seed.returncode == 130, stderr
    assert final % 50_000 == 0
    assert 0 < final < 1_000_000
    assert f"interrupted: {final} of 1000000 tokens committed" in stderr
    assert "Traceback" not in stderr
