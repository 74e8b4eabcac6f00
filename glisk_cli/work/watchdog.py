"""The watchdog: a small process of its own, next to a runner, that kills each running command's
process group when its lease could run out, and every one of them at once when the runner dies.

The runner kills a job itself when it cannot renew the lease in time (`runner.py`); the
watchdog is for when the runner cannot act at all. A runner stopped (SIGSTOP) or frozen cannot
kill anything, and one killed (-9) leaves its commands running on; either way another claim
takes the tokens over once the leases run out, and the old job would overlap the new one,
doing its side effects twice and breaking a stage's concurrency limit. The watchdog is not
stopped with the runner: it kills each command at its deadline (the runner's lease deadline,
`Job.deadline`), which only a renewal pushes back, and it reads the end of its pipe — the runner
gone — as "kill them all now" (docs/architecture.md, "Jobs never outlive their lease").

The runner tells it, one line each, `PGID DEADLINE` (a CLOCK_MONOTONIC time, the same clock
in every process of the machine) and `PGID 0` (forget: the command ended, about to be reaped, so
its group id may soon be someone else's). The watchdog reads everything pending before it kills,
so a renewal written before the deadline always counts. It reads in rounds, 50 ms apart: a
runner starting a thousand short jobs a second wakes it 20 times a second, not 2,000 (on a busy
machine its wake-ups were a tenth of the runner's cost per job); a kill or the runner's death is
acted on within those 50 ms, far inside the margin the deadline leaves.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import threading

_START_S = 10.0

# The watchdog's program: the standard library only, started with -I -S (no site, no user
# paths), so it is up in a few milliseconds and sees nothing of the runner's environment.
_PROGRAM = r"""
import os, select, signal, time
for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
    signal.signal(s, signal.SIG_IGN)
def kill(group):
    try:
        os.killpg(group, signal.SIGKILL)
    except OSError:
        pass
os.write(1, b"up")  # the runner waits for this before it starts a job
os.close(1)
deadlines, pending = {}, b""
while True:
    now = time.monotonic()
    due = min(deadlines.values(), default=None)
    ready, _, _ = select.select([0], [], [], None if due is None else max(0.0, due - now))
    if ready:
        chunk = os.read(0, 65536)
        if not chunk:
            break
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            group, at = line.split()
            if float(at) > 0:
                deadlines[int(group)] = float(at)
            else:
                deadlines.pop(int(group), None)
        time.sleep(0.05)  # read in rounds: at most 20 wake-ups a second, however many jobs
        continue
    now = time.monotonic()
    for group, at in list(deadlines.items()):
        if at <= now:
            kill(group)
            del deadlines[group]
for group in deadlines:
    kill(group)
"""


class Watchdog:
    """The runner's side of the watchdog process; methods may be called from any thread."""

    def __init__(self) -> None:
        """Start the watchdog, and wait until it is up (so that its start-up, tens of
        milliseconds of an interpreter, is paid before the first job, not beside it)."""
        read, self._write = os.pipe()
        up, said_up = os.pipe()
        self._lock = threading.Lock()
        try:
            # A process group of its own: the terminal's Ctrl-C reaches the runner, not it.
            self.pid = os.posix_spawn(
                sys.executable,
                [sys.executable, "-I", "-S", "-c", _PROGRAM],
                os.environ,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, read, 0),
                    (os.POSIX_SPAWN_DUP2, said_up, 1),
                ],
                setpgroup=0,
            )
        except BaseException:
            os.close(self._write)
            raise
        finally:
            os.close(read)
            os.close(said_up)
        try:
            ready, _, _ = select.select([up], [], [], _START_S)
            if not ready or os.read(up, 2) != b"up":
                raise OSError(f"the watchdog did not start within {_START_S:.0f}s")
        except BaseException:
            self.close()
            raise
        finally:
            os.close(up)

    def watch(self, group: int, deadline: float) -> None:
        """Kill process group `group` at `deadline` (time.monotonic), unless told again."""
        self._say(f"{group} {max(deadline, 1e-3):.3f}\n")

    def forget(self, group: int) -> None:
        self._say(f"{group} 0\n")

    def close(self) -> None:
        """The runner is done: the watchdog kills what it still watches (nothing, normally) and
        exits."""
        with self._lock:
            if self._write < 0:
                return
            os.close(self._write)
            self._write = -1
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)

    def _say(self, line: str) -> None:
        with self._lock:
            if self._write < 0:
                return
            # A gone watchdog (killed by someone) leaves the runner's own deadline kills.
            with contextlib.suppress(BrokenPipeError):
                os.write(self._write, line.encode())
