"""How many statements a one-shot command sends, counted where it matters: on the server.

The test database logs every statement it receives (`log_statement = all`: BEGIN and COMMIT
included, simple and extended protocol alike); each `glisk` process's share of the server log is
counted. On a database a few milliseconds away every statement is a round trip, and behind a
pooler a pooler hop (README, "Running many workers").
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.conftest import PostgresServer, seed_tokens
from tests.pooler.conftest import database_name

# One line per statement, after the database's name (the tests' server logs it:
# tests/shared.py): "LOG:  statement: BEGIN" (simple protocol) or "LOG:  execute <unnamed>:
# SELECT …" (extended protocol).
_STATEMENT = r"\] {database} LOG:\s+(?:statement|execute [^:]*):\s*(.*)"


@pytest.fixture
def statements_of(
    pg_server: PostgresServer, migrated_url: str, run_glisk
) -> Callable[..., list[str]]:
    """Run a glisk command on a database that logs every statement; the statements it sent."""
    log_file = pg_server.log_file
    if log_file is None:
        pytest.skip("counting statements needs the server log of a server the tests started")
    database = database_name(migrated_url)
    with psycopg.connect(pg_server.conninfo(), autocommit=True) as admin:
        statement = sql.SQL("ALTER DATABASE {} SET log_statement = 'all'")
        admin.execute(statement.format(sql.Identifier(database)))

    def statements(*args: str, env: dict[str, str | None] | None = None) -> list[str]:
        start = log_file.stat().st_size
        result = run_glisk(*args, env={"DATABASE_URL": migrated_url, **(env or {})})
        assert result.returncode == 0, result.stderr
        return _logged_since(log_file, start, database)

    return statements


def _logged_since(log_file: Path, offset: int, database: str) -> list[str]:
    """The statements `database` logged past `offset` (other tests' databases share the log)."""
    time.sleep(0.05)  # the server writes its log line as it starts each statement
    with log_file.open("rb") as log:
        log.seek(offset)
        text = log.read().decode(errors="replace")
    statement = re.compile(_STATEMENT.format(database=re.escape(database)))
    return [found[1].strip() for line in text.splitlines() if (found := statement.search(line))]


def test_state_get_sends_at_most_four_statements(statements_of, session_factory) -> None:
    assert statements_of("state", "set", "cursor", "1")  # stores it (and is counted below)

    sent = statements_of("state", "get", "cursor")

    assert len(sent) <= 4, sent
    assert sent[0] == "BEGIN", sent
    assert sent[-1] in ("COMMIT", "ROLLBACK"), sent


def test_state_set_sends_at_most_five_statements(statements_of) -> None:
    sent = statements_of("state", "set", "cursor", '{"block": 1}')

    assert len(sent) <= 5, sent
    assert sent[-1] == "COMMIT", sent


def test_tokens_claim_sends_at_most_five_statements(statements_of, session_factory) -> None:
    seed_tokens(session_factory, 20)
    session_factory.kw["bind"].dispose()  # its connections must not log into the count

    sent = statements_of("tokens", "claim", "--limit", "10", "--json")

    assert len(sent) <= 5, sent
    assert sent[-1] == "COMMIT", sent


def test_the_schema_check_stays_in_the_commands_own_transaction(
    statements_of, pg_server: PostgresServer, migrated_url: str, run_glisk
) -> None:
    sent = statements_of("state", "set", "cursor", "2")
    assert any("alembic_version" in statement for statement in sent), sent

    with psycopg.connect(pg_server.conninfo(database_name(migrated_url))) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0001'")
    behind = run_glisk("state", "get", "cursor", env={"DATABASE_URL": migrated_url})
    assert behind.returncode == 7, behind.stderr
