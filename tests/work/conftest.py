"""Fixtures of the runner tests: a migrated database, its URL in a `glisk` environment, and a
way to read the tables the runner writes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from tests.work.jobs import REPOSITORY


@pytest.fixture
def work_env(glisk_env: dict[str, str], migrated_url: str) -> dict[str, str]:
    """A `glisk` environment on this test's database, with quick retries, and the test jobs
    importable wherever the runner starts them."""
    return {
        **glisk_env,
        "DATABASE_URL": migrated_url,
        "GLISK_RETRY_BASE": "50ms",
        "GLISK_RETRY_MAX": "200ms",
        "PYTHONPATH": str(REPOSITORY),
    }


@pytest.fixture
def query(migrated_url: str) -> Iterator[Any]:
    engine = create_engine(migrated_url, poolclass=NullPool)

    def run(sql: str, **params: object) -> list[Any]:
        with engine.begin() as connection:
            result = connection.execute(text(sql), params)
            return list(result) if result.returns_rows else []

    yield run
    engine.dispose()
