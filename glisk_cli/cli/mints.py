"""`glisk mints record`: turn an on-chain Mint log into a detected token, exactly once."""

from __future__ import annotations

from typing import Annotated

import typer

from glisk_cli.cli import context, values
from glisk_cli.cli.output import JsonOption, emit, say
from glisk_cli.documents import token_document

app = typer.Typer(help="Record mint events.", no_args_is_help=True, rich_markup_mode=None)


@app.command()
def record(
    tx_hash: Annotated[
        str, typer.Option("--tx-hash", callback=values.tx_hash, help="The mint's transaction.")
    ],
    log_index: Annotated[
        int, typer.Option("--log-index", min=0, help="The Mint log's index in its block.")
    ],
    block_number: Annotated[
        int, typer.Option("--block-number", min=0, help="The block holding the transaction.")
    ],
    block_timestamp: Annotated[
        str, typer.Option("--block-timestamp", help="ISO 8601 with a zone, or Unix seconds.")
    ],
    token_id: Annotated[
        int,
        typer.Option("--token-id", min=0, max=values.MAX_TOKEN_ID, help="The minted token's id."),
    ],
    author: Annotated[str, typer.Option("--author", help="The author's wallet (must exist).")],
    minter: Annotated[
        str, typer.Option("--minter", callback=values.address, help="The minter's wallet.")
    ],
    as_json: JsonOption = False,
) -> None:
    """Record a mint event and create its detected token, in one transaction.

    Recording the same (tx_hash, log_index) again changes nothing and succeeds.
    """
    from glisk_cli.errors import NotFound
    from glisk_cli.models import MintEvent, Token

    minted_at = values.timestamp(block_timestamp)
    event = MintEvent(
        tx_hash=tx_hash,
        log_index=log_index,
        block_number=block_number,
        block_timestamp=minted_at,
        token_id=token_id,
    )
    with context.unit_of_work() as uow:
        recorded = uow.mint_events.add_if_absent(event)
        if recorded:
            found = uow.authors.get_by_wallet(author)
            if found is None:
                raise NotFound(f"author {author} not found", hint="add it: glisk authors add")
            token = uow.tokens.add(
                Token(
                    token_id=token_id,
                    author_id=found.id,
                    minter_address=minter,
                    mint_timestamp=minted_at,
                )
            )
        else:
            token = uow.tokens.require(token_id)
    if as_json:
        emit({"recorded": recorded, "token": token_document(token)}, as_json=True)
        return
    from glisk_cli.cli.token_views import print_token

    print_token(token)
    say("recorded" if recorded else f"already recorded: {tx_hash} log {log_index}; nothing changed")
