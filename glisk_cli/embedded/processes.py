"""Is a data directory's server alive? Read from its pid file and the process table."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def read_first_int(path: Path) -> int | None:
    try:
        first = path.read_text().split("\n", 1)[0].strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
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


def is_postgres(pid: int, pgdata: Path | None = None) -> bool:
    """Whether `pid` is a live PostgreSQL process — and, given `pgdata`, the postmaster of that
    data directory — rather than a stranger that reused a dead one's pid, or a zombie.

    A postmaster killed with SIGKILL stays a zombie until its parent (init, as pg_ctl let it go)
    reaps it: a second here, forever in a container whose PID 1 does not reap. A zombie keeps its
    name and its pid file, but serves nothing.
    """
    if not sys.platform.startswith("linux"):
        return _is_postgres_elsewhere(pid, pgdata)
    proc = Path(f"/proc/{pid}")
    try:
        stat = (proc / "stat").read_text()
    except OSError:
        return False
    # "pid (comm) state ...": the name may hold spaces and parentheses, the state follows the last.
    name, state = stat[stat.find("(") + 1 : stat.rfind(")")], stat[stat.rfind(")") + 2 :][:1]
    if name not in ("postgres", "postmaster") or state in ("Z", "X", "x"):
        return False
    return pgdata is None or _serves(_cmdline(proc), pgdata)


def _cmdline(proc: Path) -> list[str] | None:
    try:
        return (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return None  # not ours to read: the name has to do


def _serves(argv: list[str] | None, pgdata: Path) -> bool:
    """Whether a postgres command line names `pgdata` as its data directory (`-D DIR`); a
    backend's rewritten title or an unreadable one is given the benefit of the doubt."""
    if not argv or "-D" not in argv[:-1]:
        return True
    return Path(argv[argv.index("-D") + 1]).resolve() == pgdata.resolve()


def _is_postgres_elsewhere(pid: int, pgdata: Path | None) -> bool:
    import psutil

    try:
        process = psutil.Process(pid)
        if process.name() not in ("postgres", "postmaster"):
            return False
        if process.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
            return False
        return pgdata is None or _serves(process.cmdline(), pgdata)
    except psutil.Error:
        return False
