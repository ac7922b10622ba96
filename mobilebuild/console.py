"""All human output goes through here (stderr, rich); machine output (``--json``) to stdout.

Core modules call ``info``/``warn``/``detail`` for progress lines; only the CLI decides what
the final result looks like. Settings are process-wide because they come from global flags.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from rich import filesize
from rich.console import Console


@dataclass
class Settings:
    verbose: bool = False
    json: bool = False
    no_color: bool = False
    quiet: bool = False  # no progress chatter: results, warnings and errors only


settings = Settings()
_err: Console | None = None
_out: Console | None = None


def configure(*, verbose: bool = False, json_mode: bool = False, no_color: bool = False, quiet: bool = False) -> None:
    global _err, _out
    settings.verbose = verbose
    settings.json = json_mode
    settings.no_color = no_color or "NO_COLOR" in os.environ
    settings.quiet = quiet and not verbose
    _err = _out = None  # rebuilt lazily with the new settings


def out() -> Console:
    """The console for human results (tables, lists): stdout, so pipes and grep find them; with
    --json stdout belongs to the JSON object and these go to stderr. Colour only at a terminal
    and never under NO_COLOR / --no-color (rich leaves a pipe plain by itself)."""
    global _out
    end_spinner()  # results come after the work: the spinner line must not draw over them
    target = sys.stderr if settings.json else sys.stdout
    if _out is None or _out.file is not target:
        no_color = settings.no_color or "NO_COLOR" in os.environ
        try:
            tty = target.isatty()
        except (AttributeError, ValueError):
            tty = False
        _out = Console(
            file=target,
            no_color=no_color,
            color_system=None if no_color else "auto",
            highlight=False,
            soft_wrap=True,
            # In a pipe a table row stays one line whatever its length (grep sees it whole);
            # at a terminal rich wraps cells to the window.
            width=None if tty else 1000,
        )
    return _out


def result(message: str = "") -> None:
    """One plain line of the human result (stdout; stderr with --json)."""
    out().print(message, markup=False)


_pinned = False  # live_to() points the stderr console elsewhere for a while: keep it


def err() -> Console:
    """The stderr console (created on first use so tests can swap sys.stderr)."""
    global _err
    if _err is None or (_err.file is not sys.stderr and not _pinned):
        no_color = settings.no_color or "NO_COLOR" in os.environ
        _err = Console(
            file=sys.stderr,
            no_color=no_color,
            color_system=None if no_color else "auto",
            highlight=False,
            soft_wrap=True,
        )
    return _err


def is_interactive() -> bool:
    """True when we may prompt or draw live progress: a TTY on both ends and not --json."""
    try:
        return sys.stdin.isatty() and sys.stderr.isatty() and not settings.json
    except (AttributeError, ValueError):
        return False


def info(message: str) -> None:
    if not settings.quiet:
        err().print(message, markup=False)


def success(message: str) -> None:
    if not settings.quiet:
        err().print(f"[green]✓[/green] {_escape(message)}")


def warn(message: str) -> None:
    err().print(f"[yellow]warning:[/yellow] {_escape(message)}")


def error(message: str, hint: str | None = None) -> None:
    err().print(f"[red]error:[/red] {_escape(message)}")
    if hint:
        err().print(f"  [dim]hint:[/dim] {_escape(hint)}")


def detail(message: str) -> None:
    """A line shown only with --verbose (external commands, file writes)."""
    if settings.verbose:
        err().print(f"[dim]{_escape(message)}[/dim]")


# While the CLI runs a command, the result is held here and written when the command ends, so a
# failure after the result was computed still yields ONE object (the result plus error/hint).
_held: list[Any] | None = None


def emit_json(obj: Any) -> None:
    """The machine result, alone on stdout (held until the command ends when the CLI runs it)."""
    if _held is not None:
        _held.append(obj)
        return
    _write_json(obj)


def hold_json() -> None:
    global _held
    _held = []


def release_json(error: str | None = None, hint: str | None = None, **extra: Any) -> None:
    """Write the held result; with ``error`` it carries ``error`` and ``hint`` (an object with
    only those when the command failed before it had a result). Only in --json mode."""
    global _held
    held, _held = _held, None
    if not settings.json:
        return
    obj = held[-1] if held else None
    if error is not None:
        base = obj if isinstance(obj, dict) else ({} if obj is None else {"result": obj})
        obj = {**base, "error": error, "hint": hint, **extra}
    if obj is not None:
        _write_json(obj)


def _write_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def size(n: int | float | None) -> str:
    """Bytes as people read them, in decimal units like the download bar (rich's
    ``DownloadColumn``) shows them, so a bar and a summary line agree: ``300.0 MB``."""
    if n is None:
        return "?"
    return filesize.decimal(int(n))


def progress(**kwargs: Any):
    """A rich Progress on stderr; disabled (no live drawing) when not interactive."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err(),
        disable=not is_interactive(),
        **kwargs,
    )


# ---- feedback on long work: a spinner (status line) and a per-item bar, only at a terminal

_status: Any = None  # the running rich Status, if any: nested spinners update its text


@contextlib.contextmanager
def spinner(message: str, interactive: bool | None = None) -> Iterator[None]:
    """A spinner with ``message`` on stderr while the block runs (nothing when not interactive
    or --quiet; ``interactive`` decided by the caller when fd 2 is redirected). Nested: the
    inner message shows, then the outer one again."""
    global _status
    if not (is_interactive() if interactive is None else interactive) or settings.quiet:
        yield
        return
    if _status is not None:
        outer = _status.status
        _status.update(message)
        try:
            yield
        finally:
            _status.update(outer)
        return
    from rich.live import Live
    from rich.spinner import Spinner

    # Live, not Console.status: a status redirects sys.stdout into the stderr console while it
    # runs, and results printed meanwhile must still reach stdout (a pipe).
    live = Live(Spinner("dots", text=message), console=err(), transient=True, refresh_per_second=12.5,
                redirect_stdout=False, redirect_stderr=False)
    status = _SpinnerStatus(live, message)
    with live:
        live.refresh()  # the first frame now: a long import may hold the GIL from here on
        _status = status
        try:
            yield
        finally:
            _status = None


class _SpinnerStatus:
    def __init__(self, live, message: str):
        self.live, self.status = live, message

    def update(self, message: str) -> None:
        from rich.spinner import Spinner

        self.status = message
        self.live.update(Spinner("dots", text=message), refresh=True)  # drawn now: a long import may hold the GIL

    def stop(self) -> None:
        self.live.stop()

    def start(self) -> None:
        self.live.start()


def end_spinner() -> None:
    """Stop the running spinner for good (its block may go on printing results)."""
    if _status is not None:
        _status.stop()


@contextlib.contextmanager
def live_to(fd: int, interactive: bool) -> Iterator[None]:
    """Keep spinners and messages drawing on file descriptor ``fd`` while fd 2 is redirected
    (TensorFlow's native start-up noise is captured during its import). ``interactive``: as
    it was before the redirection (a file on fd 2 is no terminal)."""
    global _pinned
    if not interactive:
        yield
        return
    console = err()
    stream = os.fdopen(os.dup(fd), "w", encoding="utf-8", errors="replace")
    previous, console.file, _pinned = console.file, stream, True
    try:
        yield
    finally:
        console.file, _pinned = previous, False
        stream.close()


@contextlib.contextmanager
def line_status(title: str) -> Iterator[Callable[[str], None]]:
    """For a long external program: yields on_line(line) for runner.run, showing ``title`` and
    the program's latest line on a spinner at a terminal (every line with --verbose; nothing
    otherwise: the full output is in the result / log)."""

    def show(line: str) -> None:
        text = line.strip()
        if settings.verbose:
            err().print(line, markup=False, highlight=False)
        elif text and _status is not None:
            _status.update(f"{title}: {text[:100]}")

    with spinner(title):
        yield show


@contextlib.contextmanager
def counter(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """A bar counting ``total`` items (images, files); yields advance(n). Silent when not
    interactive; a running spinner pauses meanwhile (one live display at a time)."""
    if not is_interactive() or settings.quiet or total <= 0:
        yield lambda n=1: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    paused = _status
    if paused is not None:
        paused.stop()
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=err(), transient=True, redirect_stdout=False, redirect_stderr=False) as bar:
            task = bar.add_task(description, total=total)
            yield lambda n=1: bar.advance(task, n)
    finally:
        if paused is not None:
            paused.start()
