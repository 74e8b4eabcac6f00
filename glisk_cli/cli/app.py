"""The `glisk` command: composes the sub-apps, owns the global options and the ONE error boundary.

`main()` is the console script. It runs the Typer app without Click's own error handling and
turns every outcome into an exit code (README, "Exit codes"): a GliskError prints one `error: …`
line (JSON on stderr with --json), a usage mistake exits 2, Ctrl-C exits 130, and anything
unexpected exits 1 with a hint to rerun with --debug — never a traceback unless --debug asked.
"""

from __future__ import annotations

import gc
import itertools
import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from typing import Annotated, NoReturn

import typer

# Typer ships Click privately and exports none of its usage errors (only BadParameter), which
# the error boundary must tell apart from glisk's own.
from typer._click.exceptions import NoArgsIsHelpError, UsageError

from glisk_cli import __version__
from glisk_cli.cli import authors, context, db, dev, mints, serve, stage, state, tokens, top, work
from glisk_cli.errors import GliskError, InvalidInput
from glisk_cli.redact import redact


def _root() -> typer.Typer:
    return typer.Typer(
        name="glisk",
        help="The operator's toolkit for the GLISK NFT pipeline database.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        # Plain help text: Rich's formatter (with markdown and syntax highlighting) would triple
        # the start-up time of `glisk --help`, which should be instant.
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )


# What each top-level name adds to the root app.
_COMMANDS: dict[str, Callable[[typer.Typer], object]] = {
    "db": lambda root: root.add_typer(db.app, name="db"),
    "tokens": lambda root: root.add_typer(tokens.app, name="tokens"),
    "state": lambda root: root.add_typer(state.app, name="state"),
    "stage": lambda root: root.add_typer(stage.app, name="stage"),
    "authors": lambda root: root.add_typer(authors.app, name="authors"),
    "mints": lambda root: root.add_typer(mints.app, name="mints"),
    "dev": lambda root: root.add_typer(dev.app, name="dev"),
    "serve": lambda root: root.command("serve")(serve.serve),
    "work": lambda root: root.command("work")(work.work),
    "top": lambda root: root.command("top")(top.top),
}


def _app_with(names: Iterable[str]) -> typer.Typer:
    root = _root()
    root.callback()(_global_options)
    for name in names:
        _COMMANDS[name](root)
    return root


def _app_for(args: list[str]) -> typer.Typer:
    """The root app with only the command `args` runs, when that is plain to see.

    Typer turns every command's signature into Click parameters each time the app runs, which
    costs a one-shot command tens of milliseconds for the commands it does not run. Anything
    else (help, completion, a name that is not a command) gets the whole app, so what users see
    never differs.
    """
    if "_GLISK_COMPLETE" in os.environ:  # shell completion reads its words from elsewhere
        return app
    leading = list(itertools.takewhile(lambda arg: arg.startswith("-"), args))
    name = args[len(leading)] if len(args) > len(leading) else None
    if name in _COMMANDS and set(leading) <= {"--debug"}:
        return _app_with([name])
    return app


def _show_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"glisk {__version__}\n")
        raise typer.Exit()


def _global_options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version."),
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Log at DEBUG and show tracebacks of unexpected errors.")
    ] = False,
) -> None:
    context.debug = debug


app = _app_with(_COMMANDS)  # the whole command tree: help, completion, tests


def main(argv: list[str] | None = None) -> NoReturn:
    """Run glisk with `argv` (default: the process arguments) and exit with the contract's code."""
    args = sys.argv[1:] if argv is None else argv
    # The process runs in UTC: log times, parsed timestamps and anything printed agree.
    os.environ["TZ"] = "UTC"
    time.tzset()
    code = run(args)
    # The interpreter's last garbage collection walks every object the imports made, a large
    # part of a one-shot command's time, and nothing left needs collecting: skip it (as
    # `glisk serve` does; docs/architecture.md, "A one-shot command loads what it uses").
    gc.freeze()
    sys.exit(code)


def run(args: list[str]) -> int:
    """Run one glisk command in this process and return its exit code (never raises)."""
    as_json, debug = "--json" in args, "--debug" in args
    try:
        result = _app_for(args)(args=args, prog_name="glisk", standalone_mode=False)
    except GliskError as error:
        _report(error.code, error.message, error.hint, as_json=as_json)
        return error.exit_code
    except NoArgsIsHelpError as error:
        error.show()
        return error.exit_code
    except UsageError as error:
        where = error.ctx.command_path if error.ctx else "glisk"
        # Typer words a refused choice as a validation library would ("Value error, 'x' is not
        # one of …"): the person needs the second half.
        message = error.format_message().replace(": Value error, ", ": ")
        _report("usage", message, f"see '{where} --help'", as_json=as_json)
        return InvalidInput.exit_code
    except (KeyboardInterrupt, typer.Abort):
        _report("interrupted", "interrupted", None, as_json=as_json)
        return 130
    except BrokenPipeError:
        # The reader of stdout went away (`glisk … | head`); that is not glisk's failure.
        sys.stderr.close()
        return 0
    except Exception as error:
        if debug:
            import traceback

            sys.stderr.write(redact("".join(traceback.format_exception(error))))
        _report(
            "internal_error",
            f"unexpected {type(error).__name__}: {_first_line(error)}",
            None if debug else "rerun with --debug for the traceback",
            as_json=as_json,
        )
        return 1
    return result if isinstance(result, int) else 0


def _report(code: str, message: str, hint: str | None, *, as_json: bool) -> None:
    """The single place an error reaches the user: `error: …` lines, or one JSON object."""
    message = redact(message)
    if as_json:
        error = {"code": code, "message": message} | ({"hint": hint} if hint else {})
        sys.stderr.write(json.dumps({"error": error}, ensure_ascii=False) + "\n")
        return
    lines = message.splitlines() or [code]
    if hint:
        lines[-1] += f" ({hint})"
    sys.stderr.write("".join(f"error: {line}\n" for line in lines))


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else ""
