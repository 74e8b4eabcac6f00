"""`glisk db upgrade|downgrade|current|history|verify|status` against a real PostgreSQL."""

import json
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import glisk_at_once


def psql(url: str, statement: str) -> None:
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(statement)  # type: ignore[arg-type]  # test-only literal SQL


def test_verify_reports_ok_with_exit_0_on_a_fresh_head(cli, migrated_url: str) -> None:
    result = cli("db", "verify", "--json", env={"DATABASE_URL": migrated_url})
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {
        "status": "ok",
        "current": "0011",
        "head": "0011",
        "findings": [],
    }


def test_verify_exits_7_on_an_empty_database_naming_the_pending_revisions(
    cli, database_url: str
) -> None:
    result = cli("db", "verify", "--json", env={"DATABASE_URL": database_url})
    assert result.exit_code == 7
    report = json.loads(result.stdout)
    assert report["status"] == "pending"
    assert report["current"] is None
    assert [f["object"] for f in report["findings"]] == [
        "revision 0001",
        "revision 0002",
        "revision 0003",
        "revision 0004",
        "revision 0005",
        "revision 0006",
        "revision 0007",
        "revision 0008",
        "revision 0011",
    ]
    assert "glisk db upgrade" in json.loads(result.stderr)["error"]["hint"]


@pytest.mark.parametrize(
    ("damage", "object_name", "problem"),
    [
        (
            "DROP INDEX ix_tokens_s0_generation_queue",
            "index ix_tokens_s0_generation_queue",
            "missing",
        ),
        (
            "ALTER TABLE tokens_s0 DROP CONSTRAINT fk_tokens_s0_author_id_authors, "
            "ADD CONSTRAINT fk_tokens_s0_author_id_authors FOREIGN KEY (author_id) "
            "REFERENCES authors(id) ON DELETE CASCADE",
            "constraint fk_tokens_s0_author_id_authors",
            "differs",
        ),
        ("ALTER TYPE token_status ADD VALUE 'archived'", "enum token_status", "differs"),
        ("ALTER TABLE tokens_s0 DROP COLUMN image_path", "column tokens_s0.image_path", "missing"),
        ("CREATE INDEX ix_extra ON system_state (updated_at)", "index ix_extra", "extra"),
        (
            "DROP TRIGGER tokens_s0_notify_claimable_insert ON tokens_s0",
            "trigger tokens_s0_notify_claimable_insert",
            "missing",
        ),
    ],
    ids=[
        "dropped-index",
        "changed-fk-action",
        "extra-enum-value",
        "dropped-column",
        "extra-index",
        "dropped-trigger",
    ],
)
def test_verify_exits_8_with_a_finding_naming_the_drifted_object(
    cli, migrated_url: str, damage: str, object_name: str, problem: str
) -> None:
    psql(migrated_url, damage)
    result = cli("db", "verify", "--json", env={"DATABASE_URL": migrated_url})
    assert result.exit_code == 8, result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "drift"
    matching = [f for f in report["findings"] if f["object"] == object_name]
    assert len(matching) == 1, report["findings"]
    assert matching[0]["problem"] == problem


def test_verify_leaves_no_trace_of_its_reference_schema(cli, migrated_url: str) -> None:
    cli("db", "verify", env={"DATABASE_URL": migrated_url})
    conninfo = make_url(migrated_url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(conninfo) as conn:
        schemas = conn.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'glisk_verify_%'"
        ).fetchone()
    assert schemas == (0,)


def test_upgrade_reports_what_it_applied_and_how_long_it_took(cli, database_url: str) -> None:
    env: dict[str, str | None] = {"DATABASE_URL": database_url}
    first = cli("db", "upgrade", "--json", env=env)
    second = cli("db", "upgrade", env=env)

    assert first.exit_code == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["before"] is None
    assert report["after"] == "0011"
    assert [step["revision"] for step in report["applied"]] == [
        "0001",
        "0002",
        "0003",
        "0004",
        "0005",
        "0006",
        "0007",
        "0008",
        "0011",
    ]
    assert report["seconds"] > 0
    assert second.exit_code == 0
    assert "nothing to do" in second.stdout


def test_upgrade_sql_prints_the_ddl_without_touching_a_database(cli) -> None:
    unreachable = {"DATABASE_URL": "postgresql://u:pw@127.0.0.1:9/none"}
    result = cli("db", "upgrade", "--sql", env=unreachable)
    assert result.exit_code == 0, result.stderr
    assert "CREATE TYPE token_status AS ENUM" in result.stdout
    assert "CREATE TABLE tokens_s0" in result.stdout


def test_downgrade_without_a_terminal_or_yes_refuses_and_changes_nothing(
    cli, migrated_url: str
) -> None:
    result = cli("db", "downgrade", "base", env={"DATABASE_URL": migrated_url})
    assert result.exit_code == 2
    assert "--yes" in result.stderr
    after = cli("db", "current", "--json", env={"DATABASE_URL": migrated_url})
    assert json.loads(after.stdout)["current"] == "0011"


def test_relative_downgrade_minus_one_with_yes_is_a_revision_not_an_option(
    cli, migrated_url: str
) -> None:
    env: dict[str, str | None] = {"DATABASE_URL": migrated_url}
    result = cli("db", "downgrade", "-1", "--yes", "--json", env=env)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["after"] == "0008"
    current = json.loads(cli("db", "current", "--json", env=env).stdout)
    assert current == {"current": "0008", "head": "0011", "at_head": False}


def test_unknown_revision_is_invalid_input(cli, migrated_url: str) -> None:
    result = cli("db", "upgrade", "deadbeef", env={"DATABASE_URL": migrated_url})
    assert result.exit_code == 2
    assert "deadbeef" in result.stderr


def test_history_lists_migrations_without_a_database(cli) -> None:
    unreachable = {"DATABASE_URL": "postgresql://u:pw@127.0.0.1:9/none"}
    result = cli("db", "history", "--json", env=unreachable)
    assert result.exit_code == 0
    entries = json.loads(result.stdout)
    assert [(e["revision"], e["is_head"]) for e in entries] == [
        ("0011", True),
        ("0008", False),
        ("0007", False),
        ("0006", False),
        ("0005", False),
        ("0004", False),
        ("0003", False),
        ("0002", False),
        ("0001", False),
    ]


def test_status_reports_the_revision_against_the_head(cli, migrated_url: str) -> None:
    result = cli("db", "status", "--json", env={"DATABASE_URL": migrated_url})
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert (report["revision"], report["head"], report["mode"]) == ("0011", "0011", "external")


def test_four_upgrades_started_at_once_all_succeed_and_build_the_schema_once(
    database_url: str, glisk_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**glisk_env, "DATABASE_URL": database_url}
    results = glisk_at_once(4, "db", "upgrade", "--json", env=env, cwd=tmp_path)

    assert [result.returncode for result in results] == [0, 0, 0, 0], results
    reports = [json.loads(result.stdout) for result in results]
    applied = [step["revision"] for report in reports for step in report["applied"]]
    assert sorted(applied) == [*(f"000{n}" for n in range(1, 9)), "0011"]
    assert {report["after"] for report in reports} == {"0011"}
