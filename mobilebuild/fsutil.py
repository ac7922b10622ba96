"""File writes that never leave a half-written file and never touch an unchanged one.

Writes go to a temp file in the same directory and are renamed into place (atomic on POSIX).
``write_if_changed`` keeps mtimes of identical files, so Bazel stays incremental.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from mobilebuild import console
from mobilebuild.errors import UserError, WriteError
from mobilebuild.paths import cache_dir

# Errors that mean "this place does not take the file" rather than a bug of ours.
WRITE_ERRNOS = frozenset(
    getattr(errno, name)
    for name in ("ENOSPC", "EDQUOT", "EFBIG", "EACCES", "EPERM", "EROFS", "ENOENT", "ENOTDIR", "EISDIR", "EINVAL", "EIO", "EXDEV", "ETXTBSY")
    if hasattr(errno, name)
)
_KERNEL_FS = ("/proc", "/sys", "/dev")


def write_failure(path: str | os.PathLike, exc: OSError) -> WriteError:
    """The user-facing form of an OSError met while writing ``path``: which path, why, what to do."""
    path = Path(path)
    where = path.parent if str(path.parent) else Path(".")
    code = exc.errno
    reason = exc.strerror or str(exc)
    resolved = str(where.resolve() if where.exists() else where.absolute())
    if any(resolved == fs or resolved.startswith(fs + "/") for fs in _KERNEL_FS):
        return WriteError(
            f"cannot write {path}: {where} is a kernel file system ({reason})",
            "write to a normal directory instead (e.g. -o ./out.pb)",
            str(path),
        )
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", -1), errno.EFBIG):
        return WriteError(
            f"cannot write {path}: no space left on the device holding {where} ({reason})",
            f"free some space there (see `df -h {where}`) or write to another disk; nothing was changed",
            str(path),
        )
    if code == errno.EROFS:
        return WriteError(
            f"cannot write {path}: {where} is on a read-only file system",
            "write to a writable location, or remount that file system read-write",
            str(path),
        )
    if code in (errno.EACCES, errno.EPERM):
        return WriteError(
            f"cannot write {path}: permission denied in {where}",
            f"write to a directory you own, or fix its permissions (see `ls -ld {where}`)",
            str(path),
        )
    if code in (errno.ENOENT, errno.ENOTDIR) and not where.is_dir():
        return WriteError(
            f"cannot write {path}: the directory {where} does not exist",
            f"create it first (mkdir -p {where}) or choose another path",
            str(path),
        )
    return WriteError(f"cannot write {path}: {reason}", f"check {where} (exists, writable, has room)", str(path))


def is_write_failure(exc: BaseException) -> bool:
    """An OSError from the file system that says where, as opposed to a network or program error."""
    return isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS and exc.filename is not None


def check_output_path(out: str | os.PathLike, *inputs: str | os.PathLike) -> Path:
    """Refuse an output that is one of the inputs or whose directory does not exist, and claim
    it for this process (``claim_output``)."""
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
    claim_output(out_p)
    return out_p


# Outputs this process claimed: path -> the held lock (released by release_outputs at the end
# of a command, or when the process exits).
_claimed: dict[str, contextlib.ExitStack] = {}


def claim_output(path: str | os.PathLike) -> None:
    """Refuse to write an output another running mobilebuild is writing.

    Each writer's rename is atomic, so two of them never leave a torn file; but both would
    report success while only the last one's result is there. The lock lives in the cache
    (never beside the user's file) and is held until the command ends.
    """
    key_path = str(Path(path).absolute())
    if key_path in _claimed:
        return
    key = hashlib.sha256(key_path.encode()).hexdigest()[:20]
    stack = contextlib.ExitStack()
    try:
        stack.enter_context(exclusive_lock(cache_dir() / "locks" / f"out-{key}.lock", wait=False))
    except LockHeld as held:
        stack.close()
        raise UserError(
            f"another mobilebuild command (pid {held.holder}) is writing {path}",
            "wait for it to finish, or write to another path",
        ) from None
    except OSError:
        stack.close()  # no writable cache: the rename still keeps the file whole
        return
    _claimed[key_path] = stack


def release_outputs() -> None:
    """Drop the claims of the command that just ended (the CLI calls this)."""
    while _claimed:
        _, stack = _claimed.popitem()
        stack.close()


@contextlib.contextmanager
def _replacing(path: Path):
    """A temp file beside ``path`` (yielded as an open binary file and its name), renamed over
    ``path`` when the block succeeds and removed when it fails: readers never see half a file."""
    with _temp_beside(path) as (fd, tmp):
        with os.fdopen(fd, "wb") as f:
            yield f, tmp
        os.replace(tmp, path)


@contextlib.contextmanager
def _temp_beside(path: Path):
    """A new temp file beside ``path`` (its fd and name), removed if the block fails. The writers'
    one error rule: a failed write or rename (no filename, or the temp/target's) is the target's
    problem and becomes a write failure naming ``path``; an error naming another file (what is
    being read or copied) is not a write failure and passes unchanged."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise write_failure(path, exc) from exc
    try:
        yield fd, tmp
    except OSError as exc:
        _unlink_quietly(tmp)
        if exc.filename in (None, tmp, str(path)):
            raise write_failure(path, exc) from exc
        raise
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


class StreamedWrite:
    """What ``replace_if_changed`` yields: the temp file to write to; ``changed`` once it is done."""

    def __init__(self, file):
        self.file = file
        self.changed = False


@contextlib.contextmanager
def replace_if_changed(path: str | os.PathLike):
    """Write a large file piece by piece without holding it in memory: yields a StreamedWrite
    whose ``file`` is a temp file beside ``path``. When the block succeeds the temp file replaces
    ``path`` unless ``path`` already holds the same bytes (then ``path`` and its mtime stay, as
    with write_if_changed); when it fails the temp file is removed."""
    path = Path(path)
    with _temp_beside(path) as (fd, tmp):
        with os.fdopen(fd, "wb") as f:
            result = StreamedWrite(f)
            yield result
            f.flush()
            size = f.tell()
            # No fsync (unlike atomic_write_bytes): these are large derived files a re-run
            # writes again, and flushing hundreds of MB would cost more than writing them; the
            # rename alone keeps readers from ever seeing half a file.
            result.changed = not (path.is_file() and path.stat().st_size == size and _same_bytes(Path(tmp), path))
        if not result.changed:
            _unlink_quietly(tmp)
            return
        os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_umask())
        os.replace(tmp, path)
        console.detail(f"wrote {path} ({size} bytes)")


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


def mark_used(path: str | os.PathLike) -> None:
    """Record that a cache entry (its directory) was used now: `mobilebuild cache clean
    --older-than` removes what has not been used for that long. The directory, not the file:
    a download's verification stamp keys on the file's own mtime."""
    with contextlib.suppress(OSError):
        os.utime(path)


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
