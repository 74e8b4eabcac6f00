"""The one error boundary: documented exit codes, one line, no traceback, no password.

The settings and connection failures run the real `glisk` executable, as an operator or a shell
script would; the rest run in-process through the same entry point.
"""

import json
import subprocess
import sys
import time

import pytest

from glisk_cli.cli import db as db_module

SECRET = "hunter2-do-not-print"


def assert_one_clean_error_line(stderr: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in stderr


def test_every_invalid_setting_exits_4_with_one_line_each_and_no_secret(run_glisk) -> None:
    result = run_glisk(
        "db",
        "status",
        env={
            "DATABASE_URL": f"mysql://root:{SECRET}@db/glisk",
            "PORT": "not-a-port",
            "GLISK_LEASE": "forever",
        },
    )
    assert result.returncode == 4
    lines = result.stderr.strip().splitlines()
    assert [line.split(":")[1].strip() for line in lines] == [
        "invalid setting DATABASE_URL",
        "invalid setting PORT",
        "invalid setting GLISK_LEASE",
    ]
    assert all(line.startswith("error: ") for line in lines)
    assert SECRET not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_settings_in_dotenv_are_validated_like_the_environment(cli, tmp_path) -> None:
    (tmp_path / ".env").write_text("DB_POOL_SIZE=0\n")
    result = cli("db", "status")
    assert result.exit_code == 4
    assert_one_clean_error_line(result.stderr)
    assert "DB_POOL_SIZE" in result.stderr


def test_unreachable_database_exits_3_within_the_connect_timeout_with_password_masked(
    run_glisk,
) -> None:
    started = time.monotonic()
    result = run_glisk(
        "db",
        "status",
        env={
            "DATABASE_URL": f"postgresql://glisk:{SECRET}@127.0.0.1:9/glisk",
            "GLISK_CONNECT_TIMEOUT": "2s",
        },
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 3
    assert_one_clean_error_line(result.stderr)
    assert "glisk:***@127.0.0.1:9" in result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert elapsed < 2 + 15  # the connect timeout, plus a generous process start-up


def test_json_errors_are_one_object_on_stderr(cli) -> None:
    result = cli(
        "db", "status", "--json", env={"DATABASE_URL": f"postgresql://u:{SECRET}@127.0.0.1:9/x"}
    )
    assert result.exit_code == 3
    document = json.loads(result.stderr)
    assert document["error"]["code"] == "database_unavailable"
    assert "u:***@127.0.0.1:9" in document["error"]["message"]
    report = json.loads(result.stdout)
    assert report["reachable"] is False
    assert report["mode"] == "external"
    assert SECRET not in result.stdout + result.stderr


def test_unknown_option_is_a_usage_error_exit_2(cli) -> None:
    result = cli("db", "status", "--frobnicate")
    assert result.exit_code == 2
    assert_one_clean_error_line(result.stderr)
    assert "--frobnicate" in result.stderr


def test_version_prints_the_package_version(cli) -> None:
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout.startswith("glisk 0.")


def test_module_entry_point_runs_the_same_command() -> None:
    argv = [sys.executable, "-m", "glisk_cli", "--version"]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert result.returncode == 0
    assert result.stdout.startswith("glisk ")


def test_help_imports_no_database_library() -> None:
    probe = (
        "import sys\n"
        "from glisk_cli.cli.app import main\n"
        "for argv in (['--help'], ['db', '--help'], ['tokens', 'claim', '--help']):\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        "heavy = {m.split('.')[0] for m in sys.modules} & {'sqlalchemy', 'psycopg', 'alembic'}\n"
        "print(sorted(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"


def explode() -> None:
    raise RuntimeError("boom at postgresql://u:secret@h/d")


def test_unexpected_errors_exit_1_with_a_debug_hint_and_no_traceback(
    cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_module, "_status_report", explode)
    result = cli("db", "status")
    assert result.exit_code == 1
    assert_one_clean_error_line(result.stderr)
    assert "rerun with --debug" in result.stderr
    assert "secret" not in result.stderr


def test_debug_shows_the_traceback_masked(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db_module, "_status_report", explode)
    result = cli("--debug", "db", "status")
    assert result.exit_code == 1
    assert "Traceback" in result.stderr
    assert "secret" not in result.stderr


def test_no_arguments_prints_help(cli) -> None:
    result = cli()
    assert result.exit_code == 2
    assert "Usage" in result.stdout + result.stderr


@pytest.mark.parametrize("args", [["--help"], ["--help", "state"], ["--debug", "--help", "db"]])
def test_root_help_lists_every_command_whatever_follows(cli, args: list[str]) -> None:
    # A command runs with only its own branch of the tree built; root help must not notice.
    result = cli(*args)
    assert result.exit_code == 0
    for command in ("db", "tokens", "state", "authors", "mints", "dev", "serve"):
        assert f"  {command} " in result.stdout


def test_an_unknown_command_is_a_usage_error_naming_it(cli) -> None:
    result = cli("--debug", "frobnicate")
    assert result.exit_code == 2
    assert "frobnicate" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["state", "--help"],
        ["--debug", "tokens", "claim", "--help"],
        ["tokens", "claim", "--bogus"],
        ["state", "gett"],
        ["serve", "--port", "abc"],
        ["db", "downgrade", "--help"],
        ["state", "--version"],
    ],
)
def test_a_command_behaves_the_same_with_only_its_branch_built(
    cli, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    from glisk_cli.cli import app as app_module

    slim = cli(*args)
    monkeypatch.setattr(app_module, "_app_for", lambda _args: app_module.app)
    full = cli(*args)
    assert (slim.exit_code, slim.stdout, slim.stderr) == (full.exit_code, full.stdout, full.stderr)
