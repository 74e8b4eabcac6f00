"""`glisk mints record`: turn on-chain Mint logs into detected tokens, exactly once — one from
options, or many from JSON lines (`--jsonl`, cli/mint_lines.py)."""

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
        str | None,
        typer.Option("--tx-hash", callback=values.tx_hash, help="The mint's transaction."),
    ] = None,
    log_index: Annotated[
        int | None,
        typer.Option(
            "--log-index", callback=values.integer, help="The Mint log's index in its block."
        ),
    ] = None,
    block_number: Annotated[
        int | None,
        typer.Option(
            "--block-number", callback=values.bigint, help="The block holding the transaction."
        ),
    ] = None,
    block_timestamp: Annotated[
        str | None,
        typer.Option("--block-timestamp", help="ISO 8601 with a zone, or Unix seconds."),
    ] = None,
    token_id: Annotated[
        int | None,
        typer.Option("--token-id", callback=values.integer, help="The minted token's id."),
    ] = None,
    author: Annotated[
        str | None,
        typer.Option("--author", callback=values.address, help="The author's wallet (must exist)."),
    ] = None,
    minter: Annotated[
        str | None,
        typer.Option("--minter", callback=values.address, help="The minter's wallet."),
    ] = None,
    jsonl: Annotated[
        str | None,
        typer.Option(
            "--jsonl",
            metavar="FILE|-",
            help="Record many mints instead: one JSON object per line, from FILE or stdin (-), "
            "keyed by the options' names (tx_hash, log_index, block_number, block_timestamp, "
            "token_id, author, minter).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Record a mint event and create its detected token, in one transaction.

    Recording the same (tx_hash, log_index) again with the same values changes nothing and
    succeeds; with other values it is a conflict (exit 6) naming the recorded mint.
    """
    from glisk_cli.errors import InvalidInput
    from glisk_cli.repositories.mint_records import Mint

    fields = {
        "tx_hash": tx_hash,
        "log_index": log_index,
        "block_number": block_number,
        "block_timestamp": values.timestamp(block_timestamp),
        "token_id": token_id,
        "author": author,
        "minter": minter,
    }
    if jsonl is not None:
        given = [_option(name) for name, value in fields.items() if value is not None]
        if given:
            raise InvalidInput(f"--jsonl replaces the mint's options: drop {', '.join(given)}")
        from glisk_cli.cli.mint_lines import record_lines

        record_lines(jsonl, as_json=as_json)
        return
    missing = [_option(name) for name, value in fields.items() if value is None]
    if missing:
        raise InvalidInput(
            f"missing {', '.join(missing)}",
            hint="give every option of the mint, or --jsonl FILE for many",
        )
    mint = Mint(**fields)
    with context.unit_of_work() as uow:
        [recorded] = uow.mint_events.record([mint])
        token = uow.tokens.require(mint.token_id)
    if as_json:
        emit({"recorded": recorded, "token": token_document(token)}, as_json=True)
        return
    from glisk_cli.cli.token_views import print_token

    print_token(token)
    say("recorded" if recorded else f"already recorded: {tx_hash} log {log_index}; nothing changed")


def _option(field: str) -> str:
    return "--" + field.replace("_", "-")
