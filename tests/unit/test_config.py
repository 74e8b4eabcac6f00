"""Settings: environment over `.env` over defaults; every bad value named, none echoed."""

from datetime import timedelta
from pathlib import Path

import pytest

from glisk_cli.config import load_settings
from glisk_cli.errors import ConfigError
from tests.conftest import SETTING_VARIABLES


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in SETTING_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # an empty directory: no .env unless a test writes one


def test_defaults_use_the_embedded_server_and_safe_values() -> None:
    settings = load_settings()
    assert settings.database_url is None
    assert settings.app_env == "development"
    assert settings.port == 8000
    assert settings.glisk_max_attempts == 5
    assert settings.glisk_lease == timedelta(minutes=15)
    assert settings.glisk_connect_timeout == timedelta(seconds=5)


def test_environment_overrides_dotenv_which_overrides_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("PORT=9001\nDB_POOL_SIZE=3\n")
    monkeypatch.setenv("PORT", "9002")
    settings = load_settings()
    assert settings.port == 9002
    assert settings.db_pool_size == 3


def test_database_url_is_normalised_to_psycopg3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://glisk:pw@db:5432/glisk")
    assert load_settings().database_url_value == "postgresql+psycopg://glisk:pw@db:5432/glisk"


def test_values_are_case_insensitive_and_lists_comma_separated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APP_ENV", "Production")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    monkeypatch.setenv("CORS_ORIGINS", "http://a.test, http://b.test")
    monkeypatch.setenv("GLISK_LEASE", "90s")
    settings = load_settings()
    assert settings.app_env == "production"
    assert settings.log_level == "DEBUG"
    assert settings.cors_origins == ["http://a.test", "http://b.test"]
    assert settings.glisk_lease == timedelta(seconds=90)


def test_every_invalid_setting_is_reported_on_its_own_line_without_its_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://root:topsecret@db/glisk")
    monkeypatch.setenv("PORT", "70000")
    monkeypatch.setenv("GLISK_LEASE", "soon")
    monkeypatch.setenv("APP_ENV", "staging")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    lines = caught.value.message.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "invalid setting DATABASE_URL",
        "invalid setting APP_ENV",
        "invalid setting PORT",
        "invalid setting GLISK_LEASE",
    ]
    assert "topsecret" not in caught.value.message
    assert caught.value.exit_code == 4


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DB_POOL_SIZE", "0"),
        ("GLISK_MAX_ATTEMPTS", "-1"),
        ("GLISK_LEASE", "0s"),
        ("GLISK_CONNECT_TIMEOUT", "fast"),
        ("LOG_LEVEL", "LOUD"),
        ("DATABASE_URL", "postgresql://u:p@host:notaport/db"),
        ("DATABASE_URL", "postgresql://u:p@host"),
    ],
)
def test_out_of_range_values_are_rejected(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=f"invalid setting {name}:"):
        load_settings()


@pytest.mark.parametrize("name", ["DATABASE_URL", "DATABASE_DIRECT_URL"])
@pytest.mark.parametrize("blank", ["", "  "])
def test_a_database_url_set_but_empty_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, name: str, blank: str
) -> None:
    monkeypatch.setenv(name, blank)
    with pytest.raises(ConfigError, match=f"invalid setting {name}: is set but empty") as caught:
        load_settings()
    assert caught.value.exit_code == 4
