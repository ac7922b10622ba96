"""Staged, atomic, idempotent edits of a source tree, and putting the tree back.

A ``PatchSet`` collects every change one command makes (edited files, copied assets, removed
stale assets). Only the changes whose bytes differ from the disk count, so a second run with
the same inputs touches nothing (mtimes stay, Bazel stays incremental). ``apply`` first keeps
the original of every file it will change (``.mobilebuild/`` in the tree, ignored by git through
its own ``.gitignore``), then stages all new contents as temp files next to their targets, then
renames them in; if a rename fails, the files already renamed get their old bytes back. So all
files of one command change together or not at all. ``restore_tree`` puts back every original
and removes what we added, byte for byte.

``set_declarations`` rewrites the values of constant declarations (Java / Objective-C++) found
by an anchored pattern from the version profile; the new declaration text comes from templates.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mobilebuild import console, errors
from mobilebuild.errors import PatchError
from mobilebuild.fsutil import LockHeld, _same_bytes, atomic_write_bytes, exclusive_lock, write_if_changed
from mobilebuild.paths import cache_dir
from mobilebuild.templating import render
from mobilebuild.tf.tree import modified_since_head

STATE_DIR = ".mobilebuild"
STATE_FILE = "state.json"
ORIGINALS = "originals"


# ---- keeping originals ----------------------------------------------------------------------


class Originals:
    """What the tree looked like before mobilebuild first changed each file."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.dir = self.root / STATE_DIR
        self._state: dict[str, Any] | None = None

    @property
    def state(self) -> dict[str, Any]:
        if self._state is None:
            path = self.dir / STATE_FILE
            if path.is_file():
                try:
                    self._state = json.loads(path.read_text(encoding="utf-8"))
                except ValueError as exc:
                    raise PatchError(
                        f"{path} is damaged: {exc}",
                        f"the originals in {self.dir / ORIGINALS} are intact; restore by hand or delete {self.dir}",
                    ) from exc
            else:
                self._state = {"format": 1, "files": {}, "dirs": []}
        return self._state

    def exists(self) -> bool:
        return (self.dir / STATE_FILE).is_file()

    def has(self, rel: str) -> bool:
        return rel in self.state["files"]

    def created(self) -> list[str]:
        """Files that did not exist before mobilebuild wrote them."""
        return sorted(rel for rel, info in self.state["files"].items() if not info["existed"])

    def record(self, rels: list[str], new_dirs: list[str]) -> None:
        """Keep the current bytes of every file in ``rels`` not kept yet (before any change)."""
        files = self.state["files"]
        todo = [r for r in rels if r not in files]
        if not todo and not new_dirs:
            return
        self.dir.mkdir(exist_ok=True)
        write_if_changed(self.dir / ".gitignore", "# mobilebuild's record of this tree's original files\n*\n")
        for rel in todo:
            path = self.root / rel
            if path.is_file():
                keep = self.dir / ORIGINALS / rel
                keep.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(keep, path.read_bytes(), mode=path.stat().st_mode & 0o7777)
                files[rel] = {"existed": True, "mode": path.stat().st_mode & 0o7777}
            else:
                files[rel] = {"existed": False}
        for d in new_dirs:
            if d not in self.state["dirs"]:
                self.state["dirs"].append(d)
        self._save()

    def note_written(self, written: dict[str, bytes]) -> None:
        """Remember a digest of what we wrote, so restore can tell later hand edits apart."""
        for rel, data in written.items():
            if rel in self.state["files"]:
                self.state["files"][rel]["written"] = hashlib.sha256(data).hexdigest()
        self._save()

    def edited_since(self, rel: str) -> bool:
        """True when the file differs from what mobilebuild last wrote there."""
        info = self.state["files"].get(rel, {})
        path = self.root / rel
        if "written" not in info or not path.is_file():
            return False
        return sha256_file(path) != info["written"]

    def forget(self, rel: str) -> None:
        """A created file we removed again: nothing left to restore for it."""
        info = self.state["files"].get(rel)
        if info is not None and not info["existed"]:
            del self.state["files"][rel]
            self._save()

    def _save(self) -> None:
        atomic_write_bytes(self.dir / STATE_FILE, (json.dumps(self.state, indent=1, sort_keys=True) + "\n").encode())


@dataclass
class RestoreResult:
    restored: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    edited: list[str] = field(default_factory=list)  # changed by hand since mobilebuild wrote them


def restore_tree(root: Path, *, dry_run: bool = False, force: bool = False) -> RestoreResult:
    """Put back every file mobilebuild changed in ``root`` and remove what it added.

    Files edited by hand after mobilebuild wrote them are not silently thrown away: restore
    refuses (nothing changed) unless ``force``."""
    store = Originals(root)
    if not store.exists():
        raise PatchError(
            f"nothing to restore in {root}: mobilebuild has not patched this tree ({STATE_DIR}/ is absent)",
            "restore works on a tree patched by `mobilebuild android/ios/workspace`; for other changes use git",
        )
    edited = [rel for rel in sorted(store.state["files"]) if store.edited_since(rel)]
    if edited and not force and not dry_run:  # a dry run lists them (result.edited) instead
        raise PatchError(
            f"{', '.join(edited)} changed after mobilebuild wrote {'it' if len(edited) == 1 else 'them'}: "
            "restoring would throw those edits away",
            "save what you need, then run `mobilebuild restore --force`",
        )
    result = RestoreResult(edited=edited)
    for rel, info in sorted(store.state["files"].items()):
        path = root / rel
        if info["existed"]:
            original = (store.dir / ORIGINALS / rel).read_bytes()
            if path.is_file() and path.read_bytes() == original and (path.stat().st_mode & 0o7777) == info["mode"]:
                result.unchanged.append(rel)
                continue
            result.restored.append(rel)
            if not dry_run:
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(path, original, mode=info["mode"])
        elif path.exists():
            result.removed.append(rel)
            if not dry_run:
                path.unlink()
    if not dry_run:
        for d in sorted(store.state["dirs"], key=lambda s: -s.count("/")):
            try:
                (root / d).rmdir()  # only when empty: never a user's file
            except OSError:
                pass
        shutil.rmtree(store.dir)
    return result


# ---- one command per tree at a time -------------------------------------------------------------


def tree_lock_path(root: Path) -> Path:
    """The lock file of a tree (in the cache, not in the tree)."""
    key = hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:16]
    return cache_dir() / "locks" / f"tree-{key}.lock"


@contextmanager
def tree_lock(root: Path):
    """Hold an exclusive lock for ``root`` while a command patches/builds it (two runs at once
    would interleave their changes). The lock file lives in the cache, not in the tree."""
    try:
        with exclusive_lock(tree_lock_path(root), wait=False):
            yield
    except LockHeld as held:
        raise PatchError(
            f"another mobilebuild command is working on {root} (pid {held.holder})",
            "wait for it to finish, then run again",
        ) from None


# ---- the set of changes of one command ------------------------------------------------------


@dataclass
class Change:
    rel: str
    kind: str  # "edit" | "copy" | "remove"
    new: bytes | None = None  # edit
    src: Path | None = None  # copy
    shown: str | None = None  # how --dry-run names the copy's source

    def data(self) -> bytes:
        if self.kind == "edit":
            assert self.new is not None
            return self.new
        assert self.src is not None
        return self.src.read_bytes()


@dataclass
class ApplyResult:
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


class PatchSet:
    """All changes of one command to one root directory."""

    def __init__(self, root: Path, *, keep_originals: bool = True):
        self.root = Path(root)
        self.keep_originals = keep_originals
        self.changes: list[Change] = []

    def edit(self, rel: str, new_text: str | bytes) -> None:
        data = new_text.encode("utf-8") if isinstance(new_text, str) else new_text
        self._add(Change(rel, "edit", new=data))

    def copy(self, src: Path, rel: str, *, shown: str | None = None) -> None:
        self._add(Change(rel, "copy", src=Path(src), shown=shown))

    def remove(self, rel: str) -> None:
        self._add(Change(rel, "remove"))

    def _add(self, change: Change) -> None:
        if any(c.rel == change.rel for c in self.changes):
            raise PatchError(f"{change.rel} would be written twice by one command", "give the model and labels different file names")
        self.changes.append(change)

    # -- what would change

    def pending(self) -> list[Change]:
        out = []
        for c in self.changes:
            path = self.root / c.rel
            if c.kind == "remove":
                if path.exists():
                    out.append(c)
            elif not (path.is_file() and _same(path, c)):
                out.append(c)
        return out

    def unchanged(self) -> list[str]:
        pending = {c.rel for c in self.pending()}
        return [c.rel for c in self.changes if c.rel not in pending and c.kind != "remove"]

    def diff(self) -> str:
        """Unified diff of the edits, then one line per copy/removal (what --dry-run prints)."""
        parts = []
        for c in self.pending():
            path = self.root / c.rel
            if c.kind == "edit":
                old = path.read_bytes().decode("utf-8", "replace") if path.is_file() else ""
                new = c.data().decode("utf-8", "replace")
                parts.append(
                    "".join(
                        difflib.unified_diff(
                            old.splitlines(keepends=True),
                            new.splitlines(keepends=True),
                            fromfile=f"a/{c.rel}" if path.is_file() else "/dev/null",
                            tofile=f"b/{c.rel}",
                        )
                    )
                )
        return "".join(p if p.endswith("\n") else p + "\n\\ No newline at end of file\n" for p in parts)

    def copy_lines(self) -> list[str]:
        lines = []
        for c in self.pending():
            path = self.root / c.rel
            if c.kind == "copy":
                how = "replace" if path.exists() else "new"
                lines.append(f"copy {c.shown or c.src} -> {c.rel} ({c.src.stat().st_size} bytes, {how})")
            elif c.kind == "remove":
                lines.append(f"remove {c.rel} (left by an earlier run)")
        return lines

    # -- doing it

    def apply(self) -> ApplyResult:
        pending = self.pending()
        result = ApplyResult(unchanged=self.unchanged())
        if not pending:
            return result
        writes = [c for c in pending if c.kind != "remove"]
        new_dirs = self._missing_dirs(writes)
        store = Originals(self.root)
        had_store = store.dir.exists()
        staged: list[tuple[Change, str | None]] = []
        try:
            if self.keep_originals:
                store.record([c.rel for c in pending], new_dirs)
            for d in new_dirs:
                (self.root / d).mkdir(exist_ok=True)
            for c in pending:
                staged.append((c, self._stage(c) if c.kind != "remove" else None))
            self._commit(staged)
        except BaseException as exc:
            for d in reversed(new_dirs):
                try:
                    (self.root / d).rmdir()
                except OSError:
                    pass
            if self.keep_originals and not had_store:
                shutil.rmtree(store.dir, ignore_errors=True)  # the tree is as it was: no record
            if isinstance(exc, KeyboardInterrupt):
                errors.interrupt_notes.append(f"no file of {self.root} was changed (the partial patch was rolled back)")
            if isinstance(exc, OSError):
                raise PatchError(
                    f"could not write {getattr(exc, 'filename', None) or self.root}: {exc.strerror or exc}",
                    "nothing was changed; check the permissions and free space of the tree",
                ) from exc
            raise
        finally:
            for _, tmp in staged:
                if tmp and os.path.exists(tmp):
                    os.unlink(tmp)
        for c in pending:
            (result.removed if c.kind == "remove" else result.changed).append(c.rel)
        if self.keep_originals:
            for rel in result.removed:
                store.forget(rel)
            store.note_written({c.rel: c.data() for c in pending if c.kind == "edit"})
        return result

    def _missing_dirs(self, writes: list[Change]) -> list[str]:
        dirs: list[str] = []
        for c in writes:
            parent = Path(c.rel).parent
            chain = []
            while str(parent) not in ("", ".") and not (self.root / parent).is_dir():
                chain.append(parent.as_posix())
                parent = parent.parent
            for d in reversed(chain):
                if d not in dirs:
                    dirs.append(d)
        return dirs

    def _stage(self, c: Change) -> str:
        target = self.root / c.rel
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".mbstage", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                if c.kind == "copy":
                    with open(c.src, "rb") as src:  # type: ignore[arg-type]
                        shutil.copyfileobj(src, f, 1 << 20)
                else:
                    f.write(c.data())
                f.flush()
                os.fsync(f.fileno())
            mode = target.stat().st_mode & 0o7777 if target.exists() else 0o644
            os.chmod(tmp, mode)
        except BaseException:
            os.unlink(tmp)
            raise
        return tmp

    def _commit(self, staged: list[tuple[Change, str | None]]) -> None:
        done: list[tuple[Path, str | None]] = []  # (target, backup of its old bytes or None)
        try:
            for c, tmp in staged:
                target = self.root / c.rel
                backup = None
                if target.exists():
                    backup = str(target.with_name(f".{target.name}.mbold-{os.getpid()}"))
                    os.link(target, backup)  # the old bytes stay reachable until we are done
                try:
                    if tmp is None:
                        os.unlink(target)
                    else:
                        os.replace(tmp, target)
                except BaseException:
                    if backup:
                        os.unlink(backup)
                    raise
                done.append((target, backup))
                console.detail(f"{'removed' if tmp is None else 'wrote'} {c.rel}")
        except BaseException:
            for target, backup in reversed(done):
                if backup:
                    os.replace(backup, target)
                elif target.exists():
                    os.unlink(target)
            raise
        for _, backup in done:
            if backup and os.path.exists(backup):
                os.unlink(backup)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in blocks (models can be hundreds of MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _same(path: Path, c: Change) -> bool:
    if c.kind == "copy":
        assert c.src is not None
        return path.stat().st_size == c.src.stat().st_size and _same_bytes(path, c.src)
    data = c.data()
    return path.stat().st_size == len(data) and path.read_bytes() == data


# ---- applying one command's changes, or showing them (--dry-run) ----------------------------


def warn_user_changes(ps: "PatchSet") -> list[str]:
    """Files we are about to patch that hold uncommitted changes not made by mobilebuild."""

    store = Originals(ps.root)
    rels = [c.rel for c in ps.pending() if c.kind == "edit" and not store.has(c.rel)]
    dirty = modified_since_head(ps.root, rels)
    for rel in dirty:
        console.warn(
            f"{rel} has uncommitted changes; they are kept, and `mobilebuild restore` returns to this state"
        )
    return dirty


def apply_patch(ps: "PatchSet", dry_run: bool, *, check_git: bool = True) -> dict[str, Any]:
    """Apply the PatchSet; with ``dry_run`` only compute its diff and copies (``diff``,
    ``copies`` of the result, which the command shows). The result is also the --json one."""
    out: dict[str, Any] = {"dirty_before": warn_user_changes(ps) if check_git else []}
    if dry_run:
        diff = ps.diff()
        copies = ps.copy_lines()
        out.update({"diff": diff, "copies": copies, "changed": [c.rel for c in ps.pending()]})
        if not ps.pending():
            console.info("dry run: nothing would change (the tree is up to date)")
        else:
            console.info(f"dry run: {len(ps.pending())} change(s) shown above; nothing was written")
        return out
    res = ps.apply()
    out.update({"changed": res.changed, "unchanged": res.unchanged, "removed": res.removed})
    if res.changed or res.removed:
        console.success(
            f"updated {len(res.changed)} file(s) in {ps.root}: " + ", ".join(res.changed + [f"-{r}" for r in res.removed])
        )
    else:
        console.success("the tree is up to date: nothing rewritten")
    return out


# ---- constant declarations ------------------------------------------------------------------


@dataclass
class Declaration:
    """One constant to set: its name, expected type (as declared), and the literal text."""

    name: str
    type: str
    literal: str
    optional: bool = False  # set when declared, fine when absent (e.g. NUM_CLASSES of v1.0 only)


def _norm_type(t: str) -> str:
    return re.sub(r"\s+", "", t)


_BLOCK_COMMENT = re.compile(r"/\*.*?\*/", re.S)


def _in_block_comment(text: str, pos: int) -> bool:
    return any(m.start() <= pos < m.end() for m in _BLOCK_COMMENT.finditer(text))


def find_declaration(
    text: str, name: str, type_name: str, *, pattern: str, file_label: str, expected: str, optional: bool = False
) -> re.Match | None:
    """The one declaration of ``name`` (anchored profile pattern; lines inside /* */ comments do
    not count), else PatchError naming the file, the constant and the profile/version that
    expected it. An ``optional`` constant that is absent gives None."""
    rx = re.compile(pattern.replace("{name}", re.escape(name)), re.M)
    matches = [m for m in rx.finditer(text) if not _in_block_comment(text, m.start())]
    if not matches and optional:
        return None
    if not matches:
        raise PatchError(
            f"{file_label}: no declaration of {name} found ({expected} expects one)",
            "is the file edited by hand or from another TensorFlow version? restore it "
            "(git checkout, or `mobilebuild restore`) and run again",
        )
    if len(matches) > 1:
        lines = ", ".join(str(text.count("\n", 0, m.start()) + 1) for m in matches)
        raise PatchError(
            f"{file_label}: {name} is declared {len(matches)} times (lines {lines}; {expected} expects one)",
            "remove the extra declaration so mobilebuild knows which one to set",
        )
    m = matches[0]
    if _norm_type(m.group("type")) != _norm_type(type_name):
        raise PatchError(
            f"{file_label}: {name} is declared as {m.group('type')}, {expected} expects {type_name}",
            "restore the file's original declaration (git checkout, or `mobilebuild restore`) and run again",
        )
    return m


def check_declarations(text: str, constants: dict[str, dict], *, pattern: str, file_label: str, expected: str) -> None:
    """Fail early (before any model work) when a constant of the profile is missing/duplicated."""
    for name, spec in constants.items():
        find_declaration(text, name, spec["type"], pattern=pattern, file_label=file_label, expected=expected,
                         optional=bool(spec.get("optional")))


def set_declarations(
    text: str,
    decls: list[Declaration],
    *,
    pattern: str,
    file_label: str,
    expected: str,
) -> str:
    """Replace the value of each declaration; refuse missing, duplicated or mistyped ones.

    ``pattern`` is the profile's anchored regex with ``{name}`` for the constant's name and the
    groups head (everything up to ``=``), type, sep (whitespace after ``=``, may hold the line
    break of a split declaration) and value. ``expected`` names the profile/version for errors.
    """

    spans: list[tuple[int, int, str]] = []
    for d in decls:
        m = find_declaration(text, d.name, d.type, pattern=pattern, file_label=file_label, expected=expected,
                             optional=d.optional)
        if m is None:
            continue
        new = render("patch/declaration.j2", head=m.group("head"), sep=m.group("sep"), literal=d.literal)
        spans.append((m.start(), m.end(), new))
    spans.sort()
    for (s1, e1, _), (s2, _, _) in zip(spans, spans[1:]):
        if s2 < e1:  # two patterns hit one declaration: a broken profile, not a user error
            raise PatchError(f"{file_label}: overlapping declarations", f"check the declaration pattern in {expected}")
    out = []
    pos = 0
    for s, e, new in spans:
        out.append(text[pos:s])
        out.append(new)
        pos = e
    out.append(text[pos:])
    return "".join(out)


def read_text_exact(path: Path) -> str:
    """File text with its line endings untouched (``newline=''``) so unchanged parts stay byte-equal."""
    with open(path, encoding="utf-8", newline="") as f:
        return f.read()


# ---- literals ---------------------------------------------------------------------------------


def format_number(value: float, type_name: str) -> str:
    """A float literal valid in Java and C/C++: ``128.0f``, ``127.5f``, ``1e-05f``."""
    v = float(value)
    if type_name == "float" and v.is_integer() and abs(v) < 1e15:
        text = f"{int(v)}.0"
    else:
        text = repr(v)
    return text + "f"


def declarations_for(
    constants: dict[str, dict],
    values: dict[str, Any],
    *,
    literal_template: str,
    file_label: str,
) -> list[Declaration]:
    """Declarations for the profile's constants table (``name -> {type, value[, hint]}``)."""

    out = []
    for name, spec in constants.items():
        key = spec["value"]
        if key not in values:
            continue  # not something this command sets
        value = values[key]
        type_name = spec["type"]
        if type_name == "int":
            if float(value) != int(float(value)):
                raise PatchError(
                    f"{name} is an int in {file_label}: {value:g} is not a whole number",
                    spec.get("hint") or f"pass a whole number for {key}",
                )
            value = int(float(value))
        number = format_number(value, type_name) if type_name in ("float", "double") else ""
        literal = render(literal_template, type=type_name, value=value, number=number)
        out.append(Declaration(name=name, type=type_name, literal=literal, optional=bool(spec.get("optional"))))
    return out
