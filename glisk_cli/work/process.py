"""One run of a job's command: its own process group, stdin written and stdout/stderr read
without ever blocking on one of them, output kept within bounds, and the whole group killed on
a timeout, on request, and when the command itself has exited (nothing it started outlives it).

A run never blocks: the runner's command slots (`work/command_slots.py`) drive every running
command from one thread and one `poll`, handing each its events (`on_event`) and asking it,
after every round, whether it is over (`check`). It is started with `os.posix_spawn` (a vfork
and exec in libc) rather than `subprocess.Popen`: the same child for a fraction of the
runner's CPU, which it spends on every token (docs/architecture.md, "The worker runner").
Every descriptor Python or libpq opens is close-on-exec, so the child gets its three pipes and
nothing else.

`kill` may be called from any thread.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from glisk_cli.work.watchdog import Watchdog

MAX_ANSWER = 1 << 20  # a job's answer is a small JSON document; more is a mistake, not data
STDERR_TAIL = 2048  # what error_data keeps of a failed attempt's stderr (and of an answer not JSON)
_READ = 65536
_LINGER_S = 0.2  # after the command exits, how long what is left in its pipes may take
# While its pipes are open, how often a run looks whether the command itself has exited (a
# child it left behind may hold them open, and is killed with the rest of its group).
_EXIT_SCAN_S = 0.1
_EXIT_WAIT_MAX_S = 0.05  # pipes closed: the exit is a moment away; look again at most this late
# Python ignores these at start-up; a command gets the defaults, as subprocess gives it.
_DEFAULT_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGPIPE", "SIGXFSZ", "SIGXFZ") if hasattr(signal, name)
)
# Looking at an exit without reaping it (Linux); elsewhere the look reaps, as subprocess does.
_PEEK_EXIT = hasattr(os, "waitid") and hasattr(os, "WNOWAIT")
_READABLE = select.POLLIN | select.POLLHUP | select.POLLERR
_WRITABLE = select.POLLOUT | select.POLLERR


@dataclass(frozen=True)
class CommandExit:
    """How the command ended: its exit status (negative: killed by that signal), its answer
    (None when it wrote more than MAX_ANSWER), the end of its stderr, and why glisk killed it
    (`timeout`, or the reason given to `kill`), if it did."""

    exit_status: int
    answer: bytes | None
    stderr_tail: str
    killed: str | None
    seconds: float


class CommandRun:
    """A started command whose pipes are registered with `poller`.

    `program` is the resolved path of `argv[0]` (looked up once, not at every spawn)."""

    def __init__(
        self,
        program: str,
        argv: Sequence[str],
        stdin: bytes,
        env: Mapping[str, str],
        timeout: float | None,
        poller: select.poll,
        watchdog: Watchdog | None = None,
    ) -> None:
        """`watchdog`: told to forget the run's process group before it is reaped."""
        self._poller = poller
        self._watchdog = watchdog
        self._stdin = memoryview(stdin)
        self._answer = bytearray()
        self._overflow = False
        self._stderr = bytearray()
        self._started = time.monotonic()
        self._deadline = None if timeout is None else self._started + timeout
        self._lock = threading.Lock()
        self._killed: str | None = None
        self._exited_at: float | None = None  # when the command itself was seen to have exited
        self._reaped = False  # its group id may now belong to someone else: never kill it
        self._status: int | None = None  # a wait status, once reaped
        self._next_look = self._started + _EXIT_SCAN_S
        self._exit_wait = 0.001
        child_stdin, stdin_fd = os.pipe()
        stdout_fd, child_stdout = os.pipe()
        stderr_fd, child_stderr = os.pipe()
        # The input goes into the pipe before the command starts: a token document fits in
        # the pipe's buffer, so there is usually nothing left to feed it later.
        os.set_blocking(stdin_fd, False)
        self._feed(stdin_fd)
        try:
            # A process group of its own (setpgroup=0), so a kill reaches everything it
            # started, and the terminal's Ctrl-C reaches the runner only (which decides).
            self.pid = os.posix_spawn(
                program,
                list(argv),
                env,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, child_stdin, 0),
                    (os.POSIX_SPAWN_DUP2, child_stdout, 1),
                    (os.POSIX_SPAWN_DUP2, child_stderr, 2),
                ],
                setpgroup=0,
                setsigdef=_DEFAULT_SIGNALS,
                setsigmask=(),
            )
        except BaseException:
            for fd in (stdin_fd, stdout_fd, stderr_fd):
                os.close(fd)
            raise
        finally:
            for fd in (child_stdin, child_stdout, child_stderr):
                os.close(fd)
        self._stdin_fd, self._stdout_fd = stdin_fd, stdout_fd
        self.fds = {stdout_fd, stderr_fd}  # the pipes still open on our side
        poller.register(stdout_fd, _READABLE)
        poller.register(stderr_fd, _READABLE)
        if self._stdin:
            poller.register(stdin_fd, _WRITABLE)
            self.fds.add(stdin_fd)
        else:
            os.close(stdin_fd)

    def kill(self, reason: str) -> None:
        """Kill the command's process group (the first reason given is the one kept)."""
        with self._lock:
            if self._killed is None:
                self._killed = reason
            self._kill_group()

    def on_event(self, fd: int) -> None:
        """One of our pipes is ready: feed stdin, or read what the command wrote."""
        if fd == self._stdin_fd:
            if not self._feed(fd):
                self._close(fd)
            return
        chunk = os.read(fd, _READ)
        if not chunk:
            self._close(fd)
        elif fd == self._stdout_fd:
            self._overflow = self._overflow or len(self._answer) + len(chunk) > MAX_ANSWER
            if not self._overflow:
                self._answer += chunk
        else:
            self._stderr = (self._stderr + chunk)[-STDERR_TAIL:]

    def check(self, now: float) -> CommandExit | None:
        """Is it over? Called after every round of events (cheap when nothing is due): kills
        on the deadline, notices the command's exit, and ends the run once its pipes are
        closed — or, after the exit, once it was killed or the linger ran out: what holds
        them open then is something it started, which goes with its group."""
        if self._deadline is not None and now >= self._deadline and self._killed is None:
            self.kill("timeout")
        if self._exited_at is None and (not self.fds or self._killed or now >= self._next_look):
            if self._has_exited():
                self._exited_at = now
            elif not self.fds:  # closed its pipes and is about to exit: look again soon
                self._next_look = now + self._exit_wait
                self._exit_wait = min(self._exit_wait * 2, _EXIT_WAIT_MAX_S)
            else:
                self._next_look = now + _EXIT_SCAN_S
        if self._exited_at is None:
            return None
        if self.fds and not self._killed and now - self._exited_at < _LINGER_S:
            return None
        return self._finish(now)

    def next_check(self) -> float:
        """The latest moment `check` must be called even if no event comes."""
        moments = [self._next_look]
        if self._deadline is not None and self._killed is None:
            moments.append(self._deadline)
        if self._exited_at is not None:
            moments.append(self._exited_at + _LINGER_S)
        return min(moments)

    def abandon(self) -> None:
        """End the run without an outcome (something went wrong driving it): kill its group,
        close its pipes and reap it."""
        self.kill("abandoned")
        self._end()

    def _finish(self, now: float) -> CommandExit:
        status = self._end()
        return CommandExit(
            exit_status=os.waitstatus_to_exitcode(status),
            answer=None if self._overflow else bytes(self._answer),
            stderr_tail=self._stderr.decode(errors="replace").replace("\x00", ""),
            killed=self._killed,
            seconds=now - self._started,
        )

    def _end(self) -> int:
        """Close, kill what is left of the group, reap; the wait status."""
        for fd in list(self.fds):
            self._close(fd)
        with self._lock:
            # The group may outlive its leader: whatever the command left running goes too.
            # Killed while the leader is a zombie, so the group id is still ours.
            self._kill_group()
            self._reaped = True
        if self._watchdog is not None:  # before the reap frees the group id for reuse
            self._watchdog.forget(self.pid)
        if self._status is None:
            try:
                self._status = os.waitpid(self.pid, 0)[1]  # a zombie already: returns at once
            except ChildProcessError:  # reaped by someone else (SIGCHLD ignored): as subprocess
                self._status = 0
        return self._status

    def _feed(self, fd: int) -> bool:
        """Write what the command's stdin takes now; whether any input is left."""
        try:
            written = os.write(fd, self._stdin[:_READ])
        except BlockingIOError:
            return True
        except BrokenPipeError:
            written = len(self._stdin)  # the command stopped reading: the rest is dropped
        self._stdin = self._stdin[written:]
        return bool(self._stdin)

    def _close(self, fd: int) -> None:
        self._poller.unregister(fd)
        self.fds.discard(fd)
        os.close(fd)

    def _has_exited(self) -> bool:
        """Has the command exited? Looked at without reaping it (WNOWAIT): a zombie keeps
        its process group id from being reused until `_finish` has killed the group."""
        try:
            if _PEEK_EXIT:
                flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
                return os.waitid(os.P_PID, self.pid, flags) is not None
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # reaped by someone else (SIGCHLD ignored): as subprocess
            self._status = 0
            return True
        if pid:
            self._status = status
        return bool(pid)

    def _kill_group(self) -> None:
        if self._reaped:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
