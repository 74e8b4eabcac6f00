"""What a runner runs for each job: a command in any language (`glisk work … -- CMD`), or a Python
function (the library's way). Both give the same per-token outcomes.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from glisk_cli.errors import InvalidInput
from glisk_cli.pipeline import Stage
from glisk_cli.repositories.token_records import ClaimedToken
from glisk_cli.work.process import MAX_ANSWER, STDERR_TAIL, CommandExit, CommandRun
from glisk_cli.work.protocol import (
    BAD_ANSWER,
    EXCEPTION,
    EXIT,
    KILLED,
    TIMEOUT,
    Failed,
    Interrupted,
    TokenOutcome,
    failed_all,
    job_input,
    read_answer,
)

if TYPE_CHECKING:
    from glisk_cli.work.watchdog import Watchdog


class Run(Protocol):
    """A job's program, running: something to stop."""

    def kill(self, reason: str) -> None:
        """Stop it now (`lease_lost`, `shutdown`); safe from any thread, any number of times."""
        ...


@dataclass
class Command:
    """COMMAND [ARG…], run once per job: the token documents on stdin, the answer on stdout.
    Its runs are driven by the runner's command slots (`work/command_slots.py`)."""

    argv: Sequence[str]
    batched: bool = False

    def __post_init__(self) -> None:
        if not self.argv:
            raise InvalidInput("no command to run", hint="glisk work STAGE -- COMMAND [ARG...]")
        program = self.argv[0]
        found = shutil.which(program)
        if found is None:
            is_path = os.sep in program
            problem = "is not executable" if is_path and Path(program).exists() else "is not found"
            raise InvalidInput(f"command {program!r} {problem}")
        self.name = Path(program).name
        self._program = found  # looked up once: a spawn then tries no other directory
        self._environment = dict(os.environ)  # copied once, not decoded again for every spawn

    def spawn(
        self,
        stage: Stage,
        tokens: Sequence[ClaimedToken],
        worker: str,
        timeout: float | None,
        poller: select.poll,
        watchdog: Watchdog | None = None,
        checkpoints: str | None = None,
    ) -> CommandRun:
        """Start the command for `tokens` (OSError: it could not start); `checkpoints`: the
        runner's checkpoint socket."""
        env = {
            **self._environment,
            "GLISK_TOKEN_ID": ",".join(str(token.token_id) for token in tokens),
            "GLISK_STAGE": stage.name.value,
            "GLISK_ATTEMPT": str(max(token.attempts for token in tokens)),
            "GLISK_WORKER": worker,
            "GLISK_LEASE_ID": str(tokens[0].lease_id),
        }
        if checkpoints is not None:
            env["GLISK_CHECKPOINT_SOCKET"] = checkpoints
        stdin = job_input(tokens, batched=self.batched)
        return CommandRun(self._program, self.argv, stdin, env, timeout, poller, watchdog)

    def outcomes(
        self, stage: Stage, tokens: Sequence[ClaimedToken], exited: CommandExit
    ) -> dict[uuid.UUID, TokenOutcome]:
        """What the command's exit means for each of its tokens."""
        if exited.killed and exited.killed != "timeout":
            return {token.id: Interrupted(exited.killed) for token in tokens}
        details = {"exit_status": exited.exit_status, "stderr": exited.stderr_tail}
        if exited.killed == "timeout":
            return failed_all(tokens, f"timed out after {exited.seconds:.0f}s", TIMEOUT, **details)
        if exited.exit_status != 0:
            ended = EXIT if exited.exit_status > 0 else KILLED
            return failed_all(tokens, _exit_message(exited.exit_status), ended, **details)
        if exited.answer is None:
            too_big = f"the answer is over {MAX_ANSWER} bytes"
            return failed_all(tokens, too_big, BAD_ANSWER, **details)
        try:
            answer = json.loads(exited.answer)
        except ValueError as error:
            # What it printed instead, its start, as the stderr's end is kept.
            printed = exited.answer[:STDERR_TAIL].decode(errors="replace").replace("\x00", "")
            not_json = f"the answer is not JSON ({error})"
            return failed_all(tokens, not_json, BAD_ANSWER, stdout=printed, **details)
        outcomes = read_answer(stage, tokens, answer, batched=self.batched)
        return {
            id: Failed({**outcome.error, **details}) if isinstance(outcome, Failed) else outcome
            for id, outcome in outcomes.items()
        }


def _exit_message(status: int) -> str:
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exited with status {status}"


@dataclass
class Handler:
    """A Python function called in a slot's thread: given a ClaimedToken (or, batched, a list
    of them), it returns what a command would print, as Python values; raising fails the
    attempt.

    A thread cannot be killed: on a timeout or a lost lease the run ends at once, the slot
    goes on in a new thread, and whatever the function returns later is dropped (fencing keeps
    it from the token)."""

    function: Callable[[Any], Any]
    batched: bool = False

    def __post_init__(self) -> None:
        self.name = getattr(self.function, "__name__", "handler")

    def start(
        self,
        stage: Stage,
        tokens: Sequence[ClaimedToken],
        abandon: Callable[[HandlerRun], None],
    ) -> HandlerRun:
        """A run of the function for `tokens`, to be `call`ed; `abandon` is called with it (by
        whoever kills it) when a kill ends the run while the function is still being called."""
        return HandlerRun(self, stage, list(tokens), abandon)


class HandlerRun:
    """One call of a handler, made by `call` in the thread that will wait for it. Its outcomes
    are decided once, by whichever comes first: the function's return, or a kill."""

    def __init__(
        self,
        handler: Handler,
        stage: Stage,
        tokens: list[ClaimedToken],
        abandon: Callable[[HandlerRun], None],
    ) -> None:
        self._handler, self._stage, self._tokens = handler, stage, tokens
        # Dropped once the function's return decided the outcomes: it refers to the job, which
        # refers to this run, and a cycle per job would leave every job to the collector.
        self._abandon: Callable[[HandlerRun], None] | None = abandon
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._calling = False
        self.result: tuple[dict[uuid.UUID, TokenOutcome], float] | None = None

    def call(self) -> bool:
        """Call the function (unless a kill came first) and keep what it came to: False if a
        kill ended the run meanwhile (`abandon` was called: this thread is no longer a slot's)."""
        with self._lock:
            if self.result is not None:
                return True
            self._calling = True
        batched = self._handler.batched
        try:
            answer = self._handler.function(self._tokens if batched else self._tokens[0])
            outcomes = read_answer(self._stage, self._tokens, answer, batched=batched)
        except Exception as error:
            raised = f"{type(error).__name__}: {error}"[:2048]
            outcomes = failed_all(self._tokens, raised, EXCEPTION)
        with self._lock:
            if self.result is not None:
                return False
            self.result = outcomes, time.monotonic() - self._started
            self._abandon = None
            return True

    def kill(self, reason: str) -> None:
        """End the run now (a `timeout` fails the attempt); safe from any thread, any number
        of times."""
        with self._lock:
            if self.result is not None:
                return
            seconds = time.monotonic() - self._started
            outcomes: dict[uuid.UUID, TokenOutcome]
            if reason == "timeout":
                outcomes = failed_all(self._tokens, f"timed out after {seconds:.0f}s", TIMEOUT)
            else:
                outcomes = {token.id: Interrupted(reason) for token in self._tokens}
            self.result = outcomes, seconds
            calling = self._calling
        if calling and self._abandon is not None:
            self._abandon(self)


Program = Command | Handler
