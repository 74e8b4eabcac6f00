"""The models load on first use (docs/architecture.md, "A one-shot command loads what it uses"):
commands that send driver SQL only never declare a table, and whatever asks for the models —
Alembic, `glisk db verify`, autogenerate — still sees every table.

Each check runs in a fresh process: in this one, earlier tests have loaded every model already.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from tests.conftest import seed_tokens

TABLES = [
    "authors",
    "image_generation_jobs",
    "ipfs_upload_records",
    "mint_events",
    "reveal_transactions",
    "stage_controls",
    "system_state",
    "tokens_s0",
]


def _python(code: str, env: dict[str, str], cwd: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_models_metadata_holds_every_table_however_the_models_are_first_reached(
    glisk_env: dict[str, str], tmp_path: Path
) -> None:
    for first in ("", "import glisk_cli.models.token", "from glisk_cli.models import Token"):
        code = f"{first}\nfrom glisk_cli.models import Base\nprint(*sorted(Base.metadata.tables))"
        assert _python(code, glisk_env, tmp_path).split() == TABLES, first


def test_autogenerate_in_a_fresh_process_finds_the_migrated_schema_identical(
    migrated_url: str, glisk_env: dict[str, str], tmp_path: Path
) -> None:
    code = (
        "import alembic_postgresql_enum\n"
        "from alembic.autogenerate import compare_metadata\n"
        "from alembic.runtime.migration import MigrationContext\n"
        "from sqlalchemy import create_engine\n"
        "from glisk_cli.models import Base\n"
        f"engine = create_engine({migrated_url!r})\n"
        "with engine.connect() as connection:\n"
        "    context = MigrationContext.configure(connection, opts={'compare_type': True})\n"
        "    print(len(compare_metadata(context, Base.metadata)))\n"
    )
    assert _python(code, glisk_env, tmp_path).strip() == "0"


def test_db_upgrade_then_verify_in_fresh_processes_see_every_table(
    database_url: str, run_glisk
) -> None:
    env = {"DATABASE_URL": database_url}
    upgraded = run_glisk("db", "upgrade", env=env)
    assert upgraded.returncode == 0, upgraded.stderr

    verified = run_glisk("db", "verify", "--json", env=env)

    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["findings"] == []
    conninfo = make_url(database_url).set(drivername="postgresql")
    with psycopg.connect(conninfo.render_as_string(hide_password=False)) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        ).fetchall()
    assert [row[0] for row in rows] == sorted([*TABLES, "alembic_version"])


def test_state_get_tokens_claim_and_tokens_why_declare_no_model(
    migrated_url: str, session_factory, glisk_env: dict[str, str], tmp_path: Path
) -> None:
    seed_tokens(session_factory, 3)
    code = (
        "import sys\n"
        "from glisk_cli.cli.app import run\n"
        "assert run(['state', 'set', 'cursor', '1']) == 0\n"
        "assert run(['state', 'get', 'cursor']) == 0\n"
        "assert run(['tokens', 'claim', '--limit', '2', '--json']) == 0\n"
        "assert run(['tokens', 'why', '3', '--json']) == 0\n"
        "print(sorted(name for name in sys.modules if name.startswith('glisk_cli.models.')))\n"
    )
    output = _python(code, {**glisk_env, "DATABASE_URL": migrated_url}, tmp_path)
    assert output.splitlines()[-1] == "['glisk_cli.models.literals']"
