"""What this machine has: JDK, Bazel, Android SDK/NDK, Xcode — found, identified, never changed.

``setup`` installs what these probes report missing; ``doctor`` prints them. Each probe says
where it found a tool (flag, mobilebuild.toml, environment, PATH, managed prefix, Debian's
/usr/lib/android-sdk) because "which SDK is it using?" is the first question of every
build failure. Probes run external programs only through the runner, with short timeouts.
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
from mobilebuild.versions import version_str

DEBIAN_SDK = Path("/usr/lib/android-sdk")
# Hashes sdkmanager writes into SDK/licenses/android-sdk-license once the licence is accepted.
KNOWN_LICENSE_HASHES = (
    "8933bad161af4178b1185d1a37fbf41ea5269c55",
    "d56f5187479451eabf01fb78af6dfcb131a6481e",
    "24333f8a63b6825ea9c5514f83c2829b004d1fee",
)
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


# ---------------------------------------------------------------------------- JDK


@dataclass
class Found:
    path: str | None
    version: str | None = None
    source: str = ""  # where it was found
    extra: dict[str, Any] = field(default_factory=dict)


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
    from mobilebuild.toolchain.bazel import probe_version

    try:
        version, _reported = probe_version(str(exe), cwd=cwd)
    except UserError:
        return None
    return version_str(version) if version else None


def version_in_range(version: str, lo: str | None, hi: str | None) -> bool:
    return versions.in_range(version, lo, hi)


def bazel_wanted(profile, tf_src: Path | None) -> tuple[str, str]:
    """(version, why): a tree's ``.bazelversion`` wins over the profile's recommendation."""
    from mobilebuild.toolchain.bazel import bazelversion_file

    text = bazelversion_file(tf_src)
    if text and re.match(r"^\d+\.\d+\.\d+", text):
        return text, str(Path(tf_src) / ".bazelversion")
    return profile.require("bazel.recommended"), f"the {profile.family} profile for TF {profile.version_text}"


def managed_bazel(version: str) -> Path:
    from mobilebuild.toolchain.bazel import managed_bazel_path  # one layout, shared with the build

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
    from mobilebuild.toolchain import bazel as bazel_search

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


# ---------------------------------------------------------------------------- Android SDK


def find_sdk(flag: str | None, config: dict) -> Found:
    """The first SDK dir that exists, in the search order the app commands use
    (``sdk.sdk_candidates``, so doctor, setup and android agree), then Debian's package; an
    explicit one (flag, environment, config) is returned even when it does not exist, so setup
    fills it."""
    from mobilebuild.toolchain import sdk as sdk_search

    candidates = sdk_search.sdk_candidates(flag, config)
    candidates.append(("Debian android-sdk package", DEBIAN_SDK, False))
    for source, path, explicit in candidates:
        if path.is_dir() or explicit:
            return Found(str(path), None, source)
    return Found(None)


def sdkmanager_in(sdk: Path) -> Path | None:
    for rel in ("cmdline-tools/latest/bin/sdkmanager", "tools/bin/sdkmanager"):
        if runner.is_executable(sdk / rel):
            return sdk / rel
    ct = sdk / "cmdline-tools"
    if ct.is_dir():
        for d in sorted(ct.iterdir(), key=lambda d: versions.sort_key(d.name), reverse=True):
            if runner.is_executable(d / "bin" / "sdkmanager"):
                return d / "bin" / "sdkmanager"
    return None


def sdk_packages(sdk: Path, api_level: int, build_tools: str) -> dict[str, bool]:
    """Which of the profile's packages this SDK has (the directories sdkmanager creates)."""
    return {
        f"platforms;android-{api_level}": (sdk / "platforms" / f"android-{api_level}" / "android.jar").is_file(),
        f"build-tools;{build_tools}": (sdk / "build-tools" / build_tools).is_dir()
        and any((sdk / "build-tools" / build_tools / t).exists() for t in ("aapt", "aapt2", "dx", "d8")),
        "platform-tools": (sdk / "platform-tools" / "adb").is_file(),
    }


def sdk_licenses_accepted(sdk: Path) -> bool:
    f = sdk / "licenses" / "android-sdk-license"
    try:
        lines = {line.strip() for line in f.read_text().splitlines()}
    except OSError:
        return False
    return any(h in lines for h in KNOWN_LICENSE_HASHES)


def installed_build_tools(sdk: Path) -> list[str]:
    from mobilebuild.toolchain import sdk as sdk_search  # sorted by version, not as text

    return sdk_search.installed_build_tools(sdk)


# ---------------------------------------------------------------------------- NDK


def ndk_revision(ndk: Path) -> str | None:
    """'12.1.2977051' from source.properties, or 'r10e' from RELEASE.TXT (r10 and older)."""
    props = ndk / "source.properties"
    if props.is_file():
        m = re.search(r"Pkg\.Revision\s*=\s*([\w.\-]+)", props.read_text(errors="replace"))
        if m:
            return m.group(1)
    rel = ndk / "RELEASE.TXT"
    if rel.is_file():
        m = re.match(r"\s*(r\d+[a-z]?)", rel.read_text(errors="replace"))
        if m:
            return m.group(1)
    return None


def ndk_major(revision: str) -> int | None:
    m = re.match(r"r?(\d+)", revision)
    return int(m.group(1)) if m else None


def ndk_letter_name(revision: str) -> str:
    """'12.1.2977051' -> 'r12b' (the minor number counts letters: .0 = none/a, .1 = b)."""
    if revision.startswith("r"):
        return revision
    parts = revision.split(".")
    try:
        major, minor = int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return revision
    return f"r{major}" + ("" if minor == 0 else chr(ord("a") + minor))


def find_ndk(flag: str | None, config: dict, sdk: Path | None, profile) -> Found:
    """The first NDK whose revision the profile accepts; else what was seen, for the report."""
    lo, hi = profile.get("ndk.min_major"), profile.get("ndk.max_major")
    rec = profile.require("ndk.recommended")
    seen = []
    from mobilebuild.toolchain import sdk as sdk_search  # the search order the app commands use

    for source, path, _explicit in sdk_search.ndk_candidates(flag, sdk, config, rec):
        if not path.is_dir():
            continue
        rev = ndk_revision(path)
        major = ndk_major(rev) if rev else None
        if major is not None and (lo is None or major >= lo) and (hi is None or major <= hi):
            return Found(str(path), rev, source, {"name": ndk_letter_name(rev)})
        seen.append(f"{path} ({ndk_letter_name(rev) if rev else 'no revision'}, {source})")
    return Found(None, None, "", {"seen": seen, "range": (lo, hi), "recommended": rec})


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

