"""What `glisk serve --dashboard` shows, read where the terminal's commands read it (one place
per fact): the pipeline as `glisk top --json` has it, and a token as `glisk tokens show` and
`glisk tokens why` have it, with its author's prompt.

The web view (`glisk_cli.serve.dashboard`) receives these readers as plain callables returning
plain documents, so the server knows nothing of Units of Work; they run in its threads.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from glisk_cli.repositories.pipeline_view import PipelineReading
    from glisk_cli.uow import UnitOfWork

UnitsOfWork = Callable[[], "UnitOfWork"]


def pipeline_reader(
    units: UnitsOfWork,
    revision: Callable[[], str | None],
    *,
    url: str,
    lease: timedelta,
    interval: float,
) -> Callable[[], dict[str, Any]]:
    """The pipeline now, as the one document of `glisk top --json`; the monitor behind it keeps
    the backlogs between reads, so rates and ETAs come out as `glisk top` works them out.
    `lease` is GLISK_LEASE (a worker's last renewal is worked out from it)."""
    from glisk_cli.cli.top_state import Monitor, document

    def read() -> PipelineReading:
        with units() as uow:
            return uow.pipeline_view.read(lease)

    monitor = Monitor(read, revision, url=url, interval=interval, lease=lease)
    return lambda: document(monitor.refresh())


def token_reader(units: UnitsOfWork) -> Callable[[int], dict[str, Any] | None]:
    """A token's page by its id (None: there is no such token): its fields as `glisk tokens
    show --json` prints them, its author, its attempts from the history tables with each error
    in one redacted line (as `glisk top` shows errors), and why it waits as `glisk tokens why
    --json` says it. One transaction; every read an index lookup."""
    from glisk_cli.cli.authors import author_document
    from glisk_cli.cli.top_state import message
    from glisk_cli.documents import token_document

    def read(token_id: int) -> dict[str, Any] | None:
        with units() as uow:
            token = uow.tokens.get_by_token_id(token_id)
            if token is None:
                return None
            author = uow.authors.get_by_id(token.author_id)
            attempts = uow.tokens.attempts(token.id)
            why = uow.why.explain(token_id)
        return {
            "token": token_document(token),
            "author": None if author is None else author_document(author),
            "attempts": [
                {
                    **attempt,
                    "message": None if attempt["error"] is None else message(attempt["error"]),
                }
                for attempt in attempts
            ],
            "why": why.document(),
        }

    return read
