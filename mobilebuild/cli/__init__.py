"""The root typer app: global options, sub-commands, and the one place errors become exit codes.

Exit codes: 0 ok, 1 a user-facing problem (UserError), 2 usage error, 130 interrupted,
3 internal error (traceback written to a log file whose path is printed).
Nothing here imports TensorFlow: command modules import it lazily inside their functions.
"""

from __future__ import annotations

import sys
import traceback
from typing import Optional

import typer

try:  # typer >= 0.20 vendors click; its exceptions are not click's
    from typer import _click as click
except ImportError:  # pragma: no cover - older typer uses click itself
    import click

from mobilebuild import __version__, console
from mobilebuild.errors import CommandError, UserError

EXIT_OK, EXIT_USER, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

# Global flags may be given after the command too; main() moves them to the front.
GLOBAL_FLAGS = ("--verbose", "-v", "--json", "--no-color")

app = typer.Typer(
    name="mobilebuild",
    help="From a TensorFlow image model to a running mobile demo app, in one command.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        print(f"mobilebuild {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every external command and file write."),
    json_out: bool = typer.Option(False, "--json", help="Machine-readable result alone on stdout."),
    no_color: bool = typer.Option(False, "--no-color", help="No colours (also: NO_COLOR set)."),
    version: Optional[bool] = typer.Option(
        None, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    console.configure(verbose=verbose, json_mode=json_out, no_color=no_color)


def _register_commands() -> None:
    # Each command module adds its commands; all of them import TensorFlow lazily.
    from mobilebuild.cli import app_cmds, build_cmds, devices, machine, model

    model.register(app)
    app_cmds.register(app)
    build_cmds.register(app)
    devices.register(app)
    machine.register(app)


_register_commands()


def hoist_global_flags(argv: list[str]) -> list[str]:
    """Move global flags found after the command name to the front (before ``--`` only)."""
    if "--" in argv:
        cut = argv.index("--")
        head, tail = argv[:cut], argv[cut:]
    else:
        head, tail = argv, []
    flags = [a for a in head if a in GLOBAL_FLAGS]
    rest = [a for a in head if a not in GLOBAL_FLAGS]
    return flags + rest + tail


def _write_crash_log(exc: BaseException) -> str:
    from mobilebuild.paths import new_log_path

    try:
        path = new_log_path("crash")
        path.write_text(
            f"mobilebuild {__version__}\nargv: {sys.argv!r}\n\n"
            + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        )
        return str(path)
    except OSError:
        return "(could not write a log file)"


def _report_user_error(exc: UserError) -> None:
    console.error(exc.message, exc.hint)
    if isinstance(exc, CommandError):
        tail = exc.output_tail(15)
        if tail:
            console.err().print(tail, markup=False, highlight=False)
        if exc.log_path:
            console.info(f"  full log: {exc.log_path}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app and map every outcome to an exit code."""
    args = hoist_global_flags(list(sys.argv[1:] if argv is None else argv))
    code = run(args)
    sys.exit(code)


def run(args: list[str]) -> int:
    try:
        rv = app(args=args, prog_name="mobilebuild", standalone_mode=False)
        # click returns the exit code of typer.Exit in non-standalone mode
        return rv if isinstance(rv, int) else EXIT_OK
    except UserError as exc:
        _report_user_error(exc)
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        console.error("interrupted")
        return EXIT_INTERRUPTED
    except click.ClickException as exc:  # usage errors, including a bare group (no_args_is_help)
        exc.show(file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        console.error("interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: keep the traceback out of the user's face but on disk
        path = _write_crash_log(exc)
        console.error(f"internal error: {type(exc).__name__}: {exc}", "please report it with the log")
        console.info(f"  traceback written to {path}")
        return EXIT_INTERNAL
