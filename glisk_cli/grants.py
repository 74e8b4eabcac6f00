"""Least privilege: the GRANT statements that give a worker role and a reader role exactly what
their commands need (README, "Roles"), and applying them as the owner.

- owner: runs migrations and owns the schema (the role that ran `glisk db upgrade`);
- worker: claims, renewals, moves, releases, `mints record`, `state set`/`delete`, `glisk work`:
  SELECT, INSERT and UPDATE on the pipeline tables (DELETE on system_state), SELECT on the
  migration version; on stage_controls SELECT, and UPDATE of the columns a claim and a job's
  cooldown write (the rate's bucket, the cooldown) — it claims under the limits and may not
  change them or pause a stage; LISTEN needs no grant, and no table uses a sequence;
- reader: `tokens stats/list/show`, `state get/list`, `db status`, `top`, `serve`: SELECT only.

Default privileges (granted by the owner, for the owner's future tables) cover the tables later
migrations add.
"""

from __future__ import annotations

from sqlalchemy import Engine, text

from glisk_cli.db.translate import translate_errors
from glisk_cli.errors import InvalidInput, NotFound
from glisk_cli.models import Base, StageControl

SCHEMA = "public"
_WORKER_WRITES = "SELECT, INSERT, UPDATE"
_CONTROLS = StageControl.__tablename__
# What claims (the bucket) and jobs asking for a cooldown write; the limits and pause are not.
_WORKER_CONTROLS = "bucket, bucket_at, cooldown_until, cooldown_reason, updated_at"


def quote(identifier: str) -> str:
    """`identifier` as a quoted SQL identifier, refused when PostgreSQL could not hold it."""
    if not identifier or "\x00" in identifier or len(identifier.encode()) > 63:
        raise InvalidInput(f"{identifier!r} is not a role name (1 to 63 bytes, no NUL)")
    return '"' + identifier.replace('"', '""') + '"'


def grant_statements(database: str, worker: str | None, reader: str | None) -> list[str]:
    """The statements, commented, in the order to run them."""
    tables = [table.name for table in Base.metadata.sorted_tables]
    on_tables = ", ".join(table for table in tables if table != _CONTROLS)
    statements: list[str] = []
    if worker is not None:
        role = quote(worker)
        statements += [
            f"-- worker {worker}: claims, renewals, moves, releases, mints, state, glisk work",
            f"GRANT CONNECT ON DATABASE {quote(database)} TO {role};",
            f"GRANT USAGE ON SCHEMA {SCHEMA} TO {role};",
            f"GRANT {_WORKER_WRITES} ON {on_tables} TO {role};",
            f"GRANT DELETE ON system_state TO {role};",
            f"REVOKE ALL ON {_CONTROLS} FROM {role};",
            f"GRANT SELECT, INSERT (stage), UPDATE ({_WORKER_CONTROLS}) ON {_CONTROLS} TO {role};",
            f"GRANT SELECT ON alembic_version TO {role};",
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA {SCHEMA} "
            f"GRANT {_WORKER_WRITES} ON TABLES TO {role};",
        ]
    if reader is not None:
        role = quote(reader)
        statements += [
            f"-- reader {reader}: stats, list, show, state get, db status, top, serve",
            f"GRANT CONNECT ON DATABASE {quote(database)} TO {role};",
            f"GRANT USAGE ON SCHEMA {SCHEMA} TO {role};",
            f"GRANT SELECT ON ALL TABLES IN SCHEMA {SCHEMA} TO {role};",
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA {SCHEMA} GRANT SELECT ON TABLES TO {role};",
        ]
    return statements


def apply(engine: Engine, statements: list[str], roles: list[str]) -> None:
    """Run `statements` in one transaction (as the role `engine` connects as: the owner), after
    checking that each of `roles` exists (NotFound naming those that do not)."""
    with translate_errors(), engine.begin() as connection:
        present = connection.execute(
            text("SELECT rolname FROM pg_roles WHERE rolname = ANY(:roles)"), {"roles": roles}
        )
        missing = sorted(set(roles) - set(present.scalars()))
        if missing:
            named = ", ".join(f'"{role}"' for role in missing)
            raise NotFound(
                f"no such role: {named}",
                hint="create it first (CREATE ROLE name LOGIN PASSWORD '...'), then apply again",
            )
        for statement in statements:
            if not statement.startswith("--"):
                connection.exec_driver_sql(statement)
