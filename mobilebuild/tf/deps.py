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
import contextlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from mobilebuild import console, runner
from mobilebuild.errors import PatchError, UserError
from mobilebuild.net.archives import extract
from mobilebuild.net.downloads import Artifact, cached, fetch_many, is_local, local_path, mirror_url

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
    git_ref: str | None = None  # a `git clone` of the script (artifact.urls[0] is the repository)
    submodules: bool = False

    @property
    def is_git(self) -> bool:
        return self.git_ref is not None or self.artifact.urls[0].endswith(".git")


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
    verified: str = ""  # "sha256" | "git commit <sha>" | "" (the tree gives no checksum)


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


def require_makefile(profile) -> None:
    """One clear line on trees without tensorflow/contrib/makefile (removed in TF 2.1)."""
    if profile.get("makefile.removed_in"):
        raise UserError(
            f"TensorFlow {profile.version_text} has no makefile build: {profile.require('makefile.why')}",
            profile.require("makefile.hint"),
        )


def makefile_settings(profile) -> dict[str, Any]:
    require_makefile(profile)
    mk = profile.get("makefile")
    if not mk or not (mk.get("deps") or mk.get("script")):
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
    # From TF 1.14 the trees name TensorFlow's own mirror (two addresses of it).
    "http://mirror.tensorflow.org/",
    "https://mirror.tensorflow.org/",
    "https://storage.googleapis.com/mirror.tensorflow.org/",
    "http://storage.googleapis.com/mirror.tensorflow.org/",
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


@contextlib.contextmanager
def _staged(dep_dir: Path):
    """A staging path beside ``dep_dir`` (same name: ``dep_dir`` may be nested, as
    cub/external/cub_archive). When the block succeeds the stage replaces ``dep_dir`` by rename
    (the old one moved aside first, then removed); when it fails ``dep_dir`` is untouched."""
    dep_dir.parent.mkdir(parents=True, exist_ok=True)
    stage_parent = Path(tempfile.mkdtemp(prefix=f".{dep_dir.name}.", suffix=".stage", dir=dep_dir.parent))
    stage = stage_parent / dep_dir.name
    old: Path | None = None
    try:
        yield stage
        if dep_dir.exists() or dep_dir.is_symlink():
            old = dep_dir.with_name(f".{dep_dir.name}.old-{os.getpid()}")
            os.replace(dep_dir, old)
        os.replace(stage, dep_dir)
    finally:
        shutil.rmtree(stage_parent, ignore_errors=True)
        if old is not None:
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)


def install_dep(archive: Path, dep_dir: Path, plan: DepPlan) -> list[str]:
    """Extract, clean, patch and stamp into a staging dir, then swap it into place."""
    with _staged(dep_dir) as target:
        stage = extract(archive, target, strip_components=1)
        delete_build_files(stage)
        applied = apply_patches(stage, plan)
        stamp = {"sha256": plan.artifact.sha256, "url": plan.script_url, "patches": _patch_ids(plan), "applied": applied}
        stamp["files"] = _count_files(stage) + 1  # + the stamp itself
        (stage / STAMP).write_text(json.dumps(stamp, indent=1) + "\n")
    return applied


# ---------------------------------------------------------------------------- the tree's script
#
# From TF 1.5 the list of dependencies is read from the tree's own download_dependencies.sh
# rather than from a list per version: which variables it greps out of workspace.bzl (with its
# `grep -o PATTERN | grep -v SKIP | head -n1` pipelines), which URLs it hard-codes, what it
# passes to download_and_extract and to `git clone` / `git checkout`, and its sed patches. Only
# the shapes these scripts use are understood; anything else is refused by name, so a tree
# whose script does something new fails loudly instead of getting a partial downloads dir.

_ASSIGN = re.compile(r"^(?:readonly\s+|export\s+|local\s+)?([A-Z_][A-Z0-9_]*)=(.*)$")
_DOWNLOAD = re.compile(r'^download_and_extract\s+"?\$\{?(\w+)\}?"?\s+"?\$\{?DOWNLOADS_DIR\}?/([^"\s]+)"?\s*$')
_CLONE = re.compile(r'git\s+clone\s+(?:--\S+\s+)*"?([^"\s]+)"?\s+"?\$\{?DOWNLOADS_DIR\}?/([^"\s]+?)"?(?:\s|$)')
_CHECKOUT = re.compile(r'git\s+(?:-C\s+\S+\s+)?checkout\s+"?([^"\s;&]+)"?')
_SED = re.compile(r"""^replace_by_sed\s+'s#((?:[^#\\]|\\.)*)#((?:[^#\\]|\\.)*)#'\s+"?\$\{?DOWNLOADS_DIR\}?/([^"\s]+)"?\s*$""")
_AWK_SUBSTR = re.compile(
    r'substr\(\$0,\s*index\(\$0,\s*"(\w+)"\)\s*\+\s*(\d+),\s*index\(\$0,\s*"(\w+)"\)\s*-\s*index\(\$0,\s*"\w+"\)\s*-\s*(\d+)\s*\)'
)


@dataclass
class ScriptDep:
    """One thing download_dependencies.sh puts under downloads/."""

    dir: str  # under downloads/, e.g. "eigen" or "cub/external/cub_archive"
    kind: str  # "archive" | "git"
    url: str
    how: str  # where the URL came from, for the report
    ref: str | None = None  # git: what the script checks out
    submodules: bool = False


def _logical_lines(text: str) -> list[str]:
    """Lines with backslash continuations joined and comments dropped."""
    out: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line and not line.startswith("#"):
            out.append(line)
    return out


def _bre_to_python(pattern: str) -> str:
    """grep's basic regular expression as Python's: only ``.``, ``*``, ``^``, ``$``, ``[...]``
    and backslash escapes are special in a BRE (``+ ? ( ) |`` are plain characters)."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if ch == "[":
            j = pattern.find("]", i + 2)
            if j > 0:
                out.append(pattern[i : j + 1])
                i = j + 1
                continue
        out.append(ch if ch in ".*^$" else re.escape(ch))
        i += 1
    return "".join(out)


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _expand(value: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m.group(1) or m.group(2), m.group(0)), value)


def _grep_pipeline(command: str, bzl_text: str, script: str) -> tuple[str | None, str]:
    """Run one ``grep -o 'P' FILE | grep -v S | head -n1 [| awk 'substr(...)']`` over
    workspace.bzl's text, as the shell would: (first surviving match, description)."""
    stages = [s.strip() for s in command.split("|")]
    m = re.match(r"""^grep\s+-o\s+(['"])(.*?)\1\s+\S+$""", stages[0])
    if not m:
        raise PatchError(f"{script}: cannot read `{command}`", "this download_dependencies.sh does something mobilebuild does not know")
    rx = re.compile(_bre_to_python(m.group(2)))
    found = [hit.group(0) for line in bzl_text.splitlines() for hit in rx.finditer(line)]
    how = f"grep -o '{m.group(2)}'"
    for stage in stages[1:]:
        if (v := re.match(r"""^grep\s+-v\s+(['"]?)(.*?)\1$""", stage)):
            bad = re.compile(_bre_to_python(v.group(2)))
            found = [f for f in found if not bad.search(f)]
            how += f" | grep -v {v.group(2)}"
        elif re.match(r"^head\s+-(?:n\s*)?1$", stage):
            found = found[:1]
        elif stage.startswith("awk") and (a := _AWK_SUBSTR.search(stage)):
            # awk's index() is 1-based: substr from index(a)+n1, length index(b)-index(a)-n2.
            def cut(s: str, a=a) -> str:
                ia, ib = s.find(a.group(1)), s.find(a.group(3))
                start = ia + int(a.group(2))
                return s[start : start + (ib - ia - int(a.group(4)))] if ia >= 0 and ib >= 0 else ""
            found = [cut(f) for f in found]
            how += " | awk substr"
        else:
            raise PatchError(f"{script}: cannot read the pipeline stage `{stage}`",
                             "this download_dependencies.sh does something mobilebuild does not know")
    return (found[0] if found else None), how


def read_download_script(script_text: str, bzl_text: str, script: str = "download_dependencies.sh") -> tuple[list[ScriptDep], list[dict]]:
    """(what the script fetches, its sed patches) for this tree."""
    env: dict[str, str] = {}
    how: dict[str, str] = {}
    deps: list[ScriptDep] = []
    patches: list[dict] = []
    for line in _logical_lines(script_text):
        if (m := _ASSIGN.match(line)):
            name, value = m.group(1), m.group(2).strip()
            sub = re.fullmatch(r'"\$\((.*)\)"', value)
            if sub and not sub.group(1).lstrip().startswith("grep"):
                how[name] = f"`{sub.group(1)}` (not a grep over workspace.bzl: mobilebuild cannot evaluate it)"
                continue
            if sub:
                result, desc = _grep_pipeline(sub.group(1), bzl_text, script)
                if result is None:
                    raise PatchError(
                        f"{script}: {name} finds nothing in tensorflow/workspace.bzl ({desc})",
                        "the tree's workspace.bzl and its download script disagree: is the checkout complete?",
                    )
                env[name], how[name] = result, f"workspace.bzl ({desc})"
            elif "$(" not in value and "`" not in value:
                env[name], how[name] = _expand(_unquote(value), env), "hard-coded in the script"
            continue
        if (m := _DOWNLOAD.match(line)):
            var, target = m.group(1), m.group(2)
            if var not in env:
                raise PatchError(f"{script}: download_and_extract uses ${var}, which the script "
                                 + (f"sets from {how[var]}" if var in how else "never sets"), "is the checkout complete?")
            deps.append(ScriptDep(target, "archive", env[var], how[var]))
            continue
        if (m := _CLONE.search(line)):
            url = _expand(m.group(1), env)
            deps.append(ScriptDep(m.group(2), "git", url, how.get(m.group(1).strip("${}"), "hard-coded in the script")))
        if (m := _CHECKOUT.search(line)) and deps and deps[-1].kind == "git":
            ref = _expand(m.group(1), env)
            deps[-1].ref = ref
            var = m.group(1).strip("${}")
            deps[-1].how += f"; checks out {ref} ({how.get(var, 'hard-coded')})"
        if "submodule update" in line and deps and deps[-1].kind == "git":
            deps[-1].submodules = True
        if (m := _SED.match(line)):
            find, repl, path = (re.sub(r"\\(.)", r"\1", g) for g in m.groups())
            owner = max((d for d in deps if path.startswith(d.dir + "/")), key=lambda d: len(d.dir), default=None)
            if owner is None:
                raise PatchError(f"{script}: a sed patch edits {path}, outside what the script downloads", "is the checkout complete?")
            # sed changes nothing when the text is absent: so may we (Eigen revisions differ).
            patches.append({"dep": owner.dir, "file": path[len(owner.dir) + 1 :], "find": find, "replace": repl,
                            "optional": True, "why": "download_dependencies.sh patches it"})
    if not deps:
        raise PatchError(f"{script} downloads nothing mobilebuild can see", "this download_dependencies.sh does something mobilebuild does not know")
    return deps, patches


def _bzl_archives(tf_src: Path, mk: dict) -> list[BzlArchive]:
    """Every archive call of tensorflow/workspace.bzl and of third_party/*/workspace.bzl (1.10+
    moved some there): where the checksums of the script's URLs are."""
    out: list[BzlArchive] = []
    files = [tf_src / mk.get("workspace_bzl", "tensorflow/workspace.bzl")]
    files += sorted((tf_src / "third_party").glob("**/workspace.bzl"))
    for f in files:
        if f.is_file():
            out += parse_workspace_bzl(f.read_text(encoding="utf-8", errors="replace"), str(f))
    return out


def _host_path(url: str) -> str:
    """The original host + path of a URL, with a known mirror prefix removed."""
    for cand in with_original_urls([url])[::-1]:
        return re.sub(r"^[a-z]+://", "", cand)
    return url


def plan_script_deps(tf_src: Path, profile) -> list["DepPlan"]:
    mk = makefile_settings(profile)
    script = tf_src / mk["script"]
    bzl = tf_src / mk.get("workspace_bzl", "tensorflow/workspace.bzl")
    for f in (script, bzl):
        if not f.is_file():
            raise PatchError(
                f"not found: {f}",
                f"TensorFlow {profile.version_text} trees have {f.relative_to(tf_src)}: is this a complete checkout?",
            )
    deps, patches = read_download_script(script.read_text(encoding="utf-8", errors="replace"),
                                         bzl.read_text(encoding="utf-8", errors="replace"), mk["script"])
    archives = _bzl_archives(tf_src, mk)
    known = {k: v for k, v in (mk.get("known_sha256") or {}).items()}
    plans = []
    for dep in deps:
        dep_patches = [p for p in patches if p["dep"] == dep.dir]
        if dep.kind == "git":
            plans.append(DepPlan(dep.dir, Artifact((dep.url,)), dep.url, dep.how, dep_patches, git_ref=dep.ref,
                                 submodules=dep.submodules))
            continue
        exact = [a for a in archives if dep.url in a.urls and a.sha256]
        same = exact or [a for a in archives if a.sha256 and _host_path(dep.url) in {_host_path(u) for u in a.urls}]
        if same:
            arc = same[0]
            urls = with_original_urls([dep.url, *[u for u in arc.urls if u != dep.url]])
            art = Artifact(urls, sha256=arc.sha256)
            origin = f"{dep.how}; sha256 of {arc.name} (workspace.bzl line {arc.line})"
        elif dep.url in known:
            art = Artifact(with_original_urls([dep.url]), sha256=known[dep.url])
            origin = f"{dep.how}; sha256 from the {profile.family} profile"
        else:
            art = Artifact(with_original_urls([dep.url]))
            origin = f"{dep.how}; no checksum in the tree"
        plans.append(DepPlan(dep.dir, art, dep.url, origin, dep_patches))
    return plans


# ---------------------------------------------------------------------------- git clones (1.13+)


def _git_head(d: Path) -> str | None:
    res = runner.run(["git", "-C", str(d), "rev-parse", "HEAD"], check=False)
    return res.stdout.strip() if res.returncode == 0 else None


def git_up_to_date(dep_dir: Path, plan: "DepPlan") -> bool:
    stamp = _read_stamp(dep_dir)
    return (stamp.get("git") == plan.script_url and stamp.get("ref") == plan.git_ref
            and stamp.get("patches") == _patch_ids(plan) and bool(stamp.get("commit"))
            and _git_head(dep_dir) == stamp.get("commit"))


def install_git(dep_dir: Path, plan: "DepPlan", mirrors: Iterable[str], offline: bool) -> tuple[list[str], str, str]:
    """Clone as the script does (then check out its ref), from the URL or a mirror holding the
    repository at BASE/host/path; staged, patched and stamped, then swapped into place.
    Returns (patches applied, commit, where it came from)."""

    sources = [] if offline else [plan.script_url]
    sources += [mirror_url(m, plan.script_url) for m in mirrors if not offline or is_local(m)]
    with _staged(dep_dir) as stage:
        last = "no source to clone from"
        for src in sources:
            src_arg = str(local_path(src)) if is_local(src) else src
            res = runner.run(["git", "clone", "--quiet", src_arg, str(stage)], check=False)
            if res.returncode == 0:
                break
            shutil.rmtree(stage, ignore_errors=True)
            last = f"{src}: " + ((res.stderr or res.stdout).strip().splitlines() or ["failed"])[-1]
        else:
            raise UserError(
                f"could not clone {plan.script_url} for downloads/{plan.name}" + (" (offline)" if offline else "") + f" ({last})",
                "check the network, or keep a clone at BASE/" + mirror_url("", plan.script_url).lstrip("/")
                + " and pass --mirror BASE",
            )
        if plan.git_ref:
            res = runner.run(["git", "-C", str(stage), "checkout", "--quiet", plan.git_ref], check=False)
            if res.returncode != 0:
                raise PatchError(
                    f"{src} has no {plan.git_ref} (the ref {plan.origin.split(';')[0]} names)",
                    "the mirror's clone is older than the tree: update it (git fetch --tags)",
                )
        if plan.submodules:
            runner.run(["git", "-C", str(stage), "submodule", "update", "--init", "--recursive"],
                       hint="the submodules of the clone could not be fetched")
        commit = _git_head(stage) or ""
        applied = apply_patches(stage, plan)
        stamp = {"git": plan.script_url, "ref": plan.git_ref, "commit": commit, "source": src,
                 "patches": _patch_ids(plan), "applied": applied}
        (stage / STAMP).write_text(json.dumps(stamp, indent=1) + "\n")
    return applied, commit, src


# ---------------------------------------------------------------------------- entry point


def fetch_deps(tf_src: str | os.PathLike, profile, mirrors: Iterable[str] = (), offline: bool = False, jobs: int = 4) -> DepsReport:
    """Fill the tree's makefile downloads dir; idempotent (see the module docstring)."""
    tf_src = Path(tf_src).resolve()
    mk = makefile_settings(profile)
    downloads_dir = tf_src / mk.get("downloads_dir", "tensorflow/contrib/makefile/downloads")
    plans = plan_script_deps(tf_src, profile) if mk.get("script") else plan_deps(tf_src, profile)
    mirrors = list(mirrors)
    results: dict[str, DepResult] = {}
    for plan in [p for p in plans if p.is_git]:
        d = downloads_dir / plan.name
        if git_up_to_date(d, plan):
            continue
        applied, commit, src = install_git(d, plan, mirrors, offline)
        console.info(f"{plan.name}: cloned {plan.script_url} at {plan.git_ref or 'HEAD'} ({commit[:12]}) into {d}")
        results[plan.name] = DepResult(plan.name, "installed", str(d), "", plan.script_url, plan.origin, applied, True,
                                       f"git commit {commit}")
    archives = [p for p in plans if not p.is_git]
    todo = [p for p in archives if not is_up_to_date(downloads_dir / p.name, p)]
    for p in plans:
        if p not in todo and p.name not in results:
            console.detail(f"{p.name}: up to date ({downloads_dir / p.name})")
    for p in todo:
        if not p.artifact.verified:
            console.warn(f"{p.name}: {p.script_url} is not verified: the tree gives no checksum for it "
                         "(download_dependencies.sh checks none either)")
    in_cache = {p.name: cached(p.artifact) is not None for p in todo}
    paths = fetch_many([p.artifact for p in todo], jobs=jobs, mirrors=mirrors, offline=offline,
                       allow_unverified=True) if todo else []
    for plan, archive in zip(todo, paths):
        applied = install_dep(archive, downloads_dir / plan.name, plan)
        console.info(f"{plan.name}: extracted into {downloads_dir / plan.name}" + (f" ({len(applied)} patches)" if applied else ""))
        results[plan.name] = DepResult(plan.name, "installed", str(downloads_dir / plan.name), plan.artifact.sha256 or "", plan.script_url,
                                       plan.origin, applied, not in_cache[plan.name], "sha256" if plan.artifact.sha256 else "")
    out = []
    for plan in plans:
        if plan.name in results:
            out.append(results[plan.name])
        else:
            stamp = _read_stamp(downloads_dir / plan.name)
            verified = f"git commit {stamp.get('commit')}" if plan.is_git else ("sha256" if plan.artifact.sha256 else "")
            out.append(DepResult(plan.name, "up-to-date", str(downloads_dir / plan.name), plan.artifact.sha256 or "",
                                 plan.script_url, plan.origin, stamp.get("applied", []), False, verified))
    return DepsReport(str(tf_src), str(downloads_dir), f"{profile.family} {profile.version_text}", out)
