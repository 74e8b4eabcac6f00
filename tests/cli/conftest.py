"""The CLI tests' way to run glisk: in this process, against the test's own migrated database,
with the exit code checked."""

from __future__ import annotations

import pytest

from tests.conftest import CliResult


@pytest.fixture
def glisk(cli, migrated_url: str):
    """Run glisk in-process against this test's migrated database; fail on an exit code other
    than `expect`."""

    def run(*args: str, expect: int = 0, env: dict[str, str | None] | None = None) -> CliResult:
        result = cli(*args, env={"DATABASE_URL": migrated_url, **(env or {})})
        assert result.exit_code == expect, (args, result.stdout, result.stderr)
        return result

    return run
