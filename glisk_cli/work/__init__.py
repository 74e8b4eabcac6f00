"""The worker runner: claim a stage's tokens, run a job for each (a command in any language,
or a Python function), keep the leases alive, record every attempt, retry with backoff, and
stop cleanly (docs/architecture.md, "The worker runner").

For Python workers::

    from glisk_cli.work import work

    def generate(token):                      # a ClaimedToken
        path = render(token)                  # the real work, outside any transaction
        return {"image_path": path}           # the stage's result fields

    work("generation", generate, concurrency=4)   # until SIGTERM/SIGINT, or drain=True
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from glisk_cli.pipeline import stage_named
from glisk_cli.work.jobs import CommandJob, HandlerJob, Job
from glisk_cli.work.options import WorkOptions
from glisk_cli.work.runner import Runner
from glisk_cli.work.signals import stopped_by_signals

__all__ = ["CommandJob", "HandlerJob", "Job", "Runner", "WorkOptions", "default_worker", "work"]


def default_worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


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
    from glisk_cli.db.listen import Listener
    from glisk_cli.uow import create_uow_factory

    options = WorkOptions(
        stage=stage_named(stage).name, worker=worker or default_worker(),
        concurrency=concurrency, lease=lease, timeout=timeout, grace=grace, batch=batch,
        drain=drain,
    )  # fmt: skip
    database = Database.from_settings()
    try:
        listener = Listener(database.session_engine("LISTEN")) if database.can_listen else None
        runner = Runner(
            create_uow_factory(database), HandlerJob(handler, batched=batch > 1), options,
            listener=listener,
        )  # fmt: skip
        with stopped_by_signals(runner):
            return runner.run()
    finally:
        database.dispose()
