"""glisk's own exceptions, each carrying the exit code of the CLI contract (README, "Exit codes").

Every layer raises these (or lets the database layer translate driver errors into them); the one
error boundary in `cli/app.py` turns them into a one-line message and the exit code.
"""

from __future__ import annotations


class GliskError(Exception):
    """Base of every error glisk reports to its user on purpose."""

    exit_code: int = 1
    code: str = "internal_error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class InvalidInput(GliskError):
    """A command-line argument or value is malformed or out of range."""

    exit_code = 2
    code = "invalid_input"


class DatabaseUnavailable(GliskError):
    """PostgreSQL cannot be reached (refused, timed out, or went away mid-command)."""

    exit_code = 3
    code = "database_unavailable"


class ConnectionLost(DatabaseUnavailable):
    """An established connection went away (server restart, network loss, pooler restart)."""


class DatabaseTimeout(DatabaseUnavailable):
    """A lock or statement timeout expired: the database answered, but not in time."""

    code = "database_timeout"


class ConfigError(GliskError):
    """A setting (environment variable or `.env` entry) is invalid."""

    exit_code = 4
    code = "config_invalid"


class PermissionDenied(ConfigError):
    """The database role glisk connects as may not do what the command needs."""

    code = "permission_denied"


class NotFound(GliskError):
    """A state key, token or author that the command names does not exist."""

    exit_code = 5
    code = "not_found"


class Conflict(GliskError):
    """The request contradicts stored state: duplicate, illegal transition, lease held elsewhere."""

    exit_code = 6
    code = "conflict"


class LeaseLost(Conflict):
    """A fenced step found the token no longer held under the lease presented."""

    code = "lease_lost"


class SchemaNotAtHead(GliskError):
    """The database is not migrated, or has migrations pending."""

    exit_code = 7
    code = "schema_not_at_head"


class SchemaDrift(GliskError):
    """The live schema differs from what the models and migrations say it should be."""

    exit_code = 8
    code = "schema_drift"


class TokensFailed(GliskError):
    """`glisk work --drain` finished the stage's work, but some of its tokens failed for good."""

    exit_code = 9
    code = "tokens_failed"
