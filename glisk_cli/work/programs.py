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
    """A Python function run in a thread: given a ClaimedToken (or, batched, a list of them),
    it returns what a command would print, as Python values; raising fails the attempt.

    A thread cannot be killed: on a timeout or a lost lease the run ends at once and whatever
    the function returns later is dropped (fencing keeps it from the token)."""

    function: Callable[[Any], Any]
    batched: bool = False

    def __post_init__(self) -> None:
        self.name = getattr(self.function, "__name__", "handler")

    def start(
        self, stage: Stage, tokens: Sequence[ClaimedToken], timeout: float | None
    ) -> HandlerRun:
        return HandlerRun(self, stage, list(tokens), timeout)


class HandlerRun:
    """A handler's call on its own thread; `wait` blocks (in a slot's thread) until it ends."""

    def __init__(
        self, handler: Handler, stage: Stage, tokens: list[ClaimedToken], timeout: float | None
    ) -> None:
        self._handler, self._stage, self._tokens, self._timeout = handler, stage, tokens, timeout
        self._started = time.monotonic()
        self._done = threading.Event()
        self._killed: str | None = None
        self._outcomes: dict[uuid.UUID, TokenOutcome] = {}
        threading.Thread(target=self._call, daemon=True, name=f"glisk-{handler.name}").start()

    def _call(self) -> None:
        batched = self._handler.batched
        try:
            answer = self._handler.function(self._tokens if batched else self._tokens[0])
            outcomes = read_answer(self._stage, self._tokens, answer, batched=batched)
        except Exception as error:
            raised = f"{type(error).__name__}: {error}"[:2048]
            outcomes = failed_all(self._tokens, raised, EXCEPTION)
        self._outcomes = outcomes
        self._done.set()

    def kill(self, reason: str) -> None:
        if self._killed is None:
            self._killed = reason
        self._done.set()

    def wait(self) -> tuple[dict[uuid.UUID, TokenOutcome], float]:
        """Each token's outcome, and how long the run took."""
        finished = self._done.wait(self._timeout)
        seconds = time.monotonic() - self._started
        if self._killed:
            return {token.id: Interrupted(self._killed) for token in self._tokens}, seconds
        if not finished:
            return failed_all(self._tokens, f"timed out after {seconds:.0f}s", TIMEOUT), seconds
        return self._outcomes, seconds


Program = Command | Handler
