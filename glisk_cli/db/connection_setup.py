"""What glisk's connections and transactions start with, per pooler mode, at no extra round trip.

Two modes (GLISK_POOLER; docs/architecture.md, "Every transaction runs with fixed settings"):

- `none`: the server is reached directly (or through a session pooler). The time zone and the
  lock and statement timeouts travel as start-up options, set once per connection for free.
- `transaction`: a transaction pooler such as PgBouncer hands each transaction to any server
  connection, and a stock PgBouncer refuses the `options` start-up parameter. Nothing may be
  left on a session: the settings are made per transaction (`set_config(…, true)`, which is
  `SET LOCAL`) in the transaction's first statement, and psycopg prepares no statements (a
  prepared statement lives on one server connection; the next transaction may get another).

SQLAlchemy asks a new engine's first connection four questions (version, default schema,
isolation level, standard_conforming_strings) and probes for hstore, each a statement in a
transaction of its own. `answer_probes_locally` answers them from what psycopg already knows
(the parameters the server reports at start-up) so a one-shot command does not pay for them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from sqlalchemy.engine import Dialect

from glisk_cli.policy import Timeouts

PoolerMode = Literal["none", "transaction"]
POOLER_MODES: tuple[PoolerMode, ...] = ("none", "transaction")


def _milliseconds(limit: timedelta) -> int:
    return max(1, round(limit.total_seconds() * 1000))


def _settings(timeouts: Timeouts) -> list[tuple[str, str]]:
    settings = [("TimeZone", "UTC")]
    for name, limit in (("lock_timeout", timeouts.lock), ("statement_timeout", timeouts.statement)):
        if limit is not None:
            settings.append((name, str(_milliseconds(limit))))
    return settings


def connect_args(pooler: PoolerMode, timeouts: Timeouts) -> dict[str, Any]:
    """psycopg's connection arguments for `pooler` mode."""
    # libpq takes whole seconds and treats anything under 2 as 2.
    arguments: dict[str, Any] = {"connect_timeout": max(2, round(timeouts.connect.total_seconds()))}
    if pooler == "transaction":
        arguments["prepare_threshold"] = None  # never prepare: see the module docstring
    else:
        # Start-up options cost no round trip and survive the pool's resets.
        arguments["options"] = " ".join(f"-c {name}={value}" for name, value in _settings(timeouts))
    return arguments


def transaction_settings(pooler: PoolerMode, timeouts: Timeouts) -> tuple[str, ...]:
    """Select-list items that make the settings for the current transaction only (empty when the
    connection carries them already)."""
    if pooler != "transaction":
        return ()
    return tuple(f"set_config('{name}', '{value}', true)" for name, value in _settings(timeouts))


def answer_probes_locally(dialect: Dialect) -> None:
    """Make `dialect`'s first-connect initialisation send no statement.

    SQLAlchemy's `initialize` still runs (it derives its feature flags from the version); only the
    hooks it calls to ask the server are answered here instead: the version and
    standard_conforming_strings from the start-up parameters psycopg holds, the isolation level as
    PostgreSQL's default, READ COMMITTED (the claim's SKIP LOCKED relies on it anyway), and the
    default schema left unknown until reflection needs it (`handle.reflecting`). The hstore probe
    is switched off where the engine is made (`use_native_hstore=False`).
    """
    # SQLAlchemy has no public switch for these questions: its dialect's own hooks are answered
    # here, on this engine's dialect instance only.
    probes: Any = dialect

    def server_version(connection: Any) -> tuple[int, ...]:
        number = connection.connection.dbapi_connection.info.server_version
        return (number // 10000, number % 10000)  # 160004 is 16.4 (PostgreSQL ≥ 10)

    def backslash_escapes(connection: Any) -> None:
        info = connection.connection.dbapi_connection.info
        probes._backslash_escapes = info.parameter_status("standard_conforming_strings") == b"off"

    probes._get_server_version_info = server_version
    probes._get_default_schema_name = lambda connection: None
    probes.get_default_isolation_level = lambda dbapi_connection: "READ COMMITTED"
    probes._set_backslash_escapes = backslash_escapes
