"""A migrated database that one test after another gets, emptied in between.

Cloning the migrated template is far more work for PostgreSQL than emptying the tables a test
wrote to (bench/README.md, "The test suite"). Each test process therefore keeps one database
and hands it to its tests in turn; after a test that failed, it is dropped. As the next test
takes it, the other sessions on it are ended and the tables the last test wrote to truncated,
and unless everything else is then exactly as a fresh clone has it — the catalog (tables, columns,
types, constraints, indexes, triggers, functions, enum labels, grants, default privileges), the
database's settings and privileges, the migration revision, prepared transactions, and no
planner statistics — it is dropped, and the test gets a fresh clone. A test may therefore change
anything, as on a database of its own. One thing differs from a clone and is allowed to:
truncated indexes were never measured where a clone's were measured empty, and the planner
estimates both alike, from the index's size.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import psycopg

if TYPE_CHECKING:
    from tests.conftest import PostgresServer

# The tables a test wrote to: a table never written to, as in a fresh clone, takes no room.
_WRITTEN = """
SELECT string_agg(quote_ident(relname), ', ') FROM pg_class
WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' AND relname <> 'alembic_version'
  AND pg_relation_size(oid) > 0
"""

# Everything about the database a test could leave changed, besides the rows it wrote; an
# ANALYZE is in it too (pg_stats), as a plan test must not inherit another's statistics.
_FINGERPRINT = """
SELECT md5(string_agg(fact, E'\\n' ORDER BY fact)) FROM (
    SELECT 'namespace ' || nspname || ' ' || coalesce(nspacl::text, '') FROM pg_namespace
        WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'
    UNION ALL
    SELECT 'relation ' || c.relname || ' ' || c.relkind::text || ' '
        || CASE WHEN c.relkind = 'r' THEN c.relpages || ' ' || c.reltuples ELSE '' END || ' '
        || coalesce(c.reloptions::text, '') || ' ' || coalesce(c.relacl::text, '')
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
    UNION ALL
    SELECT 'column ' || attrelid::regclass || '.' || attname || ' '
        || format_type(atttypid, atttypmod) || ' ' || attnotnull || ' ' || attisdropped || ' '
        || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE n.nspname = 'public' AND a.attnum > 0
    UNION ALL
    SELECT 'constraint ' || conname || ' ' || pg_get_constraintdef(c.oid)
        FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
        WHERE n.nspname = 'public'
    UNION ALL
    SELECT 'index ' || pg_get_indexdef(indexrelid) || ' ' || indisvalid FROM pg_index i
        JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public'
    UNION ALL
    SELECT 'trigger ' || pg_get_triggerdef(t.oid) || ' ' || tgenabled::text FROM pg_trigger t
        WHERE NOT tgisinternal
    UNION ALL
    SELECT 'function ' || p.oid::regprocedure || ' ' || md5(p.prosrc) FROM pg_proc p
        JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'
    UNION ALL
    SELECT 'enum ' || enumtypid::regtype || ' ' || enumsortorder || ' ' || enumlabel FROM pg_enum
    UNION ALL
    SELECT 'extension ' || extname || ' ' || extversion FROM pg_extension
    UNION ALL
    SELECT 'default acl ' || defaclacl::text FROM pg_default_acl
    UNION ALL
    SELECT 'setting ' || array_to_string(setconfig, ',') FROM pg_db_role_setting
        WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
    UNION ALL
    SELECT 'database acl ' || coalesce(datacl::text, '') FROM pg_database
        WHERE datname = current_database()
    UNION ALL
    SELECT 'revision ' || version_num FROM alembic_version
    UNION ALL
    SELECT 'type ' || typname || ' ' || typtype::text FROM pg_type
        WHERE typnamespace = 'public'::regnamespace
    UNION ALL
    SELECT 'prepared transaction ' || gid FROM pg_prepared_xacts
        WHERE database = current_database()
    UNION ALL
    SELECT 'statistics ' || tablename || '.' || attname FROM pg_stats WHERE schemaname = 'public'
) AS facts(fact)
"""


class ReusedDatabase:
    """The migrated database of one test process, cloned from `template` when needed."""

    def __init__(self, server: PostgresServer, template: str) -> None:
        self._server, self._template = server, template
        self._name: str | None = None
        self._pristine: str | None = None  # a fresh clone's fingerprint

    def take(self) -> str:
        """The database's URL, for one test: emptied of what the last test wrote and checked as
        this test gets it, so that nothing that happened since the last test ended (an
        autovacuum's ANALYZE) reaches this one."""
        if self._name is not None and not self._reset():
            self.drop()
        if self._name is None:
            self._name = self._server.create_database(template=self._template)
            with self._connection() as conn:
                self._pristine = _fingerprint(conn)
        return self._server.url_for(self._name)

    def give_back(self, *, passed: bool) -> None:
        """The test is over. After one that failed, drop the database: it may have left a
        process behind that would reconnect to it (a runner rides out a database that went
        away)."""
        if not passed:
            self.drop()

    def _reset(self) -> bool:
        """End the other sessions, truncate the tables the last test wrote to; whether the
        database is then as a fresh clone has it."""
        try:
            with self._connection() as conn:
                # Waits (up to 5 s each) until they are gone: the next test sees none of them.
                conn.execute(
                    "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
                conn.execute("SET lock_timeout = '5s'")
                written = conn.execute(_WRITTEN).fetchone()  # type: ignore[arg-type]
                if written and written[0]:
                    conn.execute(f"TRUNCATE {written[0]} CASCADE")  # type: ignore[arg-type]
                return _fingerprint(conn) == self._pristine
        except psycopg.Error:
            return False  # renamed or missing tables, a lock never released: start afresh

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        """A connection to the database that is gone from the server when the block ends: a
        backend outlives its client for a moment, and a test counting the sessions on its
        database must not see it."""
        assert self._name is not None
        with psycopg.connect(self._server.conninfo(self._name), autocommit=True) as conn:
            pid = conn.info.backend_pid
            yield conn
        with psycopg.connect(self._server.conninfo(), autocommit=True) as admin:
            deadline = time.monotonic() + 5
            while (
                time.monotonic() < deadline
                and admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()
            ):
                time.sleep(0.001)

    def drop(self) -> None:
        if self._name is not None:
            name, self._name = self._name, None
            self._server.drop_database(name)


def _fingerprint(conn: psycopg.Connection) -> str:
    row = conn.execute(_FINGERPRINT).fetchone()  # type: ignore[arg-type]
    assert row is not None
    return str(row[0])
