"""A TensorFlow source tree: an existing checkout (``--tf-src``) or our clone of a repository at a
ref (``--tf-repo URL --tf-ref TAG``), its version, and the version profile that fits it.

Clones live in the cache: one bare repository per URL (``tf-repos/``) and one detached worktree
per ref (``tf-src/``), so a second ref of the same URL costs no second download and a ref already
present is used without any network access. A user's own checkout is only read: its git state
(HEAD, index, stash, branches) is never changed.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from mobilebuild import console, runner
from mobilebuild.errors import CommandError, PatchError, UserError
from mobilebuild.fsutil import exclusive_lock, mark_used
from mobilebuild.paths import cache_dir
from mobilebuild.profiles import Profile, load_profile
from mobilebuild.versions import release as parse_version
from mobilebuild.versions import version_str

VERSION_H = "tensorflow/core/public/version.h"


class SourceTreeError(UserError):
    """A source tree that cannot be used: missing, not TensorFlow, clone/ref problems."""


@dataclass
class TFTree:
    root: Path
    version: tuple[int, int, int]
    version_source: str  # "version.h" or "tag v1.1.0"
    profile: Profile
    origin: str  # the directory given, or the repository URL we cloned
    ref: str | None = None
    managed: bool = False  # True for our own clone in the cache

    @property
    def version_text(self) -> str:
        return version_str(self.version)

    def path(self, rel: str) -> Path:
        return self.root / rel

    def rel(self, path: Path) -> str:
        return Path(path).resolve().relative_to(self.root).as_posix()

    def as_dict(self) -> dict:
        return {
            "root": str(self.root),
            "version": self.version_text,
            "version_source": self.version_source,
            "profile": self.profile.family,
            "origin": self.origin,
            "ref": self.ref,
        }


# ---- version --------------------------------------------------------------------------------


def read_version_h(root: Path) -> tuple[int, int, int] | None:
    path = root / VERSION_H
    if not path.is_file():
        return None
    return parse_version_h(path.read_text(encoding="utf-8", errors="replace"))


def parse_version_h(text: str) -> tuple[int, int, int] | None:
    """(major, minor, patch) from the TF_*_VERSION defines of version.h's text."""
    parts = []
    for name in ("MAJOR", "MINOR", "PATCH"):
        m = re.search(rf"^\s*#define\s+TF_{name}_VERSION\s+(\d+)\b", text, re.M)
        if not m:
            return None
        parts.append(int(m.group(1)))
    return tuple(parts)  # type: ignore[return-value]


def version_from_tag(root: Path) -> tuple[tuple[int, int, int], str] | None:
    """A ``vX.Y.Z`` tag on the checked-out commit (read-only git access)."""
    try:
        import git
    except ImportError:  # pragma: no cover
        return None
    try:
        repo = git.Repo(root, search_parent_directories=True)
        head = repo.head.commit
    except Exception:
        return None
    for tag in repo.tags:
        try:
            if tag.commit == head:
                m = re.fullmatch(r"v?(\d+)\.(\d+)\.(\d+)(?:[-.].*)?", tag.name)
                if m:
                    return tuple(int(g) for g in m.groups()), tag.name  # type: ignore[return-value]
        except ValueError:
            continue
    return None


def detect_version(root: Path) -> tuple[tuple[int, int, int], str]:
    v = read_version_h(root)
    if v is not None:
        return v, "version.h"
    tagged = version_from_tag(root)
    if tagged is not None:
        return tagged[0], f"tag {tagged[1]}"
    raise SourceTreeError(
        f"cannot tell the TensorFlow version of {root}: no {VERSION_H} and no vX.Y.Z tag on HEAD",
        "pass the root of a TensorFlow checkout with --tf-src (the directory holding WORKSPACE)",
    )


# ---- opening ---------------------------------------------------------------------------------
# The one resolver of "which tree, which version": every command taking --tf-src, --tf-repo,
# --tf-ref or --tf-version goes through ``resolve`` (or ``tree_root`` when it must not clone).


@dataclass
class Resolved:
    """What a command works on: a profile, the tree it came from (None when only a version was
    named), and how the version was chosen (for the report)."""

    profile: Profile
    tree: TFTree | None
    how: str

    @property
    def version_text(self) -> str:
        return self.profile.version_text

    @property
    def root(self) -> Path | None:
        return self.tree.root if self.tree is not None else None


def resolve(
    *,
    tf_src: str | None = None,
    tf_repo: str | None = None,
    tf_ref: str | None = None,
    tf_version: str | None = None,
    conf: dict | None = None,
    need_tree: bool = True,
    read_version: Callable[[], tuple[int, int, int]] | None = None,
    read_where: str = "",
) -> Resolved:
    """The tree and profile a command works on.

    ``need_tree``: the app and makefile commands need a tree (``--tf-src``, ``--tf-repo/--tf-ref``,
    else ``tf_src`` of mobilebuild.toml). Without it (setup, doctor, a Pi over ssh) a version is
    enough: ``--tf-version``, or ``--tf-ref`` alone naming a tag, else mobilebuild.toml's
    ``tf_src``/``tf_ref``. ``--tf-version`` overrides the version a tree reports.
    ``conf``: the command's settings from mobilebuild.toml ({} for none). ``read_version`` reads
    the version of a tree elsewhere (the Pi's, over ssh) when nothing else names one."""
    conf = {} if conf is None else conf
    if tf_src and tf_repo:
        raise UserError("--tf-src and --tf-repo were both given", "use one: an existing checkout or a repository to clone")
    named_version = tf_version or (tf_ref if not tf_repo and not need_tree else None)
    if not need_tree and tf_ref and tf_src and not tf_version:
        raise UserError("give either --tf-ref or --tf-src, not both", "--tf-src DIR reads the version from the tree")
    if need_tree or tf_src or tf_repo or (not named_version and read_version is None and conf.get("tf_src")):
        tree = open_tree(tf_src, tf_repo, tf_ref, conf=conf)
        if tf_version:
            return Resolved(load_profile(tf_version), tree, f"TF {version_str(parse_version(tf_version))} from --tf-version")
        return Resolved(tree.profile, tree, f"TF {tree.version_text} from {tree.version_source} in {tree.root}")
    if read_version is not None and not named_version:
        version = read_version()
        return Resolved(load_profile(version), None, f"TF {version_str(version)} from {read_where or 'the tree'}")
    ref = named_version or conf.get("tf_ref")
    if ref:
        where = "--tf-version" if tf_version else ("--tf-ref" if tf_ref else "mobilebuild.toml")
        return Resolved(load_profile(ref), None, f"TF {version_str(parse_version(ref))} from {where}")
    raise UserError(
        "which TensorFlow version? none given and no mobilebuild.toml names one",
        "pass --tf-ref v1.4.0 or --tf-src PATH_TO_TENSORFLOW_TREE",
    )


def tree_root(tf_src: str | None, tf_repo: str | None, tf_ref: str | None, *, conf: dict | None = None,
              clone: bool = True) -> tuple[Path, str, str | None, bool]:
    """(root, origin, ref, managed) of the tree named by the flags or mobilebuild.toml's tf_src.

    ``clone=False`` (restore) only finds a clone made earlier and never downloads."""
    if tf_src and tf_repo:
        raise UserError("--tf-src and --tf-repo were both given", "use one: an existing checkout or a repository to clone")
    if tf_ref and not tf_repo:
        raise UserError(f"--tf-ref {tf_ref} needs --tf-repo", "name the repository to clone: --tf-repo URL --tf-ref TAG")
    if tf_repo:
        if not tf_ref:
            raise UserError(f"--tf-repo {tf_repo} needs --tf-ref", "name the tag to build, e.g. --tf-ref v1.4.0")
        if clone:
            return clone_at_ref(tf_repo, tf_ref), tf_repo, tf_ref, True
        root = worktree_dir(tf_repo, tf_ref)
        if not (root / ".git").exists():
            raise SourceTreeError(
                f"there is no cached checkout of {tf_repo} at {tf_ref}",
                "it is made by `mobilebuild android --tf-repo URL --tf-ref REF` (or workspace / ios)",
            )
        return root, tf_repo, tf_ref, True
    if not tf_src:
        tf_src = (conf or {}).get("tf_src")
        if tf_src:
            console.detail(f"TensorFlow tree from mobilebuild.toml: {tf_src}")
    if not tf_src:
        raise UserError(
            "no TensorFlow source tree given",
            "pass --tf-src DIR (a checkout) or --tf-repo URL --tf-ref TAG (cloned into the cache)",
        )
    root = Path(tf_src).expanduser()
    if not root.is_dir():
        raise SourceTreeError(
            f"TensorFlow source tree not found: {root} is not a directory",
            "pass the root of a TensorFlow checkout with --tf-src, or clone one with --tf-repo URL --tf-ref TAG",
        )
    return root.resolve(), str(root), None, False


def open_tree(tf_src: str | None = None, tf_repo: str | None = None, tf_ref: str | None = None, *,
              conf: dict | None = None) -> TFTree:
    """The tree to work on, from ``--tf-src`` or ``--tf-repo/--tf-ref`` (else ``tf_src`` of ``conf``)."""
    root, origin, ref, managed = tree_root(tf_src, tf_repo, tf_ref, conf=conf)
    return _tree(root, origin=origin, ref=ref, managed=managed)


def _tree(root: Path, *, origin: str, ref: str | None, managed: bool) -> TFTree:
    if not (root / "WORKSPACE").is_file() and not (root / "tensorflow").is_dir():
        # Pointing inside a checkout (e.g. at its tensorflow/ dir) is the usual slip: name the root.
        top = next((d for d in root.parents if (d / "WORKSPACE").is_file() and (d / VERSION_H).is_file()), None)
        raise SourceTreeError(
            f"{root} is not a TensorFlow source tree (no WORKSPACE, no tensorflow/ directory)",
            f"pass the root of the checkout: --tf-src {top}" if top else "pass the root of a TensorFlow checkout with --tf-src",
        )
    version, source = detect_version(root)
    profile = load_profile(version)
    console.detail(f"TensorFlow {version_str(version)} ({source}) at {root}: profile {profile.family}")
    return TFTree(root, version, source, profile, origin, ref, managed)


# ---- cloning ---------------------------------------------------------------------------------


def _normalise_url(url: str) -> str:
    """Local paths become absolute (so the same repo has one cache key however it is named)."""
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", url) or re.match(r"^[^/]+@[^/]+:", url):
        return url
    p = Path(url).expanduser()
    if not p.exists():
        raise SourceTreeError(
            f"repository not found: {url} is neither a URL nor an existing directory",
            "pass an https:// or file:// URL, or the path of a local git repository",
        )
    return str(p.resolve())


def _cache_key(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", text.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git"))[:40] or "repo"
    return f"{name}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def mirror_dir(url: str) -> Path:
    return cache_dir() / "tf-repos" / (_cache_key(_normalise_url(url)) + ".git")


def worktree_dir(url: str, ref: str) -> Path:
    safe_ref = re.sub(r"[^A-Za-z0-9_.-]+", "_", ref)
    return cache_dir() / "tf-src" / _cache_key(_normalise_url(url)) / safe_ref


def clone_at_ref(url: str, ref: str) -> Path:
    """A worktree of ``url`` at ``ref`` in the cache: clone once, fetch only when ref is missing.

    Two runs with the same repository wait for each other here: both would otherwise create
    (and clear) the same ``.partial`` clone, fetch into one mirror, or add one worktree."""
    norm = _normalise_url(url)
    with exclusive_lock(cache_dir() / "locks" / f"repo-{_cache_key(norm)}.lock", wait=True):
        return _checkout_locked(url, norm, ref)


def _checkout_locked(url: str, norm: str, ref: str) -> Path:
    mirror = mirror_dir(url)
    fresh = _ensure_mirror(norm, mirror)
    commit = _resolve(mirror, ref)
    if commit is None:
        if fresh:
            console.info(f"cloning {url} at {ref} (only that ref; later runs reuse {mirror})")
        else:
            console.info(f"fetching {url} (ref {ref} is not in the cached clone)")
        try:
            _fetch_ref(mirror, ref, url)
        except BaseException:
            if fresh:  # nothing usable came: no empty cache entry is left behind
                shutil.rmtree(mirror, ignore_errors=True)
            raise
        commit = _resolve(mirror, ref)
    if commit is None:
        raise SourceTreeError(
            f"ref {ref} not found in {url}",
            f"list its tags with `git ls-remote --tags {url}` and pass one with --tf-ref (e.g. v1.4.0)",
        )
    work = worktree_dir(url, ref)
    if (work / ".git").exists():
        head = _git(work, "rev-parse", "HEAD", what="read the cached worktree")
        if head.strip() == commit:
            console.detail(f"reusing {work} ({ref} = {commit[:12]})")
            mark_used(work)
            return work
        # A branch ref moved after a fetch: move the worktree along (it is ours, not the user's).
        _git(work, "checkout", "--quiet", "--detach", commit, what=f"check out {ref}")
        return work
    if work.exists():  # a previous run was interrupted while creating it
        shutil.rmtree(work)
    work.parent.mkdir(parents=True, exist_ok=True)
    _git(mirror, "worktree", "prune", what="prune stale worktrees")
    _git(mirror, "worktree", "add", "--detach", str(work), commit, what=f"check out {ref}")
    console.info(f"checked out {url} at {ref} into {work}")
    return work


def _ensure_mirror(url: str, mirror: Path) -> bool:
    """The bare repository for ``url`` (True when it was made now: nothing fetched yet). Only a
    complete one gets the final name, so an interrupted run leaves no half-made mirror."""
    if (mirror / "HEAD").is_file():
        return False
    mirror.parent.mkdir(parents=True, exist_ok=True)
    tmp = mirror.with_name(mirror.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    _git(None, "init", "--quiet", "--bare", str(tmp), what=f"create the cache for {url}")
    _git(tmp, "remote", "add", "origin", url, what=f"create the cache for {url}")
    tmp.rename(mirror)
    return True


def _fetch_ref(mirror: Path, ref: str, url: str) -> None:
    """Fetch only ``ref`` (a tag, a branch, else a commit), one commit deep: a TensorFlow clone
    for one tag must not download every branch and tag. git's progress goes to stderr."""
    progress = ["--progress"] if console.err().is_terminal else []
    on_line = console.info if progress else console.detail
    last = None
    for refspec in (f"+refs/tags/{ref}:refs/tags/{ref}", f"+refs/heads/{ref}:refs/heads/{ref}", ref):
        try:
            _git(mirror, "fetch", "--depth=1", "--no-tags", *progress, "origin", refspec, what=f"fetch {ref} from {url}",
                 on_line=on_line)
            return
        except CommandError as exc:
            last = exc
            if "does not appear to be a git repository" in exc.output or "Could not read from remote" in exc.output:
                raise CommandError(exc.argv, exc.returncode, exc.output, message=f"could not clone {url}: {_last_line(exc.output)}",
                                   hint="check the URL and your network; a local path or file:// URL works too",
                                   log_path=exc.log_path) from exc
    console.detail(f"no ref {ref} in {url} ({_last_line(last.output) if last else ''})")


def _resolve(repo: Path, ref: str) -> str | None:
    for candidate in (ref, f"refs/tags/{ref}", f"refs/heads/{ref}"):
        res = runner.run(["git", "rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}"], cwd=repo, check=False)
        if res.returncode == 0 and res.stdout.strip():
            return res.stdout.strip()
    return None


def _git(repo: Path | None, *args: str, what: str, on_line=None) -> str:
    """git through the one runner (--verbose shows the exact command); a failure is one
    CommandError naming what could not be done, with git's own first error line."""
    argv = ["git", *args]
    try:
        return runner.run(argv, cwd=repo, on_line=on_line).stdout
    except CommandError as exc:
        raise CommandError(exc.argv, exc.returncode, exc.output, message=f"git could not {what}: {_last_line(exc.output)}",
                           hint="see `mobilebuild --verbose` output; the cache can be removed safely", log_path=exc.log_path) from exc


def _last_line(output: str) -> str:
    """git's own message in its output: the first fatal:/error: line (later ones are
    consequences, e.g. "Could not read from remote repository"), else the last line."""
    lines = [ln.strip() for ln in (output or "").splitlines() if ln.strip()]
    fatal = [ln for ln in lines if ln.startswith(("fatal:", "error:"))]
    return fatal[0] if fatal else (lines[-1] if lines else "unknown error")


# ---- reading git state (never changing it) ---------------------------------------------------


def modified_since_head(root: Path, rels: list[str]) -> list[str]:
    """Those of ``rels`` whose bytes differ from the checked-out commit (untracked files are not
    reported). Compares blobs directly: no git command that could write the index runs."""
    try:
        import git

        repo = git.Repo(root, search_parent_directories=True)
        tree = repo.head.commit.tree
        top = Path(repo.working_tree_dir).resolve()
    except Exception:
        return []
    out = []
    for rel in rels:
        path = root / rel
        try:
            blob = tree / (path.resolve().relative_to(top).as_posix())
        except (KeyError, ValueError):
            continue
        try:
            current = path.read_bytes()
        except OSError:
            out.append(rel)  # deleted in the working tree
            continue
        if blob.data_stream.read() != current:
            out.append(rel)
    return out


def require_file(tree: TFTree, rel: str, what: str) -> Path:
    path = tree.path(rel)
    if not path.is_file():
        raise PatchError(
            f"{rel} not found in {tree.root}: TensorFlow {tree.version_text} ({tree.version_source}) should have the {what} there",
            f"is this a complete TensorFlow {tree.version_text} checkout? the profile is {tree.profile.source.name}",
        )
    return path
