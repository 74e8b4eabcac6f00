"""The built wheel carries its migrations: an installed glisk, run from another directory,
upgrades and verifies a database. Slow (it builds and installs), so it runs as its own step:
`uv run pytest -m packaging`."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.packaging


def run(*argv: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{argv}: {result.stderr}"
    return result.stdout


def test_installed_wheel_upgrades_and_verifies_from_another_directory(
    tmp_path: Path, database_url: str, glisk_env: dict[str, str]
) -> None:
    uv = shutil.which("uv")
    assert uv, "uv is needed to build the wheel"
    dist = tmp_path / "dist"
    run(uv, "build", "--wheel", "--out-dir", str(dist), cwd=REPOSITORY)
    [wheel] = dist.glob("glisk_cli-*.whl")
    venv = tmp_path / "venv"
    run(uv, "venv", "--python", sys.executable, str(venv), cwd=tmp_path)
    run(uv, "pip", "install", "--python", str(venv / "bin" / "python"), str(wheel), cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**glisk_env, "DATABASE_URL": database_url}
    glisk = str(venv / "bin" / "glisk")

    upgraded = json.loads(run(glisk, "db", "upgrade", "--json", cwd=elsewhere, env=env))
    verified = json.loads(run(glisk, "db", "verify", "--json", cwd=elsewhere, env=env))

    assert upgraded["after"] == "0011"
    assert verified["status"] == "ok"
    assert "_alembic" in run(
        str(venv / "bin" / "python"),
        "-c",
        "from glisk_cli.migrations import script_location; print(script_location())",
        cwd=elsewhere,
    )
