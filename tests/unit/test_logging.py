"""Logs go to stderr, as JSON lines in production, each record once, passwords masked."""

import json
import logging
from collections.abc import Iterator

import pytest
from loguru import logger

from glisk_cli.logging import configure_logging


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    yield
    logger.remove()
    logging.basicConfig(handlers=[], force=True)


def test_production_logs_are_one_json_object_per_line_on_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", json_lines=True)
    logger.bind(worker="w1").info("transaction.committed")
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.splitlines()
    record = json.loads(line)
    assert record["level"] == "INFO"
    assert record["message"] == "transaction.committed"
    assert record["worker"] == "w1"
    assert record["time"].endswith("Z")


def test_stdlib_records_are_routed_through_loguru_exactly_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", json_lines=True)
    configure_logging("INFO", json_lines=True)  # configuring twice must not duplicate output
    logging.getLogger("alembic.runtime.migration").info("Running upgrade -> abc")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["logger"] == "alembic.runtime.migration"
    assert record["message"] == "Running upgrade -> abc"


@pytest.mark.parametrize("json_lines", [True, False], ids=["json", "human"])
def test_passwords_are_masked_in_messages_context_and_exceptions(
    capsys: pytest.CaptureFixture[str], json_lines: bool
) -> None:
    configure_logging("INFO", json_lines=json_lines)
    url = "postgresql://glisk:hunter2@db/glisk"
    try:
        raise RuntimeError(f"cannot connect to {url}")
    except RuntimeError:
        logger.bind(url=url).exception("connect failed for {}", url)
    logging.getLogger("sqlalchemy.engine").warning("engine %s", url)
    err = capsys.readouterr().err
    assert "hunter2" not in err
    assert err.count("glisk:***@db") >= 3


def test_development_logs_are_human_lines_below_the_threshold_silent(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("WARNING", json_lines=False)
    logger.info("not shown")
    logger.warning("shown")
    err = capsys.readouterr().err
    assert "not shown" not in err
    assert "WARNING" in err
    assert "shown" in err
    with pytest.raises(json.JSONDecodeError):
        json.loads(err.splitlines()[0])
