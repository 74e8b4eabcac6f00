"""The web view's tests in a real headless browser: Debian's Chromium driven by Playwright, in
front of a real `glisk serve --dashboard` on a real PostgreSQL.

Playwright's own browser download is not used (no binary is fetched at run time): the tests
drive the system's `chromium` (Debian/Ubuntu: apt-get install -y chromium; CI installs it).
Without it, they skip, saying why; in CI (env CI set) its absence fails them instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright

from tests.health.conftest import ServeProcess, start_serve
from tests.programs import require_program


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    # As root, Chromium runs only without its sandbox, which is Playwright's default.
    chromium = require_program("chromium", ("/usr/bin/chromium",), "browser")
    launched = playwright.chromium.launch(executable_path=chromium)
    yield launched
    launched.close()


@pytest.fixture
def serve_dashboard(tmp_path: Path, migrated_url: str) -> Iterator[Callable[..., ServeProcess]]:
    """Start `glisk serve --dashboard` on the test's database, with `extra` settings."""
    started: list[ServeProcess] = []

    def start(**extra: str) -> ServeProcess:
        server = start_serve(
            tmp_path / f"serve{len(started)}",
            {"DATABASE_URL": migrated_url, **extra},
            "--dashboard",
        )
        started.append(server)
        server.wait_ready()
        return server

    yield start
    for server in started:
        server.stop()
