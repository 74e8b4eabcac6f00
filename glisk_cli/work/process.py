"""One run of a job's command: its own process group, stdin written and stdout/stderr read
without ever blocking on one of them, output kept within bounds, and the whole group killed on
a timeout, on request, and when the command itself has exited (nothing it started outlives it).

Runs in an executor thread of the runner; `kill` may be called from any thread.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

MAX_ANSWER = 1 << 20  # a job's answer is a small JSON document; more is a mistake, not data
STDERR_TAIL = 2048  # what error_data keeps of a failed attempt's stderr
_READ = 65536
_LINGER_S = 0.2  # after the command exits, how long what is left in its pipes may take


@dataclass(frozen=True)
class Finished:
    """How the command ended: its exit status (negative: killed by that signal), its answer
    (None when it wrote more than MAX_ANSWER), the end of its stderr, and why glisk killed it
    (`timeout`, or the reason given to `kill`), if it did."""

    exit_status: int
    answer: bytes | None
    stderr_tail: str
    killed: str | None
    seconds: float


class CommandRun:
    """A started command. `wait()` feeds and drains it until it ends."""

    def __init__(
        self,
        argv: Sequence[str],
        stdin: bytes,
        env: Mapping[str, str],
        timeout: float | None,
    ) -> None:
        self._stdin = memoryview(stdin)
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._killed: str | None = None
        self._reaped = False
        # A process group of its own, so a kill reaches everything it started, and the
        # terminal's Ctrl-C reaches the runner only (which decides). A group, not a session
        # (setsid): the same separation, and measurably cheaper to spawn (bench/work.py).
        self._process = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env),
            process_group=0,
            close_fds=True,
        )

    def kill(self, reason: str) -> None:
        """Kill the command's process group (the first reason given is the one kept)."""
        with self._lock:
            if self._killed is None:
                self._killed = reason
            self._kill_group()

    def wait(self) -> Finished:
        answer = bytearray()
        overflow = False
        stderr = bytearray()
        exited: float | None = None  # when the command itself was seen to have exited
        process = self._process
        assert process.stdin
        assert process.stdout
        assert process.stderr
        with selectors.DefaultSelector() as selector:
            if self._stdin:
                os.set_blocking(process.stdin.fileno(), False)
                selector.register(process.stdin, selectors.EVENT_WRITE)
            else:
                process.stdin.close()
            selector.register(process.stdout, selectors.EVENT_READ)
            selector.register(process.stderr, selectors.EVENT_READ)
            while selector.get_map():
                # Wakes at least twice a second: a killed group whose pipes a stray
                # grandchild (in a session of its own) still holds must not hang the runner.
                events = selector.select(self._wait_slice())
                for key, _ in events:
                    if key.fileobj is process.stdin:
                        self._feed(selector)
                        continue
                    chunk = os.read(key.fd, _READ)
                    if not chunk:
                        selector.unregister(key.fileobj)
                    elif key.fileobj is process.stdout:
                        overflow = overflow or len(answer) + len(chunk) > MAX_ANSWER
                        if not overflow:
                            answer += chunk
                    else:
                        stderr = (stderr + chunk)[-STDERR_TAIL:]
                if self._past_deadline():
                    self.kill("timeout")
                # Killed, or exited a moment ago: what holds its pipes open now is something
                # it started (which may go on writing), and the reaping below kills it.
                if process.poll() is not None:
                    exited = exited or time.monotonic()
                    if self._killed or not events or time.monotonic() - exited > _LINGER_S:
                        break
        exit_status = self._reap()
        for stream in (process.stdin, process.stdout, process.stderr):
            stream.close()
        return Finished(
            exit_status=exit_status,
            answer=None if overflow else bytes(answer),
            stderr_tail=stderr.decode(errors="replace").replace("\x00", ""),
            killed=self._killed,
            seconds=time.monotonic() - self._started,
        )

    def _feed(self, selector: selectors.BaseSelector) -> None:
        stdin = self._process.stdin
        assert stdin is not None
        try:
            written = os.write(stdin.fileno(), self._stdin[:_READ])
        except BlockingIOError:
            return
        except BrokenPipeError:
            written = len(self._stdin)  # the command stopped reading: the rest is dropped
        self._stdin = self._stdin[written:]
        if not self._stdin:
            selector.unregister(stdin)
            stdin.close()

    def _wait_slice(self) -> float:
        if self._deadline is None:
            return 0.5
        return max(0.0, min(0.5, self._deadline - time.monotonic()))

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _reap(self) -> int:
        if self._deadline is None:
            # Its pipes are closed: it has exited, or is about to, or was killed (a kill from
            # another thread ends this wait too). A blocking wait returns the moment it does.
            exit_status = self._process.wait()
        else:
            while True:
                try:
                    exit_status = self._process.wait(timeout=self._wait_slice())
                    break
                except subprocess.TimeoutExpired:
                    if self._past_deadline():
                        self.kill("timeout")
        with self._lock:
            # The group may outlive its leader: whatever the command left running goes too.
            self._kill_group()
            self._reaped = True
        return exit_status

    def _kill_group(self) -> None:
        if self._reaped:
            return  # the group id may belong to someone else by now
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process.pid, signal.SIGKILL)
