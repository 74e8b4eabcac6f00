"""Reading what a command printed: its JSON, its timestamps, its one error line."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from tests.conftest import CliResult


def as_json(result: CliResult) -> Any:
    return json.loads(result.stdout)


def moment(stamp: str | None) -> datetime:
    """A timestamp as glisk prints one: ISO 8601, in UTC (`…Z`)."""
    assert stamp is not None
    assert stamp.endswith("Z"), stamp
    return datetime.fromisoformat(stamp)


def assert_one_error_line(result: CliResult, *needles: str) -> None:
    """A refused command: nothing on stdout, one `error: …` line on stderr (naming each of
    `needles`), no traceback."""
    lines = result.stderr.splitlines()
    assert result.stdout == "", result.stdout
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], result.stderr
