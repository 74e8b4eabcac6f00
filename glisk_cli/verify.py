"""`glisk db verify`: does the live database hold exactly the schema the migrations build?

Three layers, cheapest first:
1. Revision state — no version table, behind head, an unknown revision, several heads: "pending".
2. The live catalog against a reference: inside one transaction that is always rolled back,
   the migrations are run into a scratch schema, and both schemas' catalogs are read the same way
   (tables, storage options, columns with types/defaults/nullability, every constraint's
   definition, every index's definition and validity, triggers and functions, enum labels in
   order). Whatever differs —
   a dropped index, an ON DELETE action changed by hand, an extra enum value, a missing column,
   an index left invalid by a failed CREATE INDEX CONCURRENTLY — is one finding.
3. Alembic's compare_metadata (with type comparison) of the models against the live schema,
   which catches a model changed without a migration.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, text

from glisk_cli import migrations
from glisk_cli.db.handle import reflecting

# Catalog facts of one schema: each query yields (object, value) rows.
_FACT_QUERIES: dict[str, str] = {
    "table": """
        SELECT c.relname, coalesce(array_to_string(c.reloptions, ', '), '')
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = :schema AND c.relkind IN ('r', 'p') AND c.relname <> 'alembic_version'
    """,
    "column": """
        SELECT c.relname || '.' || a.attname,
               format_type(a.atttypid, a.atttypmod)
               || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END
               || coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '')
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE n.nspname = :schema AND c.relkind IN ('r', 'p') AND c.relname <> 'alembic_version'
          AND a.attnum > 0 AND NOT a.attisdropped
    """,
    "constraint": """
        SELECT con.conname, c.relname || ': ' || pg_get_constraintdef(con.oid)
        FROM pg_constraint con
        JOIN pg_class c ON c.oid = con.conrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = :schema AND c.relname <> 'alembic_version'
    """,
    "index": """
        SELECT ci.relname,
               replace(pg_get_indexdef(i.indexrelid), ' ON ' || :schema || '.', ' ON ')
               || CASE WHEN i.indisvalid THEN '' ELSE ' (INVALID)' END
        FROM pg_index i
        JOIN pg_class ci ON ci.oid = i.indexrelid
        JOIN pg_class t ON t.oid = i.indrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        WHERE n.nspname = :schema AND t.relname <> 'alembic_version'
    """,
    "trigger": """
        SELECT t.tgname,
               replace(pg_get_triggerdef(t.oid), ' ON ' || :schema || '.', ' ON ')
               || CASE WHEN t.tgenabled = 'D' THEN ' (DISABLED)' ELSE '' END
        FROM pg_trigger t
        JOIN pg_class c ON c.oid = t.tgrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = :schema AND NOT t.tgisinternal
    """,
    "function": """
        SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
               replace(pg_get_functiondef(p.oid), :schema || '.', '')
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = :schema
    """,
    "enum": """
        SELECT t.typname, string_agg(e.enumlabel, ', ' ORDER BY e.enumsortorder)
        FROM pg_type t
        JOIN pg_enum e ON e.enumtypid = t.oid
        JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE n.nspname = :schema
        GROUP BY t.typname
    """,
}


@dataclass
class Finding:
    object: str
    problem: str  # missing | extra | differs | pending | unknown revision | …
    expected: str | None
    actual: str | None


@dataclass
class VerifyReport:
    status: str  # ok | pending | drift
    current: str | None
    head: str
    findings: list[Finding] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "current": self.current,
            "head": self.head,
            "findings": [vars(finding) for finding in self.findings],
        }


def verify(engine: Engine) -> VerifyReport:
    head = migrations.head_revision()
    with engine.connect() as connection:
        reflecting(connection)
        current = migrations.current_revisions(connection)
        connection.rollback()
        report = VerifyReport(status="ok", current=", ".join(current) or None, head=head)
        report.findings = _revision_findings(current, head)
        if report.findings:
            report.status = "pending"
            return report
        report.findings = _catalog_findings(connection)
        reported = {finding.object for finding in report.findings}
        report.findings += [
            finding for finding in _model_findings(connection) if finding.object not in reported
        ]
        if report.findings:
            report.status = "drift"
    return report


def _revision_findings(current: tuple[str, ...], head: str) -> list[Finding]:
    """Why the database is not at head (no findings when it is)."""
    known = [entry["revision"] for entry in reversed(migrations.history())]  # oldest first
    if len(current) > 1:
        return [Finding("alembic_version", "several heads", head, ", ".join(current))]
    if current and current[0] not in known:
        return [Finding(f"revision {current[0]}", "unknown revision", head, current[0])]
    applied = known.index(current[0]) + 1 if current else 0
    return [Finding(f"revision {rev}", "pending", "applied", None) for rev in known[applied:]]


def _catalog_findings(connection: Connection) -> list[Finding]:
    """Diff the live schema's catalog against a scratch schema built by the migrations."""
    reference_schema = f"glisk_verify_{uuid.uuid4().hex[:12]}"
    with connection.begin() as transaction:
        try:
            live_schema = connection.execute(text("SELECT current_schema()")).scalar_one()
            actual = _facts(connection, live_schema)
            # Without the CREATE privilege this is PermissionDenied, saying so (db/translate.py).
            connection.exec_driver_sql(f'CREATE SCHEMA "{reference_schema}"')
            connection.exec_driver_sql(f'SET LOCAL search_path TO "{reference_schema}"')
            # Inside this open transaction Alembic commits nothing: all of it is rolled back.
            from alembic import command

            command.upgrade(migrations.alembic_config(connection), "head")
            expected = _facts(connection, reference_schema)
        finally:
            transaction.rollback()
    return _diff(expected, actual)


def _facts(connection: Connection, schema: str) -> dict[str, str]:
    """`"<kind> <name>" → definition` for every object of `schema`, schema names left out."""
    connection.exec_driver_sql(f'SET LOCAL search_path TO "{schema}"')
    facts: dict[str, str] = {}
    for kind, query in _FACT_QUERIES.items():
        for name, value in connection.execute(text(query), {"schema": schema}):
            facts[f"{kind} {name}"] = value
    return facts


def _diff(expected: dict[str, str], actual: dict[str, str]) -> list[Finding]:
    findings = []
    for key in sorted(expected.keys() | actual.keys()):
        want, have = expected.get(key), actual.get(key)
        if want == have:
            continue
        problem = "missing" if have is None else "extra" if want is None else "differs"
        findings.append(Finding(key, problem, want, have))
    return findings


def _model_findings(connection: Connection) -> list[Finding]:
    """What Alembic's autogenerate sees between the models and the live schema."""
    import alembic_postgresql_enum  # noqa: F401 — adds enum comparison to autogenerate
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from glisk_cli.models import Base

    context = MigrationContext.configure(connection, opts={"compare_type": True})
    findings = [_describe(diff) for diff in _flatten(compare_metadata(context, Base.metadata))]
    connection.rollback()
    return findings


def _enum_name(table: str, column: str) -> str:
    from glisk_cli.models import Base

    return str(getattr(Base.metadata.tables[table].c[column].type, "name", column))


def _flatten(diffs: list[Any]) -> list[Any]:
    flat: list[Any] = []
    for diff in diffs:
        flat.extend(diff if isinstance(diff, list) else [diff])
    return flat


def _describe(diff: Any) -> Finding:
    """One autogenerate diff tuple as a finding about a named object."""
    if not isinstance(diff, tuple):  # e.g. an enum operation object from alembic-postgresql-enum
        return Finding(f"models {type(diff).__name__}", "differs", str(diff), None)
    action = diff[0]
    if action in ("add_table", "remove_table"):
        name = f"table {diff[1].name}"
    elif action in ("add_column", "remove_column"):
        name = f"column {diff[2]}.{diff[3].name}"
    elif action in ("add_index", "remove_index", "add_constraint", "remove_constraint"):
        kind = "index" if "index" in action else "constraint"
        name = f"{kind} {diff[1].name}"
    elif action in ("add_fk", "remove_fk"):
        name = f"constraint {diff[1].name}"
    elif action.startswith("modify_"):
        return Finding(f"column {diff[2]}.{diff[3]}", action, str(diff[-1]), str(diff[-2]))
    elif action == "change_enum_variants":  # from alembic-postgresql-enum: (old, new, columns)
        _, live_labels, model_labels, columns = diff
        enum_name = _enum_name(columns[0].table_name, columns[0].column_name)
        return Finding(
            f"enum {enum_name}", "differs", ", ".join(model_labels), ", ".join(live_labels)
        )
    else:
        return Finding(f"models {action}", "differs", str(diff[1:]), None)
    # "add" means the models have it and the database does not.
    problem = "missing" if action.startswith("add") else "extra"
    return Finding(name, problem, None, None)
