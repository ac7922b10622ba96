"""File writes that never leave a half-written file and never touch an unchanged one.

Writes go to a temp file in the same directory and are renamed into place (atomic on POSIX).
``write_if_changed`` keeps mtimes of identical files, so Bazel stays incremental.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from mobilebuild import console
from mobilebuild.errors import UserError


def check_output_path(out: str | os.PathLike, *inputs: str | os.PathLike) -> Path:
    """Refuse an output that is one of the inputs or whose directory does not exist."""
    out_p = Path(out)
    parent = out_p.parent if str(out_p.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(
            f"output directory does not exist: {parent}",
            f"create it first (mkdir -p {parent}) or choose another -o path",
        )
    if out_p.is_dir():
        raise UserError(f"output path is a directory: {out_p}", "give a file name with -o")
    for inp in inputs:
        try:
            same = out_p.exists() and Path(inp).exists() and os.path.samefile(out_p, inp)
        except OSError:
            same = False
        if same or out_p.resolve() == Path(inp).resolve():
            raise UserError(
                f"output {out_p} is the input file",
                "write to another path with -o; the input is never overwritten",
            )
    return out_p


@contextlib.contextmanager
def _replacing(path: Path):
    """A temp file beside ``path`` (yielded as an open binary file and its name), renamed over
    ``path`` when the block succeeds and removed when it fails: readers never see half a file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f, tmp
        os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes, mode: int | None = None) -> Path:
    path = Path(path)
    with _replacing(path) as (f, tmp):
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        elif path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        else:
            os.chmod(tmp, 0o666 & ~_umask())
    console.detail(f"wrote {path} ({len(data)} bytes)")
    return path


def atomic_write_text(path: str | os.PathLike, text: str, mode: int | None = None) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), mode)


def write_if_changed(path: str | os.PathLike, data: bytes | str) -> bool:
    """Write only when the content differs. Returns True when the file was (re)written."""
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    try:
        if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
    except OSError:
        pass
    atomic_write_bytes(path, data)
    return True


def copy_if_changed(src: str | os.PathLike, dst: str | os.PathLike) -> bool:
    """Copy ``src`` to ``dst`` atomically unless ``dst`` already has the same bytes."""
    src, dst = Path(src), Path(dst)
    if dst.is_file() and dst.stat().st_size == src.stat().st_size and _same_bytes(src, dst):
        return False
    with _replacing(dst) as (f, tmp), open(src, "rb") as fi:
        shutil.copyfileobj(fi, f, 1 << 20)
        os.chmod(tmp, 0o644)
    console.detail(f"copied {src} -> {dst}")
    return True


def _same_bytes(a: Path, b: Path, chunk: int = 1 << 20) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(chunk), fb.read(chunk)
            if x != y:
                return False
            if not x:
                return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _unlink_quietly(path: str | os.PathLike) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


class LockHeld(Exception):
    """``exclusive_lock(wait=False)`` found the lock taken; ``holder`` is the pid written there."""

    def __init__(self, holder: str):
        super().__init__(holder)
        self.holder = holder


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike, *, wait: bool = True):
    """An advisory lock on ``path`` across processes and threads (flock), holding our pid.

    ``wait=True`` blocks until the holder is done (two downloads of one file); ``wait=False``
    raises ``LockHeld`` at once (two commands patching one tree must not queue up silently).
    Where flock does not exist (Windows) the body runs unguarded.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover
        yield
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            f.seek(0)
            raise LockHeld(f.read().strip() or "?") from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
