"""The root typer app: global options, sub-commands, and the one place errors become exit codes.

Exit codes: 0 ok, 1 a user-facing problem (UserError), 2 usage error, 130 interrupted,
3 internal error (traceback written to a log file whose path is printed).
Nothing here imports TensorFlow: command modules import it lazily inside their functions.
"""

from __future__ import annotations

import copy
import errno
import os
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import Optional

import typer

try:  # typer >= 0.20 vendors click; its exceptions are not click's
    from typer import _click as click
except ImportError:  # pragma: no cover - older typer uses click itself
    import click

import mobilebuild
from mobilebuild import console, errors, fsutil
from mobilebuild.errors import CommandError, UserError
from mobilebuild.choices import DEFAULT_SIGNATURE
from mobilebuild.cli import _coerce, _lazy_rich

_lazy_rich.defer()  # before typer's help renderer is imported

EXIT_OK, EXIT_USER, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

# Global flags may be given after the command too; main() moves them to the front.
GLOBAL_FLAGS = ("--verbose", "-v", "--json", "--no-color", "--quiet", "-q")
# ... and global options taking a value (``--signature NAME`` or ``--signature=NAME``).
GLOBAL_VALUE_OPTIONS = ("--signature",)

app = typer.Typer(
    name="mobilebuild",
    help="From a TensorFlow image model to a running mobile demo app, in one command.",
    no_args_is_help=True,
    add_completion=True,  # typer's --install-completion / --show-completion for bash, zsh, fish
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        print(f"mobilebuild {mobilebuild.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every external command and file write."),
    json_out: bool = typer.Option(False, "--json", help="Machine-readable result alone on stdout."),
    no_color: bool = typer.Option(False, "--no-color", help="No colours (also: NO_COLOR set)."),
    signature: str = typer.Option(
        DEFAULT_SIGNATURE, "--signature", metavar="NAME",
        help="Signature of a SavedModel given as a model (any command; also accepted after the command).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress lines: results, warnings and errors only."),
    version: Optional[bool] = typer.Option(
        None, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    console.configure(verbose=verbose, json_mode=json_out, no_color=no_color, quiet=quiet)
    from mobilebuild.graphs import freeze  # only once a command runs: --help does not need it

    freeze.settings.signature = signature


def _register_commands() -> None:
    # Each command module adds its commands; all of them import TensorFlow lazily.
    from mobilebuild.cli import app_cmds, build_cmds, cache_cmds, devices, machine, model, retrain

    model.register(app)
    retrain.register(app)
    app_cmds.register(app)
    build_cmds.register(app)
    devices.register(app)
    machine.register(app)
    cache_cmds.register(app)


_register_commands()


def hoist_global_flags(argv: list[str]) -> list[str]:
    """Move global flags found after the command name to the front (before ``--`` only).

    A token that is the value of the option before it (``--bazel-arg -v``) is that option's
    value, not a global flag, and a command's own option of the same name wins.
    """
    if "--" in argv:
        cut = argv.index("--")
        head, tail = argv[:cut], argv[cut:]
    else:
        head, tail = argv, []
    root = current = _click_root(argv)
    flags: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(head):
        arg = head[i]
        own = _find_option(current, arg) if arg.startswith("-") else None
        if arg in GLOBAL_FLAGS and (own is None or current is root):
            flags.append(arg)
            i += 1
            continue
        if arg.split("=", 1)[0] in GLOBAL_VALUE_OPTIONS and (own is None or current is root):
            take = 1 if "=" in arg else 2
            flags += head[i : i + take]
            i += take
            continue
        rest.append(arg)
        i += 1
        if own is not None and not own.is_flag and not own.count and "=" not in arg and i < len(head):
            rest.append(head[i])  # the option's value, whatever it looks like
            i += 1
        elif not arg.startswith("-") and arg in (getattr(current, "commands", None) or {}):
            current = current.commands[arg]
    return flags + rest + tail


_CLICK_ROOTS: dict[tuple[str, ...], object] = {}


def _click_root(argv: list[str] | None = None):
    """The click command tree of ``app`` with help types users read, built once. Given the
    command line, the tree holds only the command it runs when the line names one: typer
    builds every parameter of every command it is given (reading their signatures and
    annotations), a sizeable part of a quick command's time, while running one command (its
    help and usage errors included) involves nothing of the others."""
    path = _command_path(argv) if argv is not None else ()
    if path not in _CLICK_ROOTS:
        root = typer.main.get_command(_app_for(path))
        _tidy_help_types(root)
        _coerce.install(root)
        _CLICK_ROOTS[path] = root
    return _CLICK_ROOTS[path]


def _command_path(argv: list[str]) -> tuple[str, ...]:
    """The names of the command ``argv`` runs (("android",), ("model", "inspect")); () when it
    names none plainly (root help, --version, a group alone, a typo, shell completion): then
    the whole tree is needed."""
    if any(key.startswith("_") and key.endswith("_COMPLETE") for key in os.environ):
        return ()  # shell completion lists what exists
    commands = {info.name: info for info in app.registered_commands}
    groups = {info.name: info for info in app.registered_groups}
    words: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in GLOBAL_FLAGS:
            i += 1
            continue
        if arg.split("=", 1)[0] in GLOBAL_VALUE_OPTIONS:
            i += 1 if "=" in arg else 2
            continue
        if arg.startswith("-"):
            break
        words.append(arg)
        i += 1
        if words[0] in commands or len(words) == 2:
            break
    if words and words[0] in commands and None not in commands:
        return (words[0],)
    group = groups.get(words[0]) if len(words) == 2 else None
    if group is not None and None not in groups:
        if words[1] in {info.name for info in group.typer_instance.registered_commands} - {None}:
            return tuple(words)
    return ()


def _app_for(path: tuple[str, ...]) -> typer.Typer:
    """``app``, or a copy of it holding only the command ``path`` names."""
    if not path:
        return app
    pruned = copy.copy(app)
    pruned.registered_commands = [info for info in app.registered_commands if info.name == path[0]]
    pruned.registered_groups = []
    if len(path) == 2:
        group = copy.copy(next(info for info in app.registered_groups if info.name == path[0]))
        group.typer_instance = copy.copy(group.typer_instance)
        group.typer_instance.registered_commands = [
            info for info in group.typer_instance.registered_commands if info.name == path[1]
        ]
        group.typer_instance.registered_groups = []
        pruned.registered_groups = [group]
    return pruned


# typer labels a value by its Python annotation (<bool>, <str>, <list[str]>); help shows what
# to type instead: nothing for a flag, TEXT / INTEGER / PATH, the choices of an Enum.
_HELP_TYPES = {"bool": "", "str": "TEXT", "int": "INTEGER", "float": "FLOAT", "path": "PATH", "Path": "PATH",
               "file": "FILE", "directory": "DIR", "int range": "INTEGER", "float range": "FLOAT"}


def _tidy_help_types(command) -> None:
    for param in getattr(command, "params", []):
        shown = _help_type(command, param)
        if shown is not None:
            param.display_type_rich = lambda ctx, shown=shown: shown  # display only; parsing is unchanged
    original = getattr(command, "get_help_option", None)
    if original is not None:  # --help is made per context, not kept in params

        def get_help_option(ctx, original=original):
            option = original(ctx)
            if option is not None:
                option.display_type_rich = lambda ctx: ""
            return option

        command.get_help_option = get_help_option
    for sub in (getattr(command, "commands", None) or {}).values():
        _tidy_help_types(sub)


def _help_type(command, param) -> str | None:
    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        return ""
    if getattr(param, "metavar", None) is not None and getattr(param, "param_type_name", "") == "option":
        return None  # the command chose how its value is shown (e.g. its choices)
    display = getattr(param, "display_type", None)
    if display is None:
        return None
    try:
        label = display(click.Context(command))
    except Exception:  # a typer without this API: keep its own rendering
        return None
    label = label[1:-1] if label.startswith("<") and label.endswith(">") else label
    if label.startswith("list[") and label.endswith("]"):
        label = label[5:-1]
    if "|" in label:
        return f"[{label}]"
    return _HELP_TYPES.get(label, label.upper())


def _find_option(command, token: str):
    name = token.split("=", 1)[0]
    for param in command.params:
        if getattr(param, "param_type_name", "") == "option" and (name in param.opts or name in param.secondary_opts):
            return param
    return None


def _write_crash_log(exc: BaseException) -> str:
    from mobilebuild.paths import new_log_path

    try:
        path = new_log_path("crash")
        path.write_text(
            f"mobilebuild {mobilebuild.__version__}\nargv: {sys.argv!r}\n\n"
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
    """Run one command; every outcome becomes an exit code, with ``--json`` one object on stdout."""
    errors.CANCELLED.clear()
    errors.interrupt_notes.clear()
    console.hold_json()
    failure: tuple[str, str | None] | None = None
    previous = _install_sigint()
    try:
        code, failure = _run(args)
    finally:
        _restore_sigint(previous)
        fsutil.release_outputs()
    if failure is not None:
        console.release_json(failure[0], failure[1], exit_code=code)
    else:
        console.release_json()
    return code


def _run(args: list[str]) -> tuple[int, tuple[str, str | None] | None]:
    try:
        rv = _click_root(args).main(args=args, prog_name="mobilebuild", standalone_mode=False)
        # click returns the exit code of typer.Exit in non-standalone mode; typer turns Ctrl-C
        # into Exit(130) before we see it. (A command that ends on Ctrl-C by design, like
        # `devices logcat`, catches it and returns normally.)
        if rv == EXIT_INTERRUPTED:
            return _interrupted()
        return (rv if isinstance(rv, int) else EXIT_OK), None
    except UserError as exc:
        _report_user_error(exc)
        return exc.exit_code, (exc.message, exc.hint)
    except typer.Exit as exc:
        return exc.exit_code, None
    except (typer.Abort, KeyboardInterrupt):
        return _interrupted()
    except click.ClickException as exc:  # usage errors, including a bare group (no_args_is_help)
        exc.show(file=sys.stderr)
        return EXIT_USAGE, (exc.format_message(), "see --help")
    except OSError as exc:
        user = _environment_error(exc)
        if user is None:
            return _internal(exc)
        _report_user_error(user)
        return user.exit_code, (user.message, user.hint)
    except Exception as exc:  # a bug: keep the traceback out of the user's face but on disk
        return _internal(exc)


def _interrupted() -> tuple[int, tuple[str, str | None]]:
    notes = list(errors.interrupt_notes)
    console.error("interrupted")
    for note in notes:
        console.info(f"  {note}")
    return EXIT_INTERRUPTED, ("interrupted", "; ".join(notes) or None)


def _internal(exc: BaseException) -> tuple[int, tuple[str, str | None]]:
    path = _write_crash_log(exc)
    message = f"internal error: {type(exc).__name__}: {exc}"
    console.error(message, "please report it with the log")
    console.info(f"  traceback written to {path}")
    return EXIT_INTERNAL, (message, f"please report it with the log {path}")


def _environment_error(exc: OSError) -> UserError | None:
    """Disk full, permission denied, read-only file system met outside our atomic writes: the
    machine's state, not a bug. Other OSErrors stay internal errors."""
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        if exc.filename:
            return fsutil.write_failure(exc.filename, exc)
        return UserError(f"no space left on the device ({exc.strerror})", "free some disk space and run again")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS) and exc.filename:
        return UserError(
            f"{exc.strerror}: {exc.filename}",
            f"check the permissions of {exc.filename} and its directory (see `ls -ld {Path(str(exc.filename)).parent}`)",
        )
    return None


def _install_sigint():
    """Ctrl-C sets errors.CANCELLED (worker threads poll it) and raises KeyboardInterrupt in the
    main thread as usual. Only the main thread may install handlers (tests run us elsewhere too)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        errors.CANCELLED.set()
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGINT, handler)
    except ValueError:  # pragma: no cover - not the main interpreter
        return None


def _restore_sigint(previous) -> None:
    if previous is not None:
        signal.signal(signal.SIGINT, previous)
