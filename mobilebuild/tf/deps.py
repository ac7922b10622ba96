"""``tensorflow/contrib/makefile/downloads/``: what download_dependencies.sh does, verified.

The script greps ``tensorflow/workspace.bzl`` for one URL per dependency and ignores the
sha256 next to it. Here workspace.bzl is parsed (Starlark is close enough to Python for
``ast``), the same URL-selection rule picks the dependency's ``http_archive`` call, and then
*all* of that call's URLs plus its sha256 go to the downloader (the checksum is what makes a
mirror safe: many original hosts are dead). Deps not in workspace.bzl (googletest) come from the
version profile with their sha256.

Each dependency is extracted (first path component stripped, as ``tar --strip-components=1``),
every ``*BUILD`` file is deleted, the script's source patches are applied (each must apply
exactly once), a stamp with the sha256 is written, and only then the result replaces
``downloads/<dep>``. A second run finds every stamp matching and touches nothing.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from mobilebuild import console
from mobilebuild.net.archives import extract
from mobilebuild.net.downloads import Artifact, cached, fetch_many
from mobilebuild.errors import PatchError, UserError

STAMP = ".mobilebuild-deps.json"
ARCHIVE_RULE = re.compile(r"(^|_)http_archive$")


@dataclass
class BzlArchive:
    """One ``*http_archive(...)`` call of workspace.bzl."""

    rule: str
    name: str | None
    urls: list[str]
    sha256: str | None
    strip_prefix: str | None
    line: int


@dataclass
class DepPlan:
    name: str
    artifact: Artifact
    script_url: str  # the URL download_dependencies.sh would have used
    origin: str  # "workspace.bzl:<line> (<rule> <name>)" or "profile"
    patches: list[dict] = field(default_factory=list)


@dataclass
class DepResult:
    name: str
    status: str  # "up-to-date" | "installed"
    dir: str
    sha256: str
    url: str
    origin: str
    patches: list[str] = field(default_factory=list)
    downloaded: bool = False


@dataclass
class DepsReport:
    tf_src: str
    downloads_dir: str
    profile: str
    deps: list[DepResult]

    @property
    def changed(self) -> bool:
        return any(d.status != "up-to-date" for d in self.deps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tf_src": self.tf_src,
            "downloads_dir": self.downloads_dir,
            "profile": self.profile,
            "changed": self.changed,
            "deps": [asdict(d) for d in self.deps],
        }


# ---------------------------------------------------------------------------- workspace.bzl


class _Unknown(Exception):
    """A value that is not a literal we can evaluate (e.g. ``str(Label(...))``)."""


def _evaluate(node: ast.AST, consts: dict[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_evaluate(e, consts) for e in node.elts]
    if isinstance(node, ast.Name) and node.id in consts:
        return consts[node.id]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _evaluate(node.left, consts) + _evaluate(node.right, consts)
    raise _Unknown(ast.dump(node)[:80])


def _func_name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def parse_workspace_bzl(text: str, filename: str = "workspace.bzl") -> list[BzlArchive]:
    """Every http_archive-like call (native.http_archive, native.new_http_archive,
    patched_http_archive, tf_http_archive, and ``_maybe(native.http_archive, ...)``), in
    file order, with literal urls/url/sha256/strip_prefix (module constants resolved)."""
    try:
        tree = ast.parse(text, filename=filename)
    except SyntaxError as exc:
        raise PatchError(
            f"cannot parse {filename} (line {exc.lineno}): {exc.msg}",
            "is this the workspace.bzl of a TensorFlow tree? mobilebuild reads it with a Starlark-compatible parser",
        ) from exc
    consts: dict[str, Any] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                consts[node.targets[0].id] = _evaluate(node.value, consts)
            except _Unknown:
                pass
    found: list[BzlArchive] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        rule = _func_name(node.func)
        if not ARCHIVE_RULE.search(rule):
            # _maybe(native.http_archive, name = ..., ...) passes the rule as first argument.
            if node.args and ARCHIVE_RULE.search(_func_name(node.args[0])):
                rule = _func_name(node.args[0])
            else:
                continue
        kw: dict[str, Any] = {}
        for k in node.keywords:
            if k.arg in ("name", "urls", "url", "sha256", "strip_prefix"):
                try:
                    kw[k.arg] = _evaluate(k.value, consts)
                except _Unknown:
                    pass
        urls = list(kw.get("urls") or [])
        if isinstance(kw.get("url"), str):
            urls.append(kw["url"])
        found.append(BzlArchive(rule, kw.get("name"), [u for u in urls if isinstance(u, str)], kw.get("sha256"), kw.get("strip_prefix"), node.lineno))
    found.sort(key=lambda a: a.line)
    return found


def select_archive(archives: Iterable[BzlArchive], pattern: str, skip: str | None) -> tuple[BzlArchive, str] | None:
    """The script's rule: the first URL in the file matching ``pattern`` and not ``skip``."""
    rx = re.compile(pattern)
    for arc in archives:
        for url in arc.urls:
            if rx.search(url) and not (skip and skip in url):
                return arc, url
    return None


# ---------------------------------------------------------------------------- planning


def makefile_settings(profile) -> dict[str, Any]:
    mk = profile.get("makefile")
    if not mk or not mk.get("deps"):
        raise UserError(
            f"the {profile.family} profile has no makefile dependencies for TensorFlow {profile.version_text}",
            f"add [[makefile.deps]] to {profile.source.name} in toolchains/",
        )
    return mk


# Bazel mirrors of TF's era; v1.4's workspace.bzl lists some archives only under a mirror
# (the original is commented out, which the parser never sees).
BAZEL_MIRROR_PREFIXES = (
    "https://mirror.bazel.build/",
    "http://mirror.bazel.build/",
    "http://bazel-mirror.storage.googleapis.com/",
    "https://bazel-mirror.storage.googleapis.com/",
)


def with_original_urls(urls) -> tuple[str, ...]:
    """The URLs as listed, then the original host behind each Bazel-mirror URL (the mirrors
    are dying; the sha256 keeps any source honest)."""
    out = list(urls)
    for url in urls:
        for prefix in BAZEL_MIRROR_PREFIXES:
            if url.startswith(prefix):
                original = "https://" + url[len(prefix):]
                if original not in out:
                    out.append(original)
    return tuple(out)


def plan_deps(tf_src: Path, profile) -> list[DepPlan]:
    mk = makefile_settings(profile)
    bzl_path = tf_src / mk.get("workspace_bzl", "tensorflow/workspace.bzl")
    archives: list[BzlArchive] | None = None
    patches = mk.get("patches", [])
    plans: list[DepPlan] = []
    for dep in mk["deps"]:
        name = dep["name"]
        dep_patches = [p for p in patches if p.get("dep") == name]
        if dep.get("url"):
            art = Artifact((dep["url"], *dep.get("mirror_urls", [])), sha256=dep.get("sha256"), name=dep.get("file"))
            plans.append(DepPlan(name, art, dep["url"], "profile", dep_patches))
            continue
        if archives is None:
            if not bzl_path.is_file():
                raise PatchError(
                    f"not found: {bzl_path}",
                    "--tf-src must be the root of a TensorFlow source tree (it has tensorflow/workspace.bzl)",
                )
            archives = parse_workspace_bzl(bzl_path.read_text(encoding="utf-8", errors="replace"), str(bzl_path))
        hit = select_archive(archives, dep["pattern"], dep.get("skip"))
        if hit is None and dep.get("bzl_name"):
            by_name = [a for a in archives if a.name == dep["bzl_name"] and a.urls]
            if by_name:
                hit = (by_name[0], by_name[0].urls[0])
        if hit is None:
            if dep.get("optional"):
                continue
            raise PatchError(
                f"{bzl_path.name} has no URL for {name} (no URL matches {dep['pattern']!r})",
                f"this tree's workspace.bzl differs from the {profile.family} profile: update [[makefile.deps]] in {profile.source.name}",
            )
        arc, script_url = hit
        if not arc.sha256:
            raise PatchError(
                f"{bzl_path.name}:{arc.line}: {arc.name or name} has no sha256",
                "refusing an unverified download; add the sha256 to workspace.bzl or the profile",
            )
        art = Artifact(with_original_urls(arc.urls), sha256=arc.sha256)
        plans.append(DepPlan(name, art, script_url, f"{bzl_path.name}:{arc.line} ({arc.rule} {arc.name})", dep_patches))
    return plans


# ---------------------------------------------------------------------------- stamps


def _count_files(d: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(d))


def _read_stamp(dep_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((dep_dir / STAMP).read_text())
    except (OSError, ValueError):
        return {}


def is_up_to_date(dep_dir: Path, plan: DepPlan) -> bool:
    """Complete and patched from the same archive: stamp sha256, file count, patches present."""
    stamp = _read_stamp(dep_dir)
    if stamp.get("sha256") != plan.artifact.sha256 or stamp.get("patches") != _patch_ids(plan):
        return False
    if _count_files(dep_dir) != stamp.get("files"):
        return False
    for p in plan.patches:
        target = dep_dir / p["file"]
        try:
            text = target.read_text(encoding="utf-8", errors="surrogateescape")
        except OSError:
            if p.get("optional"):
                continue
            return False
        if p["find"] in text:
            return False
    return True


def _patch_ids(plan: DepPlan) -> list[str]:
    return [f"{p['file']}: {p['find']}" for p in plan.patches]


# ---------------------------------------------------------------------------- build one dep


def delete_build_files(root: Path) -> int:
    """As the script does: every *file* named ``*BUILD`` would clash with Bazel's own."""
    n = 0
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            if f.endswith("BUILD"):
                p = Path(dirpath) / f
                if p.is_file() and not p.is_symlink():
                    p.unlink()
                    n += 1
    return n


def apply_patches(root: Path, plan: DepPlan) -> list[str]:
    """Apply the dep's patches in the staged copy; each ``find`` must occur exactly once."""
    applied = []
    for p in plan.patches:
        target = root / p["file"]
        if not target.is_file():
            if p.get("optional"):
                continue
            raise PatchError(f"{plan.name}: {p['file']} is missing from the archive", "the archive is not the version the profile expects")
        text = target.read_text(encoding="utf-8", errors="surrogateescape")
        count = text.count(p["find"])
        if count != 1:
            if count == 0 and p.get("optional"):
                continue
            raise PatchError(
                f"{plan.name}: patch for {p['file']} must apply exactly once, but {p['find']!r} occurs {count} times",
                "the archive differs from what download_dependencies.sh expects; update [[makefile.patches]] in the profile",
            )
        text = text.replace(p["find"], p["replace"])
        target.write_bytes(text.encode("utf-8", errors="surrogateescape"))
        applied.append(f"{p['file']}: {p['find']}")
    return applied


def install_dep(archive: Path, dep_dir: Path, plan: DepPlan) -> list[str]:
    """Extract, clean, patch and stamp into a staging dir, then swap it into place."""
    dep_dir.parent.mkdir(parents=True, exist_ok=True)
    stage_parent = Path(tempfile.mkdtemp(prefix=f".{plan.name}.", suffix=".stage", dir=dep_dir.parent))
    old: Path | None = None
    try:
        stage = extract(archive, stage_parent / plan.name, strip_components=1)
        delete_build_files(stage)
        applied = apply_patches(stage, plan)
        stamp = {"sha256": plan.artifact.sha256, "url": plan.script_url, "patches": _patch_ids(plan), "applied": applied}
        stamp["files"] = _count_files(stage) + 1  # + the stamp itself
        (stage / STAMP).write_text(json.dumps(stamp, indent=1) + "\n")
        if dep_dir.exists() or dep_dir.is_symlink():
            old = dep_dir.with_name(f".{plan.name}.old-{os.getpid()}")
            os.replace(dep_dir, old)
        os.replace(stage, dep_dir)
    finally:
        shutil.rmtree(stage_parent, ignore_errors=True)
        if old is not None:
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)
    return applied


# ---------------------------------------------------------------------------- entry point


def fetch_deps(tf_src: str | os.PathLike, profile, mirrors: Iterable[str] = (), offline: bool = False, jobs: int = 4) -> DepsReport:
    """Fill the tree's makefile downloads dir; idempotent (see the module docstring)."""
    tf_src = Path(tf_src).resolve()
    mk = makefile_settings(profile)
    downloads_dir = tf_src / mk.get("downloads_dir", "tensorflow/contrib/makefile/downloads")
    plans = plan_deps(tf_src, profile)
    todo = [p for p in plans if not is_up_to_date(downloads_dir / p.name, p)]
    for p in plans:
        if p not in todo:
            console.detail(f"{p.name}: up to date ({downloads_dir / p.name})")
    in_cache = {p.name: cached(p.artifact) is not None for p in todo}
    paths = fetch_many([p.artifact for p in todo], jobs=jobs, mirrors=mirrors, offline=offline) if todo else []
    results: dict[str, DepResult] = {}
    for plan, archive in zip(todo, paths):
        applied = install_dep(archive, downloads_dir / plan.name, plan)
        console.info(f"{plan.name}: extracted into {downloads_dir / plan.name}" + (f" ({len(applied)} patches)" if applied else ""))
        results[plan.name] = DepResult(plan.name, "installed", str(downloads_dir / plan.name), plan.artifact.sha256 or "", plan.script_url, plan.origin, applied, not in_cache[plan.name])
    out = []
    for plan in plans:
        if plan.name in results:
            out.append(results[plan.name])
        else:
            applied = _read_stamp(downloads_dir / plan.name).get("applied", [])
            out.append(DepResult(plan.name, "up-to-date", str(downloads_dir / plan.name), plan.artifact.sha256 or "", plan.script_url, plan.origin, applied))
    return DepsReport(str(tf_src), str(downloads_dir), f"{profile.family} {profile.version_text}", out)


# ---------------------------------------------------------------------------- version of a tree


def tree_version(tf_src: str | os.PathLike) -> tuple[tuple[int, int, int], str]:
    """(version, how it was found): version.h, else a vX.Y.Z tag (one rule, in tf.tree)."""
    from mobilebuild.tf.tree import detect_version

    return detect_version(Path(tf_src))
