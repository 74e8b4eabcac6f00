"""Least privilege: `glisk db grants` gives a worker role and a reader role exactly what their
commands need; each is proven by running those commands as it, and a sample of what it may not
do ends in exit 4 (`permission_denied`) naming the role and the object, never a driver message."""

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from tests.conftest import PostgresServer, seed_tokens
from tests.health.conftest import start_serve

PASSWORD = "role-pw-7c2d"


@dataclass
class Roles:
    worker: str
    reader: str
    nobody: str  # exists, may log in, has no grants
    urls: dict[str, str]
    owner_url: str


@pytest.fixture
def roles(pg_server: PostgresServer, migrated_url: str, cli) -> Iterator[Roles]:
    suffix = uuid.uuid4().hex[:8]
    names = {kind: f"glisk_{kind}_{suffix}" for kind in ("worker", "reader", "nobody")}
    database = make_url(migrated_url).database
    assert database
    with psycopg.connect(pg_server.conninfo(database), autocommit=True) as admin:
        for name in names.values():
            admin.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(name), sql.Literal(PASSWORD)
                )
            )
    urls = {
        kind: make_url(migrated_url).set(username=name, password=PASSWORD).render_as_string(False)
        for kind, name in names.items()
    }
    granted = cli(
        "db",
        "grants",
        "--worker",
        names["worker"],
        "--reader",
        names["reader"],
        "--apply",
        env={"DATABASE_URL": migrated_url},
    )
    assert granted.exit_code == 0, granted.stderr
    yield Roles(names["worker"], names["reader"], names["nobody"], urls, migrated_url)
    with psycopg.connect(pg_server.conninfo(database), autocommit=True) as admin:
        for name in names.values():
            admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def as_role(cli, roles: Roles, kind: str, *args: str):
    return cli(*args, env={"DATABASE_URL": roles.urls[kind]})


def test_grants_prints_the_statements_for_each_role_without_touching_the_database(cli) -> None:
    unreachable = {"DATABASE_URL": "postgresql://u:pw@127.0.0.1:9/pipeline"}
    result = cli("db", "grants", "--worker", "w", "--reader", "r", "--json", env=unreachable)
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["applied"] is False
    statements = report["statements"]
    assert 'GRANT CONNECT ON DATABASE "pipeline" TO "w";' in statements
    assert any(
        s.startswith("GRANT SELECT, INSERT, UPDATE ON ") and "tokens_s0" in s for s in statements
    )
    assert 'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "r";' in statements
    assert any("ALTER DEFAULT PRIVILEGES" in s and '"r"' in s for s in statements)
    nothing = cli("db", "grants", env=unreachable)
    assert nothing.exit_code == 2


def test_the_worker_role_runs_every_worker_command(
    cli, roles: Roles, session_factory, tmp_path: Path
) -> None:
    seed_tokens(session_factory, 3)
    mints = tmp_path / "mints.jsonl"  # the load ANALYZEs tables the worker role does not own
    mint = {
        "tx_hash": "0x" + "cd" * 32,
        "log_index": 0,
        "block_number": 2,
        "block_timestamp": 1767225600,
        "token_id": 10,
        "author": "0x00000000000000000000000000000000000000aa",
        "minter": "0x" + "22" * 20,
    }
    mints.write_text(json.dumps(mint) + "\n")
    claimed = as_role(cli, roles, "worker", "tokens", "claim", "--limit", "2", "--json")
    assert claimed.exit_code == 0, claimed.stderr
    lease_id = json.loads(claimed.stdout)[0]["lease_id"]
    for args in (
        ("tokens", "renew", "--lease-id", lease_id),
        ("tokens", "mark", "1", "uploading", "--image-path", "i.png", "--lease-id", lease_id),
        ("tokens", "release", "2", "--lease-id", lease_id, "--retry-in", "1m"),
        ("state", "set", "cursor", "42"),
        ("state", "get", "cursor"),
        (
            "mints",
            "record",
            "--tx-hash",
            "0x" + "ab" * 32,
            "--log-index",
            "0",
            "--block-number",
            "1",
            "--block-timestamp",
            "2026-01-01T00:00:00Z",
            "--token-id",
            "9",
            "--author",
            "0x00000000000000000000000000000000000000aa",
            "--minter",
            "0x" + "22" * 20,
        ),
        ("mints", "record", "--jsonl", str(mints)),
        ("tokens", "stats"),
    ):
        result = as_role(cli, roles, "worker", *args)
        assert result.exit_code == 0, (args, result.stderr)


def test_the_reader_role_reads_everything(cli, roles: Roles, session_factory) -> None:
    seed_tokens(session_factory, 2)
    for args in (
        ("tokens", "stats"),
        ("tokens", "list"),
        ("tokens", "show", "1"),
        ("state", "list"),
        ("authors", "list"),
        ("db", "status"),
    ):
        result = as_role(cli, roles, "reader", *args)
        assert result.exit_code == 0, (args, result.stderr)


@pytest.mark.parametrize(
    ("args", "what"),
    [
        (("state", "set", "k", "2"), "INSERT system_state"),
        (("tokens", "claim"), "UPDATE tokens_s0"),
        (("tokens", "mark", "1", "failed"), "UPDATE tokens_s0"),
    ],
)
def test_the_reader_may_not_write_and_is_told_which_role_it_needs(
    cli, roles: Roles, session_factory, args: tuple[str, ...], what: str
) -> None:
    seed_tokens(session_factory, 1)
    result = as_role(cli, roles, "reader", *args, "--json")
    assert result.exit_code == 4, result.stderr
    error = json.loads(result.stderr)["error"]
    assert error["code"] == "permission_denied"
    assert error["message"] == f'role "{roles.reader}" may not {what}'
    assert "worker grants" in error["hint"]
    assert "psycopg" not in result.stderr
    assert "Traceback" not in result.stderr


def test_the_worker_may_not_change_a_stage_s_limits_or_pause_it(cli, roles: Roles) -> None:
    for args in (
        ("stage", "pause", "generation", "--reason", "mine"),
        ("stage", "limit", "generation", "--concurrency", "1"),
        ("stage", "limit", "generation", "--rate", "none"),
        ("stage", "resume", "generation"),
    ):
        result = as_role(cli, roles, "worker", *args, "--json")
        assert result.exit_code == 4, (args, result.stderr)
        error = json.loads(result.stderr)["error"]
        assert error["code"] == "permission_denied"
        assert error["message"] == f'role "{roles.worker}" may not UPDATE stage_controls'
        assert error["hint"] == "change a stage's controls as the owner: see glisk db grants"
        assert "psycopg" not in result.stderr
        assert "Traceback" not in result.stderr
    listed = cli("stage", "list", "--json", env={"DATABASE_URL": roles.owner_url})
    [generation, *_] = json.loads(listed.stdout)
    assert (generation["state"], generation["concurrency"]["limit"]) == ("running", None)


def test_the_worker_claims_under_the_limits_the_owner_set(
    cli, roles: Roles, session_factory
) -> None:
    seed_tokens(session_factory, 5)
    owner = {"DATABASE_URL": roles.owner_url}
    limited = cli("stage", "limit", "generation", "--concurrency", "1", "--rate", "10/s", env=owner)
    assert limited.exit_code == 0, limited.stderr
    first = as_role(cli, roles, "worker", "tokens", "claim", "--limit", "2", "--json")
    assert first.exit_code == 0, first.stderr
    assert [token["token_id"] for token in json.loads(first.stdout)] == [1, 2]  # one job
    second = as_role(cli, roles, "worker", "tokens", "claim", "--limit", "2", "--json")
    assert (second.exit_code, json.loads(second.stdout)) == (0, [])  # at the limit
    # A job that hits a service's limit cools the stage down: that much a worker may write.
    cooled = as_role(cli, roles, "worker", "stage", "cooldown", "generation", "30s")
    assert cooled.exit_code == 0, cooled.stderr


def test_the_reader_sees_the_stages_and_why_a_token_waits(
    cli, roles: Roles, session_factory
) -> None:
    seed_tokens(session_factory, 2)
    owner = {"DATABASE_URL": roles.owner_url}
    assert cli("stage", "pause", "generation", env=owner).exit_code == 0
    listed = as_role(cli, roles, "reader", "stage", "list", "--json")
    assert listed.exit_code == 0, listed.stderr
    assert json.loads(listed.stdout)[0]["state"] == "paused"
    why = as_role(cli, roles, "reader", "tokens", "why", "1", "--json")
    assert why.exit_code == 0, why.stderr
    assert json.loads(why.stdout)["reason"] == "paused"
    denied = as_role(cli, roles, "reader", "stage", "resume", "generation")
    assert denied.exit_code == 4, denied.stderr
    assert f'role "{roles.reader}" may not INSERT stage_controls' in denied.stderr


def test_a_role_without_grants_is_told_so_even_by_db_status(cli, roles: Roles) -> None:
    result = as_role(cli, roles, "nobody", "db", "status")
    assert result.exit_code == 4, result.stderr
    assert f'role "{roles.nobody}" may not SELECT from alembic_version' in result.stderr
    assert result.stderr.count("\n") == 1


def test_grants_apply_names_the_roles_that_do_not_exist_and_grants_nothing(
    cli, roles: Roles
) -> None:
    result = cli(
        "db",
        "grants",
        "--worker",
        roles.worker,
        "--reader",
        "glisk_no_such_reader",
        "--apply",
        env={"DATABASE_URL": roles.owner_url},
    )
    assert result.exit_code == 5, result.stderr
    assert 'no such role: "glisk_no_such_reader"' in result.stderr
    assert "schema" not in result.stderr
    assert result.stdout == ""


def test_verify_as_the_worker_says_it_needs_to_create_a_scratch_schema(cli, roles: Roles) -> None:
    claimed = as_role(cli, roles, "worker", "tokens", "claim", "--json")
    assert claimed.exit_code == 0, claimed.stderr
    result = as_role(cli, roles, "worker", "db", "verify")
    assert result.exit_code == 4, result.stderr
    assert f'role "{roles.worker}" may not create schemas in database' in result.stderr
    assert "may not connect" not in result.stderr


def test_a_role_that_may_not_connect_is_exit_4_not_3(
    cli, roles: Roles, pg_server: PostgresServer
) -> None:
    database = make_url(roles.owner_url).database
    assert database
    with psycopg.connect(pg_server.conninfo(database), autocommit=True) as admin:
        admin.execute(
            sql.SQL("REVOKE CONNECT ON DATABASE {} FROM PUBLIC").format(sql.Identifier(database))
        )
    result = as_role(cli, roles, "nobody", "state", "get", "k")
    assert result.exit_code == 4, result.stderr
    assert f'role "{roles.nobody}" may not connect to database {database}' in result.stderr


def test_serve_as_the_reader_answers_health_and_metrics(
    roles: Roles, glisk_env: dict[str, str], tmp_path: Path
) -> None:
    server = start_serve(tmp_path, {**glisk_env, "DATABASE_URL": roles.urls["reader"]})
    try:
        server.wait_ready()
        assert server.wait_for_status("/health", 200).status == 200
        metrics = server.wait_for_status("/metrics", 200).body.decode()
        assert "glisk_tokens{" in metrics
        assert 'glisk_stage_paused{stage="generation"} 0.0' in metrics
    finally:
        server.stop()
