"""Logging through loguru, always on stderr (stdout carries data only), and only when asked.

glisk is also a library, and a library stays silent until its application asks (loguru's own
advice): importing this module disables glisk's records, `configure_logging` (the CLI) enables
them, and an application that wants them calls `logger.enable("glisk_cli")`. Every glisk module
takes its `logger` from here, so the records are disabled before the first one is written.

Development: one human line per record. Production: one JSON object per line. Records from the
standard library (SQLAlchemy, Alembic, psycopg) are routed through loguru once, and every message
and exception text passes through `redact` so a database password never reaches a log.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC
from typing import TYPE_CHECKING, Any

from loguru import logger

from glisk_cli.redact import redact

logger.disable("glisk_cli")

if TYPE_CHECKING:
    from loguru import Logger, Message, Record

_HUMAN_FORMAT = (
    "<green>{time:YYYY-MM-DD HH:mm:ss.SSS!UTC}Z</green> <level>{level: <7}</level> "
    "<cyan>{name}</cyan> {message}{extra[_fields]}"
)


class _InterceptHandler(logging.Handler):
    """Hands stdlib records to loguru, keeping the original logger name and level."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            message = f"{message}: {record.exc_info[1]!r}"
        logger.patch(lambda r: r.update(name=record.name)).opt(depth=0).log(level, message)


_OWN = ("_fields", "_lines")  # our bookkeeping in a record's extra, never shown as a field
_own_sinks = False  # configure_logging installed the sinks below


def log_each(log: Logger, level: str, lines: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
    """Log a record per `(message, fields)` of `lines`, as `log.log(level, message, **fields)`
    each would. Through glisk's own sinks they travel as one loguru record, which the sinks
    write as one line each: the worker runner logs a line per attempt, and a loguru record
    apiece would cost it more than the rest of a turn."""
    caller = log.opt(depth=1)  # the record's name is the caller's module, not this one
    if not _own_sinks:
        for message, fields in lines:
            caller.log(level, message, **fields)
    elif lines:
        caller.log(level, "", _lines=lines)


def _with_context_fields(record: Record) -> None:
    # Structured context (logger.bind / keyword arguments) is shown after the message; a
    # record of several lines shows it on each (`_human_sink`).
    extra = record["extra"]
    extra["_fields"] = "" if "_lines" in extra else _fields_text(extra)


def _fields_text(fields: Mapping[str, Any]) -> str:
    return "".join(f" {key}={value}" for key, value in fields.items() if key not in _OWN)


def _human_sink(message: Message) -> None:
    # The whole formatted text, traceback included, is masked just before it is written.
    text = str(message)
    lines = message.record["extra"].get("_lines")
    if lines is not None:
        # Message and fields are empty: the text is the prefix (time, level, name) and "\n".
        prefix, common = text.removesuffix("\n"), _fields_text(message.record["extra"])
        text = "".join(f"{prefix}{line}{common}{_fields_text(fields)}\n" for line, fields in lines)
    sys.stderr.write(redact(text))
    sys.stderr.flush()


def _json_sink(message: Message) -> None:
    record = message.record
    head: dict[str, Any] = {
        "time": record["time"].astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "level": record["level"].name,
        "logger": record["name"],
    }
    common = {key: value for key, value in record["extra"].items() if key not in _OWN}
    lines = record["extra"].get("_lines") or [(record["message"], {})]
    documents = [
        {
            **head,
            "message": redact(line),
            **{key: redact(str(value)) for key, value in {**common, **fields}.items()},
        }
        for line, fields in lines
    ]
    if record["exception"] is not None and record["exception"].value is not None:
        exc = record["exception"].value
        documents[-1]["exception"] = redact(f"{type(exc).__name__}: {exc}")
    sys.stderr.write("".join(json.dumps(doc, ensure_ascii=False) + "\n" for doc in documents))
    sys.stderr.flush()


def configure_logging(
    level: str = "WARNING", *, json_lines: bool = False, progress_from: str | None = None
) -> None:
    """Send glisk's and the libraries' logs to stderr at `level`, human or JSON. The INFO
    records of module `progress_from` pass even when `level` is quieter: a command whose log
    lines are its progress (`glisk work`, a line per attempt) shows them by default."""
    global _own_sinks
    _own_sinks = True
    logger.enable("glisk_cli")
    logger.remove()
    logger.configure(patcher=_with_context_fields, extra={"_fields": ""})
    threshold = logger.level(level).no
    filter_: Callable[[Record], bool] | None = None
    if progress_from is not None and threshold > logger.level("INFO").no:
        threshold = logger.level("INFO").no
        quiet_until, loud = logger.level(level).no, progress_from

        def progress(record: Record) -> bool:
            return record["level"].no >= quiet_until or (record["name"] or "").startswith(loud)

        filter_ = progress

    if json_lines:
        logger.add(_json_sink, level=threshold, filter=filter_, diagnose=False, backtrace=False)
    else:
        logger.add(
            _human_sink,
            level=threshold,
            filter=filter_,
            format=_HUMAN_FORMAT,
            colorize=sys.stderr.isatty(),
            diagnose=False,
            backtrace=False,
        )
    # force=True replaces handlers other code installed, so no record is written twice.
    logging.basicConfig(handlers=[_InterceptHandler()], level=0, force=True)
    # SQLAlchemy logs every statement at INFO; only DEBUG and more verbose should see that.
    sql_level = logging.INFO if level in ("DEBUG", "TRACE") else logging.WARNING
    for name in ("sqlalchemy.engine", "sqlalchemy.pool"):
        logging.getLogger(name).setLevel(sql_level)
