"""`glisk tokens …`: the work queue — claim, inspect, move through the state machine, recover."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from glisk_cli.cli import context, token_views, values
from glisk_cli.cli.output import JsonOption, YesOption, confirm_or_refuse, emit, say, say_data
from glisk_cli.documents import token_document
from glisk_cli.pipeline import MAX_BATCH, StageName, TokenStatus, token_id_in

if TYPE_CHECKING:
    from collections.abc import Sequence

    from glisk_cli.models import Token
    from glisk_cli.repositories.token_records import ClaimedToken

app = typer.Typer(
    help="Claim, inspect and move tokens through the pipeline.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


MAX_WAIT_S = 86400.0  # a day: a worker waiting longer should claim again

TokenIdArgument = Annotated[
    int, typer.Argument(help="On-chain token id.", min=0, max=values.INTEGER_MAX)
]
WorkerOption = Annotated[
    str | None,
    typer.Option("--worker", help="Act as this worker: refused unless it holds the lease."),
]
LeaseIdOption = Annotated[
    str | None,
    typer.Option(
        "--lease-id",
        help="The lease id the claim printed: refused (exit 6) unless the token is still held "
        "under it.",
    ),
]
LeaseOption = Annotated[
    str | None, typer.Option("--lease", help="How long the lease lasts: 90s, 15m, 1h.")
]


def _emit_tokens(
    tokens: Sequence[Token | ClaimedToken], *, as_json: bool, held: bool = False
) -> None:
    """The tokens as JSON documents or a table; `held` (a claim, a renewal): the table shows
    the lease id that renew, mark and release take, and says so when nothing was claimed."""
    if as_json:
        emit([token_document(token) for token in tokens], as_json=True)
    elif held and not tokens:
        say("no token claimed: none waiting, or the stage is held back (glisk tokens why)")
    else:
        token_views.print_tokens(tokens, held=held)


@app.command()
def claim(
    stage: Annotated[StageName, typer.Option("--stage", help="Which queue to claim from.")] = (
        StageName.GENERATION
    ),
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=MAX_BATCH, help="At most this many.")
    ] = 10,
    worker: Annotated[
        str | None, typer.Option("--worker", help="Who claims (default: hostname:pid).")
    ] = None,
    lease: LeaseOption = None,
    wait: Annotated[
        float,
        typer.Option(
            "--wait",
            min=0,
            max=MAX_WAIT_S,  # refuses inf too: a wait that never ends is a mistake
            help=f"If nothing is claimable, wait up to this many seconds (≤ {MAX_WAIT_S:.0f}).",
        ),
    ] = 0,
    as_json: JsonOption = False,
) -> None:
    """Claim up to --limit tokens of --stage as one job under one lease: expired leases first,
    then the oldest mints nobody holds; nothing while the stage's controls admit no job
    (`glisk stage list`). Printed oldest mint first."""
    from glisk_cli.db.listen import Listener
    from glisk_cli.policy import default_worker
    from glisk_cli.work.waiting import claim_or_wait

    lease_length = values.duration(lease)  # None: the configured GLISK_LEASE
    holder = worker or default_worker()

    def attempt() -> list[ClaimedToken]:
        with context.unit_of_work() as uow:
            return uow.tokens.claim(stage, limit, holder, lease_length)

    database = context.database()
    # Woken by NOTIFY when a session can LISTEN; behind a transaction pooler, polling.
    can_listen = wait and database.can_listen
    listener = Listener(database.session_engine("LISTEN")) if can_listen else None
    tokens = claim_or_wait(listener, attempt, wait)
    _emit_tokens(tokens, as_json=as_json, held=True)


@app.command("list")
def list_(
    status: Annotated[
        list[TokenStatus] | None,
        typer.Option("--status", help="Only these statuses (repeatable)."),
    ] = None,
    author: Annotated[str | None, typer.Option("--author", help="Only this author's.")] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=MAX_BATCH, help="At most this many (one page).")
    ] = 50,
    after: Annotated[
        int | None, typer.Option("--after", help="Start after this token id (next page).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Tokens by on-chain id, one page at a time (continue with --after LAST_ID)."""
    from glisk_cli.errors import NotFound

    with context.unit_of_work() as uow:
        author_id = None
        if author is not None:
            found = uow.authors.get_by_wallet(author)
            if found is None:
                raise NotFound(f"author {author} not found")
            author_id = found.id
        tokens = list(uow.tokens.list(status or [], author_id, limit, after))
    _emit_tokens(tokens, as_json=as_json)


@app.command()
def show(token_id: TokenIdArgument, as_json: JsonOption = False) -> None:
    """Everything about one token, and its attempts from the history tables (in JSON, under
    `history`; exit 5 if there is no such token)."""
    with context.unit_of_work() as uow:
        token = uow.tokens.require(token_id)
        attempts = uow.tokens.attempts(token.id)
    if as_json:
        emit({**token_document(token), "history": attempts}, as_json=True)
    else:
        token_views.print_token(token, attempts)


@app.command()
def why(token_id: TokenIdArgument, as_json: JsonOption = False) -> None:
    """Why the token is not moving, in one sentence: done; failed (why); held by a worker
    until a time; its lease ran out; waiting out a retry delay; its stage paused, cooling down,
    at its concurrency limit or rate-limited; or next in line behind older tokens (exit 5 if
    there is no such token)."""
    with context.unit_of_work() as uow:
        answer = uow.why.explain(token_id)
    if as_json:
        emit(answer.document(), as_json=True)
    else:
        say_data(answer.message)


@app.command()
def stats(as_json: JsonOption = False) -> None:
    """Tokens per status with the oldest one's age, leases, and failures by reason."""
    with context.unit_of_work() as uow:
        report = uow.tokens.stats()
    if as_json:
        emit(report.as_document(), as_json=True)
    else:
        token_views.print_stats(report)


@app.command()
def mark(
    token_id: TokenIdArgument,
    status: Annotated[TokenStatus, typer.Argument(help="The status to move the token to.")],
    image_path: Annotated[
        str | None, typer.Option("--image-path", help="The generated image (for uploading).")
    ] = None,
    metadata_cid: Annotated[
        str | None, typer.Option("--metadata-cid", help="The metadata's IPFS CID (for ready).")
    ] = None,
    tx_hash: Annotated[
        str | None,
        typer.Option(
            "--tx-hash", callback=values.tx_hash, help="The reveal transaction (for revealed)."
        ),
    ] = None,
    error: Annotated[
        str | None, typer.Option("--error", help="JSON object recorded with failed.")
    ] = None,
    image_cid: Annotated[
        str | None, typer.Option("--image-cid", help="The image's IPFS CID (with ready).")
    ] = None,
    worker: WorkerOption = None,
    lease_id: LeaseIdOption = None,
    as_json: JsonOption = False,
) -> None:
    """Move a token through the state machine (exit 6 for an illegal move or a lost lease)."""
    error_data = values.json_object(error)
    with context.unit_of_work() as uow:
        token = uow.tokens.transition(
            token_id,
            status,
            worker=worker,
            lease_id=values.lease_id(lease_id),
            image_cid=image_cid,
            image_path=image_path,
            metadata_cid=metadata_cid,
            tx_hash=tx_hash,
            error=error_data,
        )
    if as_json:
        emit(token_document(token), as_json=True)
    else:
        token_views.print_token(token)


# A JSON value may be a negative number, and token ids come first: take them all as arguments.
@app.command(context_settings={"ignore_unknown_options": True})
def checkpoint(
    lease_id: Annotated[str, typer.Option("--lease-id", help="The lease the job holds.")],
    arguments: Annotated[
        list[str],
        typer.Argument(
            metavar="TOKEN_ID... JSON",
            help="The tokens (all held under --lease-id), then the checkpoint: a JSON object "
            "of at most 64 kB, or - to read it from stdin.",
        ),
    ],
    as_json: JsonOption = False,
) -> None:
    """Record a checkpoint for the tokens before a side effect: exit 0 once it is durable, 6
    when the lease is gone (nothing is recorded, and the job must not go on), 2 when it is not
    a JSON object. The next attempt reads it on stdin (`checkpoint`) and resumes."""
    import sys

    if len(arguments) < 2:
        raise typer.BadParameter("give TOKEN_ID... then the checkpoint's JSON")
    *token_texts, text = arguments
    token_ids = [_token_id(token) for token in token_texts]
    document = values.json_object(sys.stdin.read() if text == "-" else text)
    assert document is not None
    with context.unit_of_work() as uow:
        uow.tokens.checkpoint_lease(values.lease_id(lease_id), document, token_ids)
    if as_json:
        emit({"token_ids": token_ids, "checkpoint": document}, as_json=True)
    else:
        say(
            f"checkpoint recorded for token{'s' if len(token_ids) > 1 else ''} "
            f"{', '.join(map(str, token_ids))}"
        )


def _token_id(text: str) -> int:
    token_id = token_id_in(text)
    if token_id is None:
        raise typer.BadParameter(f"{text!r} is not a token id (a whole number up to 2^31 - 1)")
    return token_id


@app.command()
def renew(
    lease_id: Annotated[str, typer.Option("--lease-id", help="The lease id the claim printed.")],
    lease: LeaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Extend every token still held under --lease-id by --lease from now (default
    GLISK_LEASE); prints them. Exit 6 when none is held under it any more."""
    from glisk_cli.errors import Conflict

    with context.unit_of_work() as uow:
        tokens = uow.tokens.renew_lease(values.lease_id(lease_id), values.duration(lease))
    if not tokens:
        raise Conflict(f"no token is held under lease {lease_id}", hint="claim again")
    _emit_tokens(tokens, as_json=as_json, held=True)


@app.command()
def release(
    token_ids: Annotated[
        list[int], typer.Argument(help="On-chain token ids.", min=0, max=values.INTEGER_MAX)
    ],
    worker: WorkerOption = None,
    lease_id: LeaseIdOption = None,
    retry_in: Annotated[
        str | None,
        typer.Option("--retry-in", help="Not claimable again before this long: 20s, 5m."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """End the leases on tokens so any worker may claim them again (a generating token goes
    back to detected)."""
    with context.unit_of_work() as uow:
        tokens = uow.tokens.release_by_token_id(
            token_ids,
            worker=worker,
            lease_id=values.lease_id(lease_id),
            retry_in=values.delay(retry_in),
        )
    _emit_tokens(tokens, as_json=as_json)


@app.command()
def reap(as_json: JsonOption = False) -> None:
    """Fail every unfinished token that used up GLISK_MAX_ATTEMPTS and holds no live lease."""
    with context.unit_of_work() as uow:
        tokens = uow.tokens.reap()  # the configured GLISK_MAX_ATTEMPTS
    _emit_tokens(tokens, as_json=as_json)
    if not as_json:
        say(f"reaped {len(tokens)} token(s)")


@app.command()
def retry(
    token_ids: Annotated[
        list[int] | None,
        typer.Argument(help="On-chain ids of failed tokens.", min=0, max=values.INTEGER_MAX),
    ] = None,
    all_failed: Annotated[
        bool, typer.Option("--all-failed", help="Retry every failed token.")
    ] = False,
    from_start: Annotated[
        bool,
        typer.Option("--from-start", help="Back to detected instead: every stage again."),
    ] = False,
    yes: YesOption = False,
    as_json: JsonOption = False,
) -> None:
    """Send failed tokens back to the stage that failed, with their attempts reset: the first
    stage whose output the token lacks (no image: generation; no metadata CID: upload; else
    reveal), keeping what earlier stages made. --from-start sends them back to detected."""
    from glisk_cli.errors import InvalidInput

    if bool(token_ids) == all_failed:
        raise InvalidInput("name the failed tokens to retry, or pass --all-failed (not both)")
    if all_failed:
        where = "detected" if from_start else "the stage that failed"
        confirm_or_refuse(f"Send every failed token back to {where}?", yes=yes)
    with context.unit_of_work() as uow:
        tokens = uow.tokens.retry(None if all_failed else token_ids, from_start=from_start)
    _emit_tokens(tokens, as_json=as_json)
