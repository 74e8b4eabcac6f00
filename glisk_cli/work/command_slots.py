"""The command slots: one thread runs every command of a runner — starts the next claimed job
when a slot frees up, feeds and drains all their pipes from one `poll`, ends each run
(`process.py`) and hands the ended job to the loop.

Every command runs under the watchdog (`watchdog.py`), which kills it at its job's lease
deadline if the runner cannot, and at once if the runner dies.

One thread for all commands, not one each: every system call a command's driving makes gives
up the interpreter lock, and threads that each take it back after every call spend more CPU on
that than on the calls (docs/architecture.md, "The worker runner").
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
from collections.abc import Callable
from queue import Empty

from glisk_cli.pipeline import Stage
from glisk_cli.work.executor import Executor
from glisk_cli.work.jobs import Job
from glisk_cli.work.options import WorkOptions
from glisk_cli.work.process import CommandRun
from glisk_cli.work.programs import Command
from glisk_cli.work.protocol import COULD_NOT_START, failed_all
from glisk_cli.work.watchdog import Watchdog

_IDLE_WAKE_S = 0.5  # with nothing due, the thread still looks around this often


class CommandSlots(Executor):
    def __init__(
        self,
        command: Command,
        stage: Stage,
        options: WorkOptions,
        wake: Callable[[], None],
        checkpoints: str | None = None,
    ) -> None:
        """`checkpoints`: the runner's checkpoint socket, told to every job."""
        super().__init__(stage, options, wake)
        self._command, self._checkpoints = command, checkpoints
        self._timeout = None if options.timeout is None else options.timeout.total_seconds()
        self._poller = select.poll()
        self._runs: dict[CommandRun, Job] = {}
        # Whose pipe each descriptor is. A closed one is left behind: it is no longer polled,
        # and a new run that gets its number takes the entry over.
        self._by_fd: dict[int, CommandRun] = {}
        # Queued jobs (and close()) wake the thread through this pipe; once the thread has
        # ended and closed it, its descriptor numbers may be someone else's: never write then.
        self._bell_lock = threading.Lock()
        self._bell_in, self._bell_out = os.pipe()
        os.set_blocking(self._bell_in, False)
        os.set_blocking(self._bell_out, False)
        self._poller.register(self._bell_in, select.POLLIN)
        self._watchdog = Watchdog()
        threading.Thread(target=self._serve, daemon=True, name="glisk-work-commands").start()

    def _notify(self) -> None:
        with self._bell_lock, contextlib.suppress(BlockingIOError):  # full: one is pending
            if self._bell_out >= 0:
                os.write(self._bell_out, b"!")

    def _serve(self) -> None:
        closing = False
        try:
            while not closing or self._runs:
                closing = self._start_free_slots() or closing
                if closing and not self._runs:
                    break
                for fd, _ in self._poller.poll(self._wait_ms()):
                    if fd == self._bell_in:
                        with contextlib.suppress(BlockingIOError):
                            os.read(self._bell_in, 4096)
                    elif (run := self._by_fd.get(fd)) is not None and run in self._runs:
                        try:
                            run.on_event(fd)
                        except Exception as error:
                            self._fail(run, error)
                if self._end_finished_runs():
                    self._wake()
        finally:
            with self._bell_lock:
                os.close(self._bell_in)
                os.close(self._bell_out)
                self._bell_out = -1
            self._watchdog.close()

    def extend(self, jobs: list[Job]) -> None:
        for job in jobs:
            run = job.run
            if isinstance(run, CommandRun) and job.deadline < float("inf"):
                self._watchdog.watch(run.pid, job.deadline)

    def _start_free_slots(self) -> bool:
        """Start claimed jobs while slots are free; True once close() was called."""
        ended = False
        while len(self._runs) < self._options.concurrency:
            try:
                job = self._next(block=False)
            except Empty:
                break
            if job is None:
                return True
            if not self._start(job):
                self._ended(job)
                ended = True
        if ended:
            self._wake()
        return False

    def _start(self, job: Job) -> bool:
        """Spawn the job's command; False (the job ended) if it must not or could not start."""
        if self._unstartable(job):
            return False
        self._started(job)
        try:
            run = self._command.spawn(
                self._stage,
                job.tokens,
                self._options.worker,
                self._timeout,
                self._poller,
                self._watchdog,
                self._checkpoints,
            )
        except OSError as error:
            reason = error.strerror or str(error)
            unstarted = f"the command could not start: {reason}"
            job.end(failed_all(job.tokens, unstarted, COULD_NOT_START), 0)
            return False
        except Exception as error:
            self._broken(job, error)
            return False
        if job.deadline < float("inf"):
            self._watchdog.watch(run.pid, job.deadline)
        self._runs[run] = job
        self._by_fd.update(dict.fromkeys(run.fds, run))
        job.attach(run)
        return True

    def _end_finished_runs(self) -> bool:
        """Hand back every job whose run is over; True if any was."""
        now = time.monotonic()
        ended = False
        for run, job in list(self._runs.items()):
            try:
                exited = run.check(now)
                if exited is None:
                    continue
                outcomes = self._command.outcomes(self._stage, job.tokens, exited)
            except Exception as error:
                self._fail(run, error)
            else:
                del self._runs[run]
                self._ended(job.end(outcomes, exited.seconds))
            ended = True
        return ended

    def _fail(self, run: CommandRun, error: Exception) -> None:
        """Driving a run broke (a bug, or the system refused a call): its attempt fails, the
        runner goes on."""
        job = self._runs.pop(run)
        with contextlib.suppress(Exception):
            run.abandon()
        self._ended(self._broken(job, error))

    def _wait_ms(self) -> int:
        now = time.monotonic()
        until = min((run.next_check() for run in self._runs), default=now + _IDLE_WAKE_S)
        return max(0, min(int((until - now) * 1000) + 1, int(_IDLE_WAKE_S * 1000)))
