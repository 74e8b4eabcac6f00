"""`glisk state …`: the pipeline's named JSON values (cursors, flags) in system_state."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from glisk_cli.cli import context, values
from glisk_cli.cli.output import JsonOption, emit, print_json, say
from glisk_cli.cli.values import json_value

app = typer.Typer(
    help="Read and write named JSON values (system_state).",
    no_args_is_help=True,
    rich_markup_mode=None,
)

Key = Annotated[
    str, typer.Argument(help="The state key (matched literally).", callback=values.state_key)
]


@app.command()
def get(key: Key, as_json: JsonOption = False) -> None:
    """Print the JSON value stored under KEY (exit 5 if there is none)."""
    with context.unit_of_work() as uow:
        value = uow.system_state.get_state(key)
    print_json(value)  # the value is JSON already: --json changes nothing


# A JSON value may be a negative number: take `-1` as VALUE, not as an unknown option.
@app.command("set", context_settings={"ignore_unknown_options": True})
def set_(
    key: Key,
    value: Annotated[str, typer.Argument(help="A JSON value, or - to read it from stdin.")],
    as_string: Annotated[
        bool, typer.Option("--string", help="Store VALUE as a JSON string, not parsed as JSON.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Store VALUE under KEY, replacing what was there."""
    from glisk_cli.errors import InvalidInput

    text = sys.stdin.read() if value == "-" else value
    try:
        parsed = text if as_string else json_value(text.strip() if value == "-" else text)
    except typer.BadParameter as error:
        # Plain words are the usual slip: say how to store them as they are.
        raise InvalidInput(
            f"VALUE is {error.message}", hint="to store it as a string, add --string"
        ) from None
    with context.unit_of_work() as uow:
        uow.system_state.set_state(key, parsed)
    if as_json:
        print_json({"key": key, "value": parsed})
    else:
        say(f"set {key}")


@app.command()
def delete(key: Key, as_json: JsonOption = False) -> None:
    """Remove KEY. Removing a key that does not exist succeeds too."""
    with context.unit_of_work() as uow:
        existed = uow.system_state.delete_state(key)
    if as_json:
        print_json({"key": key, "deleted": existed})
    else:
        say(f"deleted {key}" if existed else f"{key} did not exist")


@app.command("list")
def list_(
    prefix: Annotated[
        str | None, typer.Option("--prefix", help="Only keys starting with this (literally).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Every key with its value, sorted by key."""
    with context.unit_of_work() as uow:
        rows = [
            {"key": entry.key, "value": entry.state_value, "updated_at": entry.updated_at}
            for entry in uow.system_state.list(prefix)
        ]
    if as_json:
        emit(rows, as_json=True)
        return
    import json

    from glisk_cli.cli import humanize
    from glisk_cli.cli.output import print_table

    now = humanize.now()
    shown = [
        {
            "key": humanize.end(row["key"], 24),
            "value": humanize.end(json.dumps(row["value"], ensure_ascii=False), 34),
            "updated": humanize.relative(row["updated_at"], now),
        }
        for row in rows
    ]
    print_table(shown, ["key", "value", "updated"], elastic="value")
