"""The errors mobilebuild shows to users.

Everything a user can cause or fix raises a subclass of ``UserError``; the CLI maps it to
exit code 1 and prints ``message`` (one line) and ``hint`` (how to fix it). Anything else
escaping to the CLI is a bug: exit 3 with the traceback in a log file.
"""

from __future__ import annotations

import contextlib
import shlex
import threading
from typing import Iterator, Sequence

# Ctrl-C. The main thread gets KeyboardInterrupt; worker threads (parallel downloads) cannot,
# so they check this event between chunks and stop. The CLI sets it on SIGINT.
CANCELLED = threading.Event()
# What the interrupted work kept or put back ("partial downloads kept for a resume"), in the
# order the blocks noted it; the CLI prints these under "interrupted".
interrupt_notes: list[str] = []


@contextlib.contextmanager
def on_interrupt(note: str) -> Iterator[None]:
    """Report ``note`` if Ctrl-C stops the block (what was kept or rolled back)."""
    try:
        yield
    except KeyboardInterrupt:
        if note not in interrupt_notes:
            interrupt_notes.append(note)
        raise


def check_cancelled() -> None:
    """Raise KeyboardInterrupt in a worker thread once Ctrl-C was pressed."""
    if CANCELLED.is_set():
        raise KeyboardInterrupt


def format_argv(argv: Sequence[str]) -> str:
    """A command as a user would type it (quoted where needed): how messages and logs name it."""
    return shlex.join(str(a) for a in argv)


class UserError(Exception):
    """A problem the user can fix. ``message`` says what is wrong, ``hint`` how to fix it."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class ModelError(UserError):
    """A model file that cannot be read or does not fit what was asked."""


class PatchError(UserError):
    """A source file that does not look as the version profile expects."""


class ToolchainError(UserError):
    """A missing or wrong tool: Bazel, SDK, NDK, JDK, Xcode."""


class DownloadError(UserError):
    """A download that failed or did not match its checksum."""


class DeviceError(UserError):
    """adb and the device side: no device, several devices, install failures."""


class CommandError(UserError):
    """An external program failed. Carries the exact command, exit code and its output."""

    def __init__(
        self,
        argv: Sequence[str],
        returncode: int,
        output: str = "",
        message: str | None = None,
        hint: str | None = None,
        log_path: str | None = None,
    ):
        self.argv = list(argv)
        self.returncode = returncode
        self.output = output
        self.log_path = log_path
        msg = message or f"command failed with exit code {returncode}: {format_argv(self.argv)}"
        super().__init__(msg, hint)

    def output_tail(self, lines: int = 20) -> str:
        return "\n".join(self.output.rstrip().splitlines()[-lines:])


class WriteError(UserError):
    """A file that could not be written: disk full, no permission, a read-only or kernel file
    system. ``path`` is the file mobilebuild meant to write (not its temporary name)."""

    def __init__(self, message: str, hint: str | None = None, path: str | None = None):
        super().__init__(message, hint)
        self.path = path


class ChecksumError(DownloadError):
    """A downloaded file whose sha256/sha1/size is not the pinned one (the file is deleted)."""


class ArchiveError(DownloadError):
    """An archive that is damaged or has members escaping the target directory."""
