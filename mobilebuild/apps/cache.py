"""What mobilebuild keeps in its cache dir, and removing it: `mobilebuild cache info|clean`.

Kinds of entries (each a file or directory directly in its folder):

- downloads: verified archives (``downloads/sha256/<digest>``, ``sha1/``, ``by-url/``) and
  unfinished downloads kept for a resume (``downloads/partial``);
- prepared: models prepared for an app (``prepared/<key>``), reused while model and options stay;
- frozen: Keras files and SavedModels frozen into GraphDefs (``frozen/<key>``) and the built
  feature extractors of ``retrain`` (``retrain-bases/<key>``), reused while the model's bytes stay;
- bottlenecks: ``retrain``'s default bottleneck caches, one per base (``bottlenecks/<key>``);
- logs: build and crash logs (``logs/*.log``);
- worktrees: TensorFlow checkouts at a ref (``tf-src/<repo>/<ref>``) and the clones they come
  from (``tf-repos/<repo>.git``).

An entry's age is the time since it was last used: commands mark a download, a prepared model
or a worktree when they reuse it (``fsutil.mark_used``), a log is as old as its last write.
Removing is safe against a run in progress: an entry whose lock a running command holds is
kept (and reported), and a worktree goes together with git's record of it in its clone.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from mobilebuild import console, runner
from mobilebuild.errors import UserError
from mobilebuild.fsutil import LockHeld, exclusive_lock
from mobilebuild.paths import cache_dir
from mobilebuild.tf.patching import tree_lock_path

KINDS = ("downloads", "prepared", "frozen", "bottlenecks", "logs", "worktrees")

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass
class Entry:
    kind: str
    path: Path
    bytes: int
    last_used: float  # epoch seconds
    locks: tuple[Path, ...] = ()  # held by a running command while it uses the entry


@dataclass
class KindReport:
    path: str
    entries: int = 0
    bytes: int = 0
    oldest_days: float | None = None

    def as_json(self) -> dict:
        return {"path": self.path, "entries": self.entries, "bytes": self.bytes, "oldest_days": self.oldest_days}


@dataclass
class CleanReport:
    older_than_seconds: float | None
    dry_run: bool
    removed: dict[str, list[str]] = field(default_factory=dict)
    freed: dict[str, int] = field(default_factory=dict)
    in_use: list[str] = field(default_factory=list)

    @property
    def freed_bytes(self) -> int:
        return sum(self.freed.values())

    def as_json(self) -> dict:
        return {
            "older_than_seconds": self.older_than_seconds,
            "dry_run": self.dry_run,
            "removed": self.removed,
            "freed_bytes": self.freed,
            "total_freed_bytes": self.freed_bytes,
            "in_use": self.in_use,
        }


def parse_duration(text: str) -> float:
    """'30d', '12h', '1w2d', '90m', '45s' -> seconds (a plain number means days)."""
    value = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value) * 86400
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhdw])", value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise UserError(
            f"--older-than {text!r} is not a duration",
            "use a number and a unit: 45s, 90m, 12h, 30d, 2w (combined: 1w3d); a plain number means days",
        )
    return sum(float(n) * _UNITS[u] for n, u in parts)


def check_kinds(kinds: list[str] | None) -> list[str]:
    chosen = list(dict.fromkeys(kinds or KINDS))
    unknown = [k for k in chosen if k not in KINDS]
    if unknown:
        raise UserError(f"unknown cache kind {', '.join(unknown)}", f"choose from: {', '.join(KINDS)}")
    return chosen


def cache_info(kinds: list[str] | None = None) -> dict:
    """Per kind: where it is, how many entries, their bytes, the oldest entry's age in days."""
    now = time.time()
    out: dict[str, KindReport] = {}
    for kind in check_kinds(kinds):
        report = KindReport(str(_kind_roots(kind)[0]))
        for entry in entries(kind):
            report.entries += 1
            report.bytes += entry.bytes
            age = round((now - entry.last_used) / 86400, 1)
            report.oldest_days = age if report.oldest_days is None else max(report.oldest_days, age)
        out[kind] = report
    return {
        "cache_dir": str(cache_dir()),
        "kinds": {k: r.as_json() for k, r in out.items()},
        "total_bytes": sum(r.bytes for r in out.values()),
    }


def clean(kinds: list[str] | None = None, older_than: float | None = None, dry_run: bool = False) -> CleanReport:
    """Remove the entries of ``kinds`` not used for ``older_than`` seconds (None: all of them)."""
    report = CleanReport(older_than, dry_run)
    cutoff = None if older_than is None else time.time() - older_than
    for kind in check_kinds(kinds):
        report.removed[kind] = []
        report.freed[kind] = 0
        for entry in entries(kind):
            if cutoff is not None and entry.last_used > cutoff:
                continue
            if not dry_run and not _remove(entry):
                report.in_use.append(str(entry.path))
                continue
            report.removed[kind].append(str(entry.path))
            report.freed[kind] += entry.bytes
        if not dry_run and kind == "worktrees":
            _prune_worktree_records()
    return report


# ---- finding entries ---------------------------------------------------------------------------


def _kind_roots(kind: str) -> list[Path]:
    root = cache_dir()
    return {
        "downloads": [root / "downloads"],
        "prepared": [root / "prepared"],
        "frozen": [root / "frozen", root / "retrain-bases"],
        "bottlenecks": [root / "bottlenecks"],
        "logs": [root / "logs"],
        "worktrees": [root / "tf-src", root / "tf-repos"],
    }[kind]


def entries(kind: str) -> Iterator[Entry]:
    root = cache_dir()
    if kind == "downloads":
        base = root / "downloads"
        for group in ("sha256", "sha1", "md5", "by-url"):
            for d in _children(base / group):
                yield _entry(kind, d, d.stat().st_mtime)
        for f in _children(base / "partial"):
            if f.suffix == ".lock" or (f.suffix == ".json" and f.with_suffix(".part").exists()):
                continue  # a download's lock and resume note go with its .part
            yield _entry(kind, f, f.stat().st_mtime, f.with_suffix(".lock"))
    elif kind in ("prepared", "frozen", "bottlenecks"):
        for folder in _kind_roots(kind):
            for d in _children(folder):
                yield _entry(kind, d, d.stat().st_mtime)
    elif kind == "logs":
        for f in _children(root / "logs"):
            yield _entry(kind, f, f.stat().st_mtime)
    elif kind == "worktrees":
        for repo in _children(root / "tf-src"):
            for ref in _children(repo):
                yield _entry(kind, ref, ref.stat().st_mtime, _repo_lock(repo.name), tree_lock_path(ref))
        for clone in _children(root / "tf-repos"):
            name = clone.name.removesuffix(".git").removesuffix(".git.partial")
            # A clone is as recent as the newest worktree made from it.
            used = max([clone.stat().st_mtime] + [r.stat().st_mtime for r in _children(root / "tf-src" / name)])
            yield _entry(kind, clone, used, _repo_lock(name))


def _repo_lock(name: str) -> Path:
    return cache_dir() / "locks" / f"repo-{name}.lock"


def _children(d: Path) -> list[Path]:
    try:
        return sorted(d.iterdir())
    except OSError:
        return []


def _entry(kind: str, path: Path, last_used: float, *locks: Path) -> Entry:
    return Entry(kind, path, _size(path), last_used, locks)


def _size(path: Path) -> int:
    if not path.is_dir() or path.is_symlink():
        try:
            return path.lstat().st_size
        except OSError:
            return 0
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


# ---- removing ----------------------------------------------------------------------------------


def _remove(entry: Entry) -> bool:
    """Remove ``entry`` unless a running command holds one of its locks (False then)."""
    try:
        with ExitStack() as held:
            for lock in entry.locks:
                held.enter_context(exclusive_lock(lock, wait=False))
            _delete(entry.path)
            if entry.path.suffix == ".part":  # its resume note goes with it
                _delete(entry.path.with_suffix(".json"))
    except LockHeld:
        return False
    return True


def _delete(path: Path) -> None:
    """Remove a file, or a directory by renaming it out of the way first: a clean cut short
    (Ctrl-C, a full disk) must not leave a half-deleted worktree or download under the name a
    later run would reuse. A leftover ``.removing-*`` is an entry of the next clean."""
    console.detail(f"remove {path}")
    try:
        if path.is_dir() and not path.is_symlink():
            doomed = path if path.name.startswith(_REMOVING) else path.with_name(f"{_REMOVING}{path.name}-{os.getpid()}")
            if doomed != path:
                os.rename(path, doomed)
            shutil.rmtree(doomed)
        else:
            path.unlink(missing_ok=True)
    except OSError as exc:
        raise UserError(
            f"cannot remove {path}: {exc.strerror}",
            "check the permissions of the cache dir (MOBILEBUILD_CACHE), or remove it by hand",
        ) from exc


_REMOVING = ".removing-"


def _prune_worktree_records() -> None:
    """Tell each remaining clone that its removed worktrees are gone (``git worktree prune``),
    and drop ``tf-src/<repo>`` folders left empty."""
    root = cache_dir()
    for clone in _children(root / "tf-repos"):
        if (clone / "HEAD").is_file() and runner.which("git"):
            runner.run(["git", "--git-dir", str(clone), "worktree", "prune"], check=False)
    for repo in _children(root / "tf-src"):
        if repo.is_dir() and not any(repo.iterdir()):
            repo.rmdir()
