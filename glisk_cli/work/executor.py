"""The runner's executor: runs claimed jobs, at most `concurrency` at a time, each starting as soon
as a slot is free, and hands the ended ones back to the loop.

The slots pull their work: a slot that frees up starts the next claimed job at once, never
waiting for the loop, which may be busy with the database (River's executor pool has the same
shape for the same reason). Commands are driven by one thread for all slots
(`command_slots.py`); a Python handler is called by a thread per slot (`HandlerSlots`, below),
as a function call can only be waited for by blocking.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from functools import partial
from queue import Empty, SimpleQueue

from glisk_cli.pipeline import Stage
from glisk_cli.work.jobs import Job
from glisk_cli.work.options import WorkOptions
from glisk_cli.work.programs import Handler, HandlerRun
from glisk_cli.work.protocol import EXCEPTION, Interrupted, failed_all


class Executor:
    """What every executor shares: the queue of claimed jobs, the jobs that ended, and the jobs
    running now. Subclasses run the jobs (on threads of their own), taking each from `_next`
    and handing it back ended through `_ended`; `wake` is called whenever ended jobs are ready
    to collect."""

    def __init__(self, stage: Stage, options: WorkOptions, wake: Callable[[], None]) -> None:
        self._stage, self._options, self._wake = stage, options, wake
        self._ready: SimpleQueue[Job | None] = SimpleQueue()  # None: close() was called
        self._done: SimpleQueue[Job] = SimpleQueue()
        self._running: dict[uuid.UUID, Job] = {}
        self._lock = threading.Lock()

    def submit(self, jobs: list[Job]) -> None:
        for job in jobs:
            self._ready.put(job)
        self._notify()

    def hand_back(self, jobs: list[Job]) -> None:
        """End `jobs` unstarted, as stopped for a shutdown (their claims not counted)."""
        for job in jobs:
            self._done.put(job.end({token.id: Interrupted("shutdown") for token in job.tokens}, 0))
        self._wake()

    def hand_back_queued(self) -> None:
        """Stopping: the jobs no slot has started yet will now never start."""
        taken: list[Job] = []
        while True:
            try:
                job = self._ready.get_nowait()
            except Empty:
                break
            if job is not None:
                taken.append(job)
            else:
                self._ready.put(None)  # close() was called: keep its word for the slots
                break
        if taken:
            self.hand_back(taken)

    def ended(self) -> list[Job]:
        """The jobs that ended since the last call."""
        found: list[Job] = []
        while True:
            try:
                found.append(self._done.get_nowait())
            except Empty:
                return found

    def extend(self, jobs: list[Job]) -> None:
        """The leases of `jobs` were renewed: their deadlines moved (`Job.deadline`)."""

    def running(self) -> list[Job]:
        with self._lock:
            return list(self._running.values())

    def close(self) -> None:
        """Let the slots end once what they run now (if anything) has ended."""
        self._ready.put(None)
        self._notify()

    # -- for the subclasses ------------------------------------------------------------------

    def _notify(self) -> None:
        """Jobs were queued (or close() called); slots that wait for them are woken."""

    def _next(self, *, block: bool) -> Job | None:
        """The next claimed job (None: close() was called); Empty when none waits and not
        `block`."""
        return self._ready.get(block=block)

    def _started(self, job: Job) -> None:
        with self._lock:
            self._running[job.id] = job

    def _ended(self, job: Job) -> None:
        """Hand an ended job back (the caller wakes the loop: once for many is enough)."""
        with self._lock:
            self._running.pop(job.id, None)
        self._done.put(job)

    def _unstartable(self, job: Job) -> bool:
        """End a job that must not start (its lease was lost, or the runner stops): True if so."""
        if job.killed is None:
            return False
        job.end({token.id: Interrupted(job.killed) for token in job.tokens}, 0)
        return True

    def _broken(self, job: Job, error: Exception) -> Job:
        """A job whose driving broke fails its attempt; it must not take the runner with it."""
        return job.end(failed_all(job.tokens, f"{type(error).__name__}: {error}", EXCEPTION), 0)


class HandlerSlots(Executor):
    """A thread per slot, each calling the handler for the next claimed job itself. A kill
    (a lost lease, a shutdown, the timeout) that comes while the function runs ends the job at
    once and gives its slot to a new thread; the old one ends when the function returns."""

    def __init__(
        self, handler: Handler, stage: Stage, options: WorkOptions, wake: Callable[[], None]
    ) -> None:
        super().__init__(stage, options, wake)
        self._handler = handler
        timeout = options.timeout
        self._timeouts = None if timeout is None else _Timeouts(timeout.total_seconds())
        for _ in range(options.concurrency):
            self._open_slot()

    def close(self) -> None:
        for _ in range(self._options.concurrency):
            self._ready.put(None)
        if self._timeouts is not None:
            self._timeouts.close()

    def _open_slot(self) -> None:
        threading.Thread(target=self._slot, daemon=True, name="glisk-work-slot").start()

    def _slot(self) -> None:
        while (job := self._next(block=True)) is not None:
            self._started(job)
            if not self._run(job):
                return  # killed while the function ran: the slot is another thread's now
            self._ended(job)
            self._wake()

    def _run(self, job: Job) -> bool:
        """Run `job` in this thread: False if a kill ended it meanwhile."""
        if self._unstartable(job):
            return True
        timeouts = self._timeouts
        try:
            run = self._handler.start(self._stage, job.tokens, partial(self._abandoned, job))
            job.attach(run)
            if timeouts is not None:
                timeouts.add(run)
            mine = run.call()
            if timeouts is not None:
                timeouts.discard(run)
            if not mine:
                return False
            assert run.result is not None, "a call that returns True decided the outcomes"
            job.end(*run.result)
        except Exception as error:
            self._broken(job, error)
        return True

    def _abandoned(self, job: Job, run: HandlerRun) -> None:
        """A kill ended `job` while its function runs on in its slot's thread."""
        assert run.result is not None, "a kill decides the outcomes before it abandons"
        self._ended(job.end(*run.result))
        self._wake()
        self._open_slot()


class _Timeouts:
    """Kills each handler run its timeout after it started: one thread for all slots. Runs
    start in order and share one timeout, so the first of those left is the next due."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._due: dict[HandlerRun, float] = {}  # in the order they started
        self._changed = threading.Condition()
        self._closed = False
        threading.Thread(target=self._watch, daemon=True, name="glisk-work-timeouts").start()

    def add(self, run: HandlerRun) -> None:
        with self._changed:
            self._due[run] = time.monotonic() + self._seconds
            if len(self._due) == 1:
                self._changed.notify()

    def discard(self, run: HandlerRun) -> None:
        with self._changed:
            self._due.pop(run, None)

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify()

    def _watch(self) -> None:
        while True:
            with self._changed:
                if self._closed:
                    return
                run, due = next(iter(self._due.items()), (None, None))
                if run is None or due is None or due > time.monotonic():
                    self._changed.wait(None if due is None else due - time.monotonic())
                    continue
                del self._due[run]
            run.kill("timeout")
