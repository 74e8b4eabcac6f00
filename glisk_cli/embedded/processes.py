"""Is a data directory's server alive? Read from its pid file and the process table."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from glisk_cli.errors import ConfigError


def read_first_int(path: Path) -> int | None:
    try:
        first = path.read_text().split("\n", 1)[0].strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except PermissionError:
        raise ConfigError(f"cannot read {path}: permission denied") from None
    return int(first) if first.lstrip("-").isdigit() else None


def read_postmaster_pid(pgdata: Path) -> int | None:
    pid = read_first_int(pgdata / "postmaster.pid")
    return abs(pid) if pid is not None else None  # a negative pid marks a single-user backend


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, it just belongs to someone else
    return True


def is_postgres(pid: int) -> bool:
    """Whether `pid` is a live PostgreSQL process (not a stranger that reused a dead one's pid)."""
    if sys.platform.startswith("linux"):
        try:
            return Path(f"/proc/{pid}/comm").read_text().strip() in ("postgres", "postmaster")
        except OSError:
            return False
    import psutil

    try:
        return psutil.Process(pid).name() in ("postgres", "postmaster")
    except psutil.Error:
        return False
