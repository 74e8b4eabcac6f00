"""`glisk dev seed`: synthetic authors and detected tokens, to try glisk out or benchmark it."""

from __future__ import annotations

from typing import Annotated

import typer

from glisk_cli.cli import context
from glisk_cli.cli.output import JsonOption, YesOption, confirm_or_refuse, print_json, say

app = typer.Typer(
    help="Development helpers (refused when APP_ENV=production).", rich_markup_mode=None
)

BATCH = 50_000


@app.command()
def seed(
    authors: Annotated[
        int, typer.Option("--authors", min=1, max=100_000, help="Authors to add.")
    ] = 10,
    tokens: Annotated[
        int, typer.Option("--tokens", min=0, max=10_000_000, help="Detected tokens to add.")
    ] = 1000,
    yes: YesOption = False,
    as_json: JsonOption = False,
) -> None:
    """Insert synthetic authors and detected tokens (new ids after the highest existing one).

    Tokens are written in batches of 50,000, each committed on its own: an interrupted seed
    leaves whole batches behind, never part of one, and says how many it committed.
    """
    from rich.progress import Progress

    from glisk_cli.errors import InvalidInput

    if context.settings().app_env == "production":
        raise InvalidInput("glisk dev seed is refused when APP_ENV=production")
    confirm_or_refuse(f"Add {authors} authors and {tokens} tokens to the database?", yes=yes)
    with context.unit_of_work() as uow:
        author_ids = uow.synthetic.add_authors(authors)
        next_token_id = uow.synthetic.max_token_id() + 1
    committed = 0
    try:
        with Progress(transient=True, disable=tokens < BATCH) as progress:  # stderr by default
            task = progress.add_task("seeding tokens", total=tokens)
            while committed < tokens:
                batch = min(BATCH, tokens - committed)
                with context.unit_of_work() as uow:
                    uow.synthetic.add_tokens(batch, next_token_id + committed, author_ids)
                committed += batch
                progress.update(task, completed=committed)
    except KeyboardInterrupt:
        say(f"interrupted: {committed} of {tokens} tokens committed (whole batches only)")
        raise
    report = {"authors": authors, "tokens": committed, "first_token_id": next_token_id}
    if as_json:
        print_json(report)
    else:
        say(f"seeded {authors} authors and {committed} tokens from id {next_token_id}")
