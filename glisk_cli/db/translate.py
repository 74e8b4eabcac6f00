"""Where driver errors become glisk's: by SQLSTATE for what the database refused, and
DatabaseUnavailable (ConnectionLost for an established connection) for a server that cannot be
reached, with the URL's password masked. Every layer that talks to PostgreSQL goes through here
(docs/architecture.md, "Rules").
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any

import psycopg
from sqlalchemy import Engine
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DataError, DBAPIError, StatementError

from glisk_cli.errors import (
    ConfigError,
    Conflict,
    ConnectionLost,
    DatabaseTimeout,
    DatabaseUnavailable,
    GliskError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    SchemaDrift,
)
from glisk_cli.redact import redact


def translate_unavailable(context: ExceptionContext) -> Any:
    """Turn "cannot reach the server" into DatabaseUnavailable; leave every other error alone."""
    original = context.original_exception
    if not isinstance(original, Exception):
        # Ctrl-C mid-statement also invalidates the connection; it must stay an interrupt.
        return None
    connecting = context.connection is None or context.is_pre_ping
    denied = getattr(original, "sqlstate", None) == _INSUFFICIENT_PRIVILEGE
    # At connect time libpq gives no SQLSTATE, only the server's message.
    if denied or (connecting and "permission denied for database" in str(original)):
        role = context.engine.url.username if context.engine else None
        raise permission_denied(original, context.statement, role) from original
    if context.is_disconnect or (connecting and isinstance(original, psycopg.OperationalError)):
        raise unreachable(context.engine, original, lost=not connecting) from original
    return None


# What PgBouncer says to the start-up options glisk sends when GLISK_POOLER is none.
_REFUSED_OPTIONS = "unsupported startup parameter: options"
# A prepared statement made on one server connection, looked for on another: a transaction
# pooler swapped connections under psycopg (duplicate_prepared_statement, invalid statement name).
_PREPARED_ELSEWHERE = {"42P05": "already had", "26000": "did not have"}


def pooler_mismatch(symptom: str) -> ConfigError:
    """The error for a transaction pooler glisk was not told about (docs/operations.md)."""
    return ConfigError(
        f"DATABASE_URL seems to go through a transaction pooler (the server {symptom}): "
        "set GLISK_POOLER=transaction",
        hint='see docs/operations.md, "Behind a connection pooler"',
    )


def connect_failure(engine: Engine, error: BaseException) -> GliskError:
    """What a failed attempt to connect means: a role the database refuses (exit 4), or a
    server that cannot be reached."""
    if "permission denied for database" in str(error):
        return permission_denied(error, None, engine.url.username)
    return unreachable(engine, error, lost=False)


def unreachable(engine: Engine | None, error: BaseException, *, lost: bool) -> GliskError:
    """The error for a server that cannot be reached (or a connection to it that broke, `lost`),
    naming the server with its password masked; a pooler refusing glisk's start-up options is a
    configuration error instead."""
    if _REFUSED_OPTIONS in str(error):
        return pooler_mismatch("refused the start-up parameter `options`")
    where = engine.url.render_as_string(hide_password=True) if engine else "the database"
    # A pooled connection that died is worth one retry (transaction.py); a server that cannot
    # be reached is not.
    kind = ConnectionLost if lost else DatabaseUnavailable
    return kind(
        f"cannot reach PostgreSQL at {where}: {_first_line(error)}",
        hint="is the server running? is DATABASE_URL right?",
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return redact(text[0]) if text else type(exc).__name__


def translate_errors() -> AbstractContextManager[None]:
    """Re-raise database errors as GliskErrors; anything else passes through unchanged."""
    return _TRANSLATING


class _Translating:
    """`translate_errors`'s context manager: a class, not a generator (whose setup costs far
    more), because every statement of the workers' path enters one."""

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        if isinstance(error, DBAPIError):
            translated = translate(error)
            if translated is not None:
                raise translated from error
        elif isinstance(error, StatementError):
            # Raised before reaching the server, e.g. a naive datetime refused by a column type.
            if isinstance(error.orig, GliskError):
                raise error.orig from error
        elif isinstance(error, UnicodeEncodeError):
            # Text from the command line can carry lone surrogates (undecodable bytes in argv).
            message = "text is not valid Unicode (it has undecodable characters)"
            raise InvalidInput(message) from None
        return False  # anything else, or a DBAPIError glisk does not expect: unchanged


_TRANSLATING = _Translating()  # stateless, so one serves every (nested or concurrent) use


def translate_driver_error(
    engine: Engine,
    error: psycopg.Error,
    *,
    lost: bool,
    statement: str | None = None,
    role: str | None = None,
) -> Exception:
    """What a psycopg error raised outside SQLAlchemy (the workers' path) means to glisk:
    ConnectionLost when the connection broke, else as `translate`, else the error itself."""
    if lost:
        return unreachable(engine, error, lost=True)
    if getattr(error, "sqlstate", None) == _INSUFFICIENT_PRIVILEGE:
        return permission_denied(error, statement, role)
    return translate(error, statement) or error


def translate(error: DBAPIError | psycopg.Error, statement: str | None = None) -> GliskError | None:
    """The GliskError a driver error means, by SQLSTATE; None for one glisk does not expect."""
    driver = error.orig if isinstance(error, DBAPIError) else error
    sqlstate = getattr(driver, "sqlstate", None) or ""
    diag = getattr(driver, "diag", None)
    if sqlstate == _INSUFFICIENT_PRIVILEGE:
        sent = error.statement if isinstance(error, DBAPIError) else statement
        return permission_denied(driver or error, sent, None)
    if sqlstate in _PREPARED_ELSEWHERE and "prepared statement" in str(driver):
        return pooler_mismatch(f"{_PREPARED_ELSEWHERE[sqlstate]} a prepared statement psycopg made")
    constraint = getattr(diag, "constraint_name", None) or "a constraint"
    detail = getattr(diag, "message_detail", None)
    if sqlstate == "23505":
        return Conflict(_duplicate(getattr(diag, "table_name", None), detail, constraint))
    if sqlstate in ("23503", "23001"):  # foreign_key_violation, restrict_violation
        if sqlstate == "23001" or getattr(diag, "message_primary", "").startswith("update or"):
            referenced = f"still referenced ({constraint})"
            return Conflict(f"{referenced}: {detail}" if detail else referenced)
        missing = f"referenced row does not exist ({constraint})"
        return NotFound(f"{missing}: {detail}" if detail else missing)
    rejected = isinstance(error, DataError | psycopg.DataError)
    if sqlstate in ("23514", "23502") or sqlstate.startswith("22") or rejected:
        # 22xxx: a value the type rejects; a DataError without a state: refused by the driver
        # before sending, such as a NUL character, which PostgreSQL text cannot hold.
        primary = getattr(diag, "message_primary", None) or str(driver).splitlines()[0]
        return InvalidInput(f"rejected by the database: {primary}")
    if sqlstate in ("42P01", "42703", "42704"):  # undefined table / column / object
        return SchemaDrift(
            "the database schema does not match this glisk version",
            hint="run: glisk db verify",
        )
    if sqlstate in ("55P03", "57014"):
        what = "a lock" if sqlstate == "55P03" else "the statement to finish"
        return DatabaseTimeout(
            f"gave up waiting for {what} (another session may be holding rows or tables)",
            hint="retry; see GLISK_LOCK_TIMEOUT and GLISK_STATEMENT_TIMEOUT",
        )
    return None


# What a row of each table is, in the words of glisk's commands.
_ROW_OF = {
    "tokens_s0": "token",
    "authors": "author",
    "mint_events": "mint event",
    "system_state": "state key",
    "reveal_transactions": "reveal transaction",
    "image_generation_jobs": "image job",
    "ipfs_upload_records": "upload record",
    "stage_controls": "stage control",
}
# PostgreSQL's detail of a unique violation: `Key (token_id)=(1) already exists.`
_KEY = re.compile(r"^Key \((?P<columns>.+?)\)=\((?P<values>.*)\) already exists\.?$", re.DOTALL)


def _duplicate(table: str | None, detail: str | None, constraint: str) -> str:
    """`author with wallet_address 0xab… already exists`, from a unique violation."""
    row = _ROW_OF.get(table or "", "a row")
    found = _KEY.match(detail or "")
    if found is None:
        return f"{row} already exists ({constraint})"
    # An expression index names `lower(wallet_address::text)`: the column is what people know.
    columns = _CAST.sub("", _CALL.sub(r"\1", found["columns"]))
    return f"{row} with {columns} {found['values']} already exists"


_CALL = re.compile(r"\b\w+\(([^()]*)\)")
_CAST = re.compile(r"::[\w ]+")


_INSUFFICIENT_PRIVILEGE = "42501"
# "permission denied for table tokens_s0", "… for schema public", "must be owner of table x"
_DENIED_ON = re.compile(r"(?:permission denied for|must be owner of) (\w+) (.+)$")
_WRITE = re.compile(r"\b(INSERT|UPDATE|DELETE|TRUNCATE)\b", re.IGNORECASE)
_CONTROLS = "stage_controls"  # each stage's flow control: grants.py gives the worker only part
_CREATE_SCHEMA = re.compile(r"^\s*CREATE\s+SCHEMA\b", re.IGNORECASE)
_DDL = re.compile(r"^\s*(CREATE|ALTER|DROP|COMMENT|GRANT|REVOKE)\b", re.IGNORECASE)


def permission_denied(
    driver: BaseException, statement: str | None, role: str | None
) -> PermissionDenied:
    """One line naming the role, what it may not do, and which role would: `role "reporter"
    may not UPDATE tokens_s0: use a role with the worker grants (glisk db grants)`."""
    diag = getattr(driver, "diag", None)
    primary = getattr(diag, "message_primary", None) or str(driver).strip().splitlines()[0]
    who = f'role "{role}"' if role else "this database role"
    found = _DENIED_ON.search(primary)
    kind, name = (found[1], found[2].strip('"')) if found else ("object", primary)
    text = statement or ""
    if kind == "database":
        database = name.split()[0].strip(chr(34))
        if _CREATE_SCHEMA.search(text):
            # `db verify` builds the migrations' schema in a scratch schema to compare against.
            return PermissionDenied(
                f"{who} may not create schemas in database {database}, which db verify needs "
                "for its scratch copy of the schema (always rolled back)",
                hint=f"run it as the owner role, or GRANT CREATE ON DATABASE {database} to it",
            )
        return PermissionDenied(
            f"{who} may not connect to database {database}",
            hint="GRANT CONNECT ON DATABASE to it, or use another role",
        )
    if "must be owner" in primary or _DDL.search(text) or kind in ("schema", "function"):
        action, need = f"change {kind} {name}", "run migrations as the owner role"
    elif (written := _WRITE.search(text)) and name == _CONTROLS:
        # The worker grants cover what claims and cooldowns write there, not a pause or a limit.
        action, need = f"{written[1].upper()} {name}", "change a stage's controls as the owner"
    elif written:
        action, need = f"{written[1].upper()} {name}", "use a role with the worker grants"
    else:
        action, need = f"SELECT from {name}", "use a role with the reader grants"
    return PermissionDenied(f"{who} may not {action}", hint=f"{need}: see glisk db grants")
