"""System programs some tests drive, from Debian packages that CI installs (.ci/run): found on
PATH or where Debian puts them, or the test skips saying how to get it — and fails in CI (env CI
set), where skipping would hide that the tests never ran."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


def require_program(name: str, places: tuple[str, ...], tests: str) -> str:
    """The path of program `name` (from PATH, else the first of `places` that exists), or skip
    (fail in CI) naming its Debian package, also `name`; `tests` says which tests need it."""
    found = shutil.which(name) or next((place for place in places if Path(place).exists()), None)
    if found is None:
        reason = f"{name} is not installed (Debian/Ubuntu: apt-get install -y {name})"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the {tests} tests: {reason}")
        pytest.skip(reason)
    return found
