"""`glisk authors …`: the people whose prompts become NFT images."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from glisk_cli.cli import context
from glisk_cli.cli.output import JsonOption, emit
from glisk_cli.errors import NotFound

app = typer.Typer(help="Add and look up authors.", no_args_is_help=True, rich_markup_mode=None)


def author_document(author: Any) -> dict[str, Any]:
    return {
        "id": author.id,
        "wallet_address": author.wallet_address,
        "twitter_handle": author.twitter_handle,
        "farcaster_handle": author.farcaster_handle,
        "prompt_text": author.prompt_text,
        "created_at": author.created_at,
    }


@app.command()
def add(
    wallet: Annotated[str, typer.Option("--wallet", help="0x and 40 hex digits.")],
    prompt: Annotated[str, typer.Option("--prompt", help="The author's prompt text.")],
    twitter: Annotated[str | None, typer.Option("--twitter", help="Twitter/X handle.")] = None,
    farcaster: Annotated[str | None, typer.Option("--farcaster", help="Farcaster handle.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Add an author (exit 6 if the wallet exists, in any letter case)."""
    from glisk_cli.models import Author

    author = Author(
        wallet_address=wallet,
        prompt_text=prompt,
        twitter_handle=twitter,
        farcaster_handle=farcaster,
    )
    with context.unit_of_work() as uow:
        uow.authors.add(author)
    emit(author_document(author), as_json=as_json, title="author")


@app.command()
def get(
    wallet: Annotated[str, typer.Argument(help="Wallet address, any letter case.")],
    as_json: JsonOption = False,
) -> None:
    """Show the author with WALLET (exit 5 if there is none)."""
    with context.unit_of_work() as uow:
        author = uow.authors.get_by_wallet(wallet)
    if author is None:
        raise NotFound(f"author {wallet} not found")
    emit(author_document(author), as_json=as_json, title="author")


@app.command("list")
def list_(
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=1000, help="At most this many.")
    ] = 100,
    offset: Annotated[
        int, typer.Option("--offset", min=0, help="Skip this many first (the next page).")
    ] = 0,
    as_json: JsonOption = False,
) -> None:
    """Authors, oldest first, one page at a time."""
    with context.unit_of_work() as uow:
        found = list(uow.authors.list_all(limit, offset))
    if as_json:
        emit([author_document(author) for author in found], as_json=True)
        return
    from glisk_cli.cli import humanize
    from glisk_cli.cli.output import print_table
    from glisk_cli.cli.token_views import WIDE, width

    now = humanize.now()
    rows = [
        {
            "wallet": humanize.middle(author.wallet_address, 13),
            "twitter": humanize.end(author.twitter_handle, 14),
            "farcaster": humanize.end(author.farcaster_handle, 14),
            "prompt": humanize.end(author.prompt_text, 28),
            "added": humanize.relative(author.created_at, now),
        }
        for author in found
    ]
    columns = ["wallet", "twitter", "prompt", "added"]
    if width() >= WIDE:
        columns.insert(2, "farcaster")
    print_table(rows, columns)
