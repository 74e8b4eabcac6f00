"""Starting `glisk work` as a real background process, and watching what it and its jobs do."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import GLISK


class RunnerProcess:
    """A `glisk work` process with its output in files (a pipe nobody reads could stall it)."""

    def __init__(self, workdir: Path, env: dict[str, str], *args: str, name: str = "runner"):
        self.stdout_path = workdir / f"{name}.out"
        self.stderr_path = workdir / f"{name}.err"
        with open(self.stdout_path, "w") as out, open(self.stderr_path, "w") as err:
            self.process = subprocess.Popen(
                [str(GLISK), "work", *args], cwd=workdir, env=env, stdout=out, stderr=err
            )

    def wait(self, timeout: float = 120) -> int:
        return self.process.wait(timeout=timeout)

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text()

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()


def wait_until(condition: Callable[[], bool], timeout: float = 60, what: str = "it") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
