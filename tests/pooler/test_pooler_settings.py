"""GLISK_POOLER and DATABASE_DIRECT_URL as settings: validated, shown masked, carried through."""

from __future__ import annotations

import json

from glisk_cli.config import Settings
from glisk_cli.db import Database

UNREACHABLE = "postgresql://worker:s3cret-pool@127.0.0.1:1/glisk"
UNREACHABLE_DIRECT = "postgresql://owner:s3cret-direct@127.0.0.1:2/glisk"


def test_an_unknown_pooler_mode_exits_4_naming_the_variable(cli) -> None:
    result = cli("state", "get", "k", env={"GLISK_POOLER": "session"})

    assert result.exit_code == 4
    assert result.stderr.startswith("error: invalid setting GLISK_POOLER")


def test_status_shows_the_pooler_mode_and_both_urls_masked(cli) -> None:
    env = {
        "DATABASE_URL": UNREACHABLE,
        "DATABASE_DIRECT_URL": UNREACHABLE_DIRECT,
        "GLISK_POOLER": "Transaction",
        "GLISK_CONNECT_TIMEOUT": "2s",
    }

    result = cli("db", "status", "--json", env=env)

    assert result.exit_code == 3  # nothing listens there; the report is printed all the same
    report = json.loads(result.stdout)
    assert report["pooler"] == "transaction"
    assert report["url"] == "postgresql+psycopg://worker:***@127.0.0.1:1/glisk"
    assert report["direct_url"] == "postgresql+psycopg://owner:***@127.0.0.1:2/glisk"
    assert "s3cret" not in result.stdout + result.stderr
    assert {"mode", "data_dir", "running", "reachable", "revision", "head"} <= set(report)


def test_the_library_entry_point_honours_the_pooler_mode() -> None:
    settings = Settings(
        database_url=UNREACHABLE,  # type: ignore[arg-type]
        database_direct_url=UNREACHABLE_DIRECT,  # type: ignore[arg-type]
        glisk_pooler="transaction",
    )

    database = Database.from_settings(settings)

    assert database.pooler == "transaction"
    assert database.transaction_settings[0] == "set_config('TimeZone', 'UTC', true)"
    assert database.masked_direct_url == "postgresql+psycopg://owner:***@127.0.0.1:2/glisk"
    assert database.can_listen
    database.dispose()
