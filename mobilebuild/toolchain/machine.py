"""What this machine has: JDK, Bazel, Xcode — found, identified, never changed. (The Android
SDK and NDK are the business of ``toolchain.sdk``, which every command asks.)

``setup`` installs what these probes report missing; ``doctor`` prints them. Each probe says
where it found a tool (mobilebuild.toml, environment, PATH, managed prefix) because "which one is
it using?" is the first question of every build failure. Probes run external programs only
through the runner, with short timeouts.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mobilebuild import runner, versions
from mobilebuild.errors import UserError
from mobilebuild.paths import data_dir
from mobilebuild.toolchain import bazel as bazel_search
from mobilebuild.toolchain.bazel import bazelversion_file, managed_bazel_path, probe_version
from mobilebuild.versions import version_str

PROBE_TIMEOUT = 10.0


def os_name() -> str:
    return {"darwin": "darwin", "linux": "linux"}.get(sys.platform, sys.platform)


def arch_name() -> str:
    m = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(m, m)


def managed_prefix() -> Path:
    """Where setup installs toolchains: the user data dir (``MOBILEBUILD_HOME``). Bazel goes to
    ``bazel/<version>/bin/bazel`` there, where mobilebuild.toolchain.bazel looks for it too."""
    return data_dir()


@dataclass
class Found:
    path: str | None
    version: str | None = None
    source: str = ""  # where it was found
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Finding:
    """One line of ``doctor`` (a check) or ``setup`` (a step): a tool, its state, the fix."""

    name: str
    status: str  # doctor: ok | warning | missing | skipped; setup: present | installed | missing | skipped
    detail: str
    fix: str | None = None
    path: str | None = None  # what setup records in mobilebuild.toml
    needed: bool = False  # doctor: the chosen target cannot do without it


# ---------------------------------------------------------------------------- shared probes
# doctor reports these findings as they are; setup starts from them and installs what is missing.


def probe_jdk() -> tuple[Finding, Found]:
    java = find_java()
    if java.path:
        return Finding("jdk", "ok", f"Java {java.version} ({java.path}, {java.source})", path=java.extra.get("java_home")), java
    cmd = jdk_install_command()
    fix = runner.format_argv(cmd) if cmd else "install a JDK (8 or newer) and set JAVA_HOME"
    return Finding("jdk", "missing", "no java found (JAVA_HOME, PATH)", fix), java


def probe_bazel(profile, config: dict, tf_src: Path | None) -> tuple[Finding, Found]:
    found = find_bazel(profile, config, tf_src)
    lo, hi = profile.get("bazel.min") or None, profile.get("bazel.max") or None  # "": no limit
    rng = f"{lo}..{hi}" if hi else f">= {lo}"
    want, why = found.extra["want"], found.extra["why"]
    if found.path:
        note = f" with USE_BAZEL_VERSION={want}" if found.extra.get("bazelisk") else ""
        detail = f"Bazel {found.version} at {found.path} ({found.source}{note}); TF {profile.version_text} needs {rng}, {want} wanted by {why}"
        return Finding("bazel", "ok", detail, path=found.path), found
    tried = "; ".join(found.extra.get("tried", [])) or "none found"
    detail = f"no Bazel in {rng} for TF {profile.version_text} ({want} wanted by {why}): {tried}"
    return Finding("bazel", "missing", detail, f"mobilebuild setup --tf-ref v{profile.version_text}"), found


def probe_xcode(profile) -> Finding:
    if sys.platform != "darwin":
        return Finding("xcode", "skipped", "not macOS (the iOS path needs a Mac)", "build the iOS app on a Mac with Xcode")
    x = find_xcode()
    if not x.path:
        return Finding("xcode", "missing", "Xcode / command-line tools not found", "install Xcode from the App Store, then: xcode-select --install")
    if min_x := xcode_too_old(x, profile):
        return Finding("xcode", "missing", f"Xcode {x.version} at {x.path}; the iOS example needs {min_x}+", "update Xcode")
    return Finding("xcode", "ok", f"Xcode {x.version or '?'} at {x.path}")


# ---------------------------------------------------------------------------- JDK


def find_java() -> Found:
    """JAVA_HOME's java, else java on PATH; version from ``java -version``."""
    candidates = []
    if os.environ.get("JAVA_HOME"):
        candidates.append((Path(os.environ["JAVA_HOME"]) / "bin" / "java", "JAVA_HOME"))
    on_path = runner.which("java")
    if on_path:
        candidates.append((Path(on_path), "PATH"))
    for exe, source in candidates:
        if not runner.is_executable(exe):
            continue
        try:
            res = runner.run([exe, "-version"], check=False, timeout=PROBE_TIMEOUT)
        except UserError:
            continue
        m = re.search(r'version "([^"]+)"', res.output)
        if m:
            home = Path(os.path.realpath(exe)).parent.parent
            return Found(str(exe), m.group(1), source, {"java_home": str(home), "major": java_major(m.group(1))})
    return Found(None)


def java_major(text: str) -> int:
    """'1.8.0_292' -> 8, '17.0.15' -> 17."""
    parts = re.findall(r"\d+", text)
    if not parts:
        return 0
    return int(parts[1]) if parts[0] == "1" and len(parts) > 1 else int(parts[0])


def jdk_install_command(major: int = 17) -> list[str] | None:
    """The exact command that installs a JDK on this OS (None when we know none)."""
    sudo = [] if os.name != "posix" or os.geteuid() == 0 else ["sudo"]
    if sys.platform == "darwin":
        return ["brew", "install", f"openjdk@{major}"]
    if runner.which("apt-get"):
        return [*sudo, "apt-get", "install", "-y", f"openjdk-{major}-jdk-headless"]
    if runner.which("dnf"):
        return [*sudo, "dnf", "install", "-y", f"java-{major}-openjdk-devel"]
    if runner.which("yum"):
        return [*sudo, "yum", "install", "-y", f"java-{major}-openjdk-devel"]
    return None


# ---------------------------------------------------------------------------- Bazel


def bazel_version_of(exe: str | os.PathLike, cwd: Path | None = None) -> str | None:
    """The version ``mobilebuild.toolchain.bazel.probe_version`` finds (``--version``, a managed install's
    VERSION file, the remembered ``--batch version`` of old releases); None when the binary
    reports none (Debian's bootstrap prints 'bazel no_version') or does not answer like Bazel."""

    try:
        version, _reported = probe_version(str(exe), cwd=cwd)
    except UserError:
        return None
    return version_str(version) if version else None


def version_in_range(version: str, lo: str | None, hi: str | None) -> bool:
    return versions.in_range(version, lo, hi)


def bazel_wanted(profile, tf_src: Path | None) -> tuple[str, str]:
    """(version, why): a tree's ``.bazelversion`` wins over the profile's recommendation."""

    text = bazelversion_file(tf_src)
    if text and re.match(r"^\d+\.\d+\.\d+", text):
        return text, str(Path(tf_src) / ".bazelversion")
    return profile.require("bazel.recommended"), f"the {profile.family} profile for TF {profile.version_text}"


def managed_bazel(version: str) -> Path:
    return managed_bazel_path(version)


# Found.source and the "tried" note for each kind of candidate of bazel.bazel_candidates.
_BAZEL_SOURCES = {
    "mobilebuild.toml": ("mobilebuild.toml", "from mobilebuild.toml"),
    "managed": ("managed prefix", "in the managed prefix"),
    "path": ("PATH", "on PATH"),
}


def find_bazel(profile, config: dict, tf_src: Path | None = None) -> Found:
    """The first usable Bazel in the build's own search order (``bazel.bazel_candidates``):
    mobilebuild.toml, bazelisk, managed install, bazel on PATH; one outside the profile's range
    is noted in ``extra['tried']`` and the search goes on."""

    want, why = bazel_wanted(profile, tf_src)
    lo, hi = profile.get("bazel.min") or None, profile.get("bazel.max") or None  # "": no limit
    tried: list[str] = []
    configured = bazel_search.configured_exe(config.get("bazel"))
    for exe, via in bazel_search.bazel_candidates(profile, tf_src, configured):
        if via == "bazelisk":
            if exe == configured:
                v = config.get("bazel_version") or want
                return Found(exe, v, "mobilebuild.toml (bazelisk)", {"bazelisk": True, "want": want, "why": why})
            return Found(exe, want, "PATH (bazelisk, USE_BAZEL_VERSION)", {"bazelisk": True, "want": want, "why": why})
        source, note = _BAZEL_SOURCES[via]
        v = bazel_version_of(exe, tf_src)
        if v and version_in_range(v, lo, hi):
            return Found(exe, v, source, {"want": want, "why": why})
        tried.append(f"{exe} ({v or 'unknown version'}, {note})")
    return Found(None, None, "", {"want": want, "why": why, "tried": tried, "range": (lo, hi)})


# ---------------------------------------------------------------------------- Xcode


def find_xcode() -> Found:
    if sys.platform != "darwin":
        return Found(None, None, "not macOS")
    try:
        sel = runner.run(["xcode-select", "-p"], check=False, timeout=PROBE_TIMEOUT)
        ver = runner.run(["xcodebuild", "-version"], check=False, timeout=PROBE_TIMEOUT)
    except UserError:
        return Found(None)
    m = re.search(r"Xcode\s+(\d+(?:\.\d+)*)", ver.stdout)
    if sel.returncode != 0:
        return Found(None)
    return Found(sel.stdout.strip(), m.group(1) if m else None, "xcode-select", {"xcodebuild": ver.returncode == 0})


def xcode_too_old(xcode: Found, profile) -> str | None:
    """The profile's minimum Xcode when the found one is older (None: new enough or unknown)."""
    min_x = profile.get("ios.min_xcode") if profile is not None else None
    if xcode.version and min_x and versions.older_than(xcode.version, min_x):
        return min_x
    return None

