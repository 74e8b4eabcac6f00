"""Settings: environment variables, then `.env` in the working directory, then defaults.

`load_settings()` is the only way in. An invalid value becomes a ConfigError (exit 4) listing one
line per problem, naming the variable and never echoing its value (DATABASE_URL holds a password).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal, cast
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from glisk_cli.durations import parse_duration
from glisk_cli.errors import ConfigError
from glisk_cli.policy import QueuePolicy, Timeouts

LogLevel = Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"]

# SQLAlchemy would pick psycopg2 for a bare postgresql:// URL; glisk ships psycopg 3 only.
_ACCEPTED_SCHEMES = {"postgres", "postgresql", "postgresql+psycopg"}
# The defaults are the library's own (policy.py), so the CLI and a worker start from the same.
_DEFAULT_TIMEOUTS = Timeouts()
# Settings given as durations (`90s`, `15m`): parsed from text, and longer than zero.
_DURATIONS = (
    "glisk_lease",
    "glisk_retry_base",
    "glisk_retry_max",
    "glisk_connect_timeout",
    "glisk_lock_timeout",
    "glisk_statement_timeout",
)


class Settings(BaseSettings):
    """Every knob glisk reads; `.env.example` documents each one."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        validate_default=True,
    )

    database_url: SecretStr | None = None
    # A connection that keeps its session (LISTEN, migrations) when DATABASE_URL goes through a
    # transaction pooler (docs/architecture.md, "Every transaction runs with fixed settings").
    database_direct_url: SecretStr | None = None
    glisk_pooler: Literal["none", "transaction"] = "none"
    db_pool_size: int = Field(default=10, ge=1, le=1000)
    app_env: Literal["development", "production"] = "development"
    log_level: LogLevel = "WARNING"
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    glisk_data_dir: Path | None = None
    glisk_max_attempts: int = Field(default=QueuePolicy.max_attempts, ge=1, le=1000)
    glisk_lease: timedelta = QueuePolicy.lease
    glisk_retry_base: timedelta = QueuePolicy.retry_base
    glisk_retry_max: timedelta = QueuePolicy.retry_max
    glisk_connect_timeout: timedelta = _DEFAULT_TIMEOUTS.connect
    glisk_lock_timeout: timedelta = cast(timedelta, _DEFAULT_TIMEOUTS.lock)
    glisk_statement_timeout: timedelta = cast(timedelta, _DEFAULT_TIMEOUTS.statement)
    # `glisk serve --dashboard`'s HTTP basic auth password; required off a loopback address.
    glisk_dashboard_password: SecretStr | None = None

    @field_validator("database_url", "database_direct_url", mode="before")
    @classmethod
    def _normalise_database_url(cls, value: object) -> object:
        if value is None:
            return None
        if isinstance(value, str) and not value.strip():
            # A blank secret in a deploy must not quietly run on an empty private database.
            raise ValueError("is set but empty: give a URL, or unset it to use the embedded server")
        raw = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        try:
            parts = urlsplit(raw.strip())
            parts.port  # noqa: B018 — raises ValueError on a malformed port
        except ValueError:
            raise ValueError(
                "is not a valid URL (expected postgresql://user:pass@host/db)"
            ) from None
        if parts.scheme not in _ACCEPTED_SCHEMES:
            raise ValueError(
                "must start with postgresql:// or postgresql+psycopg:// (glisk uses psycopg 3)"
            )
        if not parts.path.strip("/") and "dbname=" not in parts.query:
            raise ValueError("names no database (expected postgresql://user:pass@host/db)")
        return parts._replace(scheme="postgresql+psycopg").geturl()

    @field_validator("glisk_dashboard_password", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value else value

    @field_validator("app_env", "log_level", "glisk_pooler", mode="before")
    @classmethod
    def _fold_case(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        folded = value.strip()
        lowercase = ("development", "production", "none", "transaction")
        return folded.lower() if folded.lower() in lowercase else folded.upper()

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator(*_DURATIONS, mode="before")
    @classmethod
    def _parse_duration(cls, value: object) -> object:
        return parse_duration(value) if isinstance(value, str) else value

    @field_validator(*_DURATIONS)
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than zero")
        return value

    @property
    def database_url_value(self) -> str | None:
        """The configured URL in clear text, for the driver only — never print it."""
        return self.database_url.get_secret_value() if self.database_url else None

    @property
    def database_direct_url_value(self) -> str | None:
        """DATABASE_DIRECT_URL in clear text, for the driver only — never print it."""
        return self.database_direct_url.get_secret_value() if self.database_direct_url else None


def load_settings() -> Settings:
    """Read and validate the settings, or raise ConfigError with one line per problem."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = [
            f"invalid setting {'.'.join(str(part) for part in error['loc']).upper()}: "
            f"{error['msg'].removeprefix('Value error, ')}"
            for error in exc.errors(include_url=False, include_input=False)
        ]
        raise ConfigError("\n".join(problems)) from None
