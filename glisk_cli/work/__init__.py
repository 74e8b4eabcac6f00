"""The worker runner: claim a stage's tokens, run a job for each (a command in any language, or a
Python function), keep the leases alive, record every attempt, retry with backoff, and stop
cleanly (docs/architecture.md, "The worker runner").

For Python workers::

    from glisk_cli.work import work

    def generate(token):                      # a ClaimedToken
        path = render(token)                  # the real work, outside any transaction
        return {"image_path": path}           # the stage's result fields

    work("generation", generate, concurrency=4)   # until SIGTERM/SIGINT, or drain=True

Nothing is imported here until it is used: `glisk tokens claim --wait` waits with this
package's `waiting` module, and must not pay for the runner.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from glisk_cli.db import Database
    from glisk_cli.uow import UnitOfWork
    from glisk_cli.work.options import WorkOptions
    from glisk_cli.work.programs import Program
    from glisk_cli.work.report import Report

__all__ = ["run_until_stopped", "work"]


def work(
    stage: str,
    handler: Callable[[Any], Any],
    *,
    concurrency: int = 1,
    lease: timedelta = timedelta(seconds=60),
    timeout: timedelta | None = None,
    grace: timedelta = timedelta(seconds=30),
    batch: int = 1,
    worker: str | None = None,
    drain: bool = False,
) -> dict[str, object]:
    """Run `handler` for `stage`'s tokens on the database the settings name (as `glisk work`
    does), until a signal stops it or, with `drain`, the stage has no work left. Returns the
    summary `glisk work --json` prints."""
    from glisk_cli.db import Database
    from glisk_cli.pipeline import stage_named
    from glisk_cli.policy import default_worker
    from glisk_cli.uow import create_uow_factory
    from glisk_cli.work.options import WorkOptions
    from glisk_cli.work.programs import Handler

    options = WorkOptions(
        stage=stage_named(stage).name,
        worker=worker or default_worker(),
        concurrency=concurrency,
        lease=lease,
        timeout=timeout,
        grace=grace,
        batch=batch,
        drain=drain,
    )
    database = Database.from_settings()
    try:
        program = Handler(handler, batched=batch > 1)
        summary, _ = run_until_stopped(database, create_uow_factory(database), program, options)
        return summary
    finally:
        database.dispose()


def run_until_stopped(
    database: Database,
    uow_factory: Callable[[], UnitOfWork],
    program: Program,
    options: WorkOptions,
    *,
    report: Report | None = None,
    on_turn: Callable[[Report], None] | None = None,
) -> tuple[dict[str, object], str | None]:
    """Run `program` for `options.stage` on `database` until a signal stops it (or, with
    `drain`, the stage has no work left), waiting on NOTIFY where a session can LISTEN. Returns
    the summary, and the stop's reason (None: drained)."""
    from glisk_cli.db.listen import Listener
    from glisk_cli.pipeline import STAGES
    from glisk_cli.work.checkpoints import CheckpointServer
    from glisk_cli.work.command_slots import CommandSlots
    from glisk_cli.work.executor import Executor, HandlerSlots
    from glisk_cli.work.programs import Command
    from glisk_cli.work.runner import Runner
    from glisk_cli.work.signals import stopped_by_signals
    from glisk_cli.work.waiting import Waiter

    listener = Listener(database.session_engine("LISTEN")) if database.can_listen else None
    waiter = Waiter(listener)
    stage = STAGES[options.stage]
    # A command's jobs record checkpoints through the runner; a handler calls the library.
    checkpoints = CheckpointServer(uow_factory, stage) if isinstance(program, Command) else None
    try:
        executor: Executor
        if isinstance(program, Command):
            path = None if checkpoints is None else checkpoints.path
            executor = CommandSlots(program, stage, options, waiter.wake, path)
        else:
            executor = HandlerSlots(program, stage, options, waiter.wake)
        runner = Runner(
            uow_factory, program, executor, waiter, options, report=report, on_turn=on_turn
        )
        with stopped_by_signals(runner):
            summary = runner.run()
    finally:
        if checkpoints is not None:
            checkpoints.close()
    return summary, runner.stop_reason
