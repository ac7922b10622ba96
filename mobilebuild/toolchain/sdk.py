"""The Android SDK and NDK on this machine: where they are and what they contain.

This module alone knows where SDKs and NDKs are and how to read them; the app commands
(workspace, android, devices) and the machine commands (doctor, setup) all ask it, so they accept
and refuse the same ones.

SDK search order: ``--sdk``, ``ANDROID_HOME``, ``ANDROID_SDK_ROOT``, mobilebuild.toml,
``~/Library/Android/sdk``, ``~/Android/Sdk``, the managed prefix (where ``setup`` installs),
Debian's ``/usr/lib/android-sdk``. NDK: ``--ndk``, ``ANDROID_NDK_HOME``, mobilebuild.toml,
``SDK/ndk-bundle``, ``SDK/ndk/<version>`` (highest first), the managed prefix's
``android-ndk-<recommended>``. An explicitly named location (flag, environment, mobilebuild.toml)
is used or refused, never silently skipped: the user meant it. A place searched by default is
skipped when it cannot be used (an SDK without platforms or build-tools, an NDK of a revision the
TensorFlow version does not build with), and named in the "tried" list of the refusal.

The NDK *revision* (r12b, ``Pkg.Revision = 12.1.2977051``) is not the NDK *api_level* (14): the
checks name both so users stop confusing them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from mobilebuild import versions
from mobilebuild.config import load_config
from mobilebuild.errors import ToolchainError
from mobilebuild.paths import data_dir
from mobilebuild.runner import is_executable


@dataclass
class SdkInfo:
    path: Path
    api_level: int
    build_tools: str
    adb: Path | None
    platforms: list[int] = field(default_factory=list)
    build_tools_versions: list[str] = field(default_factory=list)
    source: str = ""  # where the path came from (--sdk, ANDROID_HOME, ...)

    def as_dict(self) -> dict:
        return {
            "path": str(self.path),
            "api_level": self.api_level,
            "build_tools": self.build_tools,
            "adb": str(self.adb) if self.adb else None,
            "source": self.source,
        }


@dataclass
class NdkInfo:
    path: Path
    major: int
    minor: int
    pkg_revision: str  # "12.1.2977051", or "" for RELEASE.TXT-era NDKs
    source: str = ""

    @property
    def revision(self) -> str:
        """The release name users know: r12b, r10e, r21 (minor 0 has no letter)."""
        letter = chr(ord("a") + self.minor) if self.minor else ""
        return f"r{self.major}{letter}"

    def describe(self) -> str:
        return f"{self.revision} (Pkg.Revision {self.pkg_revision})" if self.pkg_revision else self.revision

    def as_dict(self) -> dict:
        return {"path": str(self.path), "revision": self.revision, "pkg_revision": self.pkg_revision, "source": self.source}


# ---- locating -----------------------------------------------------------------------------------
# One search order for every command: the app flows raise on what they cannot use, while setup
# and doctor (machine.py) can walk the same candidates to report what they saw.

Candidate = tuple[str, Path, bool]  # (source, path, explicit): an explicit one must exist


def _config_value(key: str, config: dict | None) -> str | None:
    """``sdk``/``ndk`` from ``config`` (else the project's mobilebuild.toml), None when unset."""
    if config is None:
        config = load_config()
    value = config.get(key)
    return str(value) if value else None


def _managed(name: str) -> Path:
    """Where ``mobilebuild setup`` installs the SDK/NDK (the user data dir)."""

    return data_dir() / name


DEBIAN_SDK = Path("/usr/lib/android-sdk")
DEBIAN_SOURCE = "Debian android-sdk package"
# Hashes sdkmanager writes into SDK/licenses/android-sdk-license once the licence is accepted.
KNOWN_LICENSE_HASHES = (
    "8933bad161af4178b1185d1a37fbf41ea5269c55",
    "d56f5187479451eabf01fb78af6dfcb131a6481e",
    "24333f8a63b6825ea9c5514f83c2829b004d1fee",
)


def sdk_candidates(flag: str | None = None, config: dict | None = None) -> list[Candidate]:
    """Where an SDK may be, in search order (``config``: mobilebuild.toml's settings, read when None)."""
    out: list[Candidate] = []
    if flag:
        out.append(("--sdk", Path(flag).expanduser(), True))
    for var in ("ANDROID_HOME", "ANDROID_SDK_ROOT"):
        if os.environ.get(var):
            out.append((var, Path(os.environ[var]).expanduser(), True))
    cfg = _config_value("sdk", config)
    if cfg:
        out.append(("mobilebuild.toml", Path(cfg).expanduser(), True))
    home = Path.home()
    out.append(("~/Library/Android/sdk", home / "Library" / "Android" / "sdk", False))
    out.append(("~/Android/Sdk", home / "Android" / "Sdk", False))
    out.append(("managed prefix", _managed("android-sdk"), False))
    out.append((DEBIAN_SOURCE, DEBIAN_SDK, False))
    return out


def _sdk_lacks(path: Path) -> str | None:
    """Why an SDK found by default cannot build the demo (None: it can)."""
    if not installed_platforms(path):
        return "no platforms"
    if not installed_build_tools(path):
        return "no build-tools"
    return None


def find_sdk(flag: str | None = None, config: dict | None = None) -> tuple[Path, str]:
    """The SDK directory and where it came from, or ToolchainError naming every place tried."""
    tried = []
    for source, path, explicit in sdk_candidates(flag, config):
        if explicit:
            if path.is_dir():
                return path.resolve(), source
            raise ToolchainError(
                f"Android SDK not found: {path} (from {source}) is not a directory",
                "pass --sdk with the SDK's directory (the one holding platforms/ and build-tools/), "
                "or install one with `mobilebuild setup --accept-licenses`",
            )
        if not path.is_dir():
            tried.append(source)
            continue
        lacks = _sdk_lacks(path)
        if lacks is None:
            return path.resolve(), source
        tried.append(f"{path} ({lacks})")
    raise ToolchainError(
        f"no Android SDK found (tried {', '.join(['--sdk', 'ANDROID_HOME', 'ANDROID_SDK_ROOT', 'mobilebuild.toml', *tried])})",
        "pass --sdk DIR or set ANDROID_HOME, or install one with `mobilebuild setup --accept-licenses`",
    )


def install_target(flag: str | None = None, config: dict | None = None) -> tuple[Path, str]:
    """Where ``setup`` completes or installs an SDK: the one named (flag, environment,
    mobilebuild.toml) even when it does not exist yet, else the first SDK directory found by
    default, else the managed prefix. Debian's belongs to the package manager: never filled."""
    for source, path, explicit in sdk_candidates(flag, config):
        if explicit or (path.is_dir() and source != DEBIAN_SOURCE):
            return path, source
    return _managed("android-sdk"), "managed prefix"


def sdkmanager_in(sdk: Path) -> Path | None:
    for rel in ("cmdline-tools/latest/bin/sdkmanager", "tools/bin/sdkmanager"):
        if is_executable(sdk / rel):
            return sdk / rel
    ct = sdk / "cmdline-tools"
    if ct.is_dir():
        for d in sorted(ct.iterdir(), key=lambda d: versions.sort_key(d.name), reverse=True):
            if is_executable(d / "bin" / "sdkmanager"):
                return d / "bin" / "sdkmanager"
    return None


def sdk_packages(sdk: Path, api_level: int, build_tools: str) -> dict[str, bool]:
    """Which of the profile's packages this SDK has, read as ``inspect_sdk`` reads them (the
    directories sdkmanager creates), so doctor and setup judge an SDK as the build does."""
    return {
        f"platforms;android-{api_level}": int(api_level) in installed_platforms(sdk),
        f"build-tools;{build_tools}": build_tools in installed_build_tools(sdk),
        "platform-tools": (sdk / "platform-tools" / "adb").is_file(),
    }


def sdk_licenses_accepted(sdk: Path) -> bool:
    f = sdk / "licenses" / "android-sdk-license"
    try:
        lines = {line.strip() for line in f.read_text().splitlines()}
    except OSError:
        return False
    return any(h in lines for h in KNOWN_LICENSE_HASHES)


def ndk_candidates(flag: str | None = None, sdk_path: Path | None = None, config: dict | None = None,
                   recommended: str | None = None) -> list[Candidate]:
    """Where an NDK may be, in search order; ``recommended`` (r12b) names the managed install."""
    out: list[Candidate] = []
    if flag:
        out.append(("--ndk", Path(flag).expanduser(), True))
    if os.environ.get("ANDROID_NDK_HOME"):
        out.append(("ANDROID_NDK_HOME", Path(os.environ["ANDROID_NDK_HOME"]).expanduser(), True))
    cfg = _config_value("ndk", config)
    if cfg:
        out.append(("mobilebuild.toml", Path(cfg).expanduser(), True))
    if sdk_path is not None:
        out.append(("SDK/ndk-bundle", sdk_path / "ndk-bundle", False))
        side = sdk_path / "ndk"
        if side.is_dir():
            newest_first = sorted(
                (d for d in side.iterdir() if d.is_dir() and re.match(r"^\d+(\.\d+)*$", d.name)),
                key=lambda d: versions.sort_key(d.name),
                reverse=True,
            )
            out.extend((f"SDK/ndk/{d.name}", d, False) for d in newest_first)
    if recommended:
        out.append(("managed prefix", _managed(f"android-ndk-{recommended}"), False))
    return out


# The fix for an explicitly named NDK location that is not a directory, by where it was named.
_NDK_MISSING_FIX = {
    "--ndk": ("--ndk", "pass --ndk with the NDK's directory (the one holding source.properties)"),
    "ANDROID_NDK_HOME": ("ANDROID_NDK_HOME", "fix ANDROID_NDK_HOME or pass --ndk DIR"),
    "mobilebuild.toml": ("ndk in mobilebuild.toml", "fix ndk in mobilebuild.toml or pass --ndk DIR"),
}


def find_ndk(flag: str | None = None, sdk_path: Path | None = None, config: dict | None = None,
             recommended: str | None = None) -> tuple[Path, str] | None:
    """The NDK directory and its source, None when none is found anywhere."""
    for source, path, explicit in ndk_candidates(flag, sdk_path, config, recommended):
        if path.is_dir():
            return path.resolve(), source
        if not explicit:
            continue
        if source == "--ndk" and re.fullmatch(r"r?\d+[a-z]?", flag.strip()):  # type: ignore[union-attr]
            raise ToolchainError(
                f"--ndk {flag} looks like an NDK revision, not a directory",
                "pass the directory where the NDK is unpacked (e.g. --ndk ~/android-ndk-r12b)",
            )
        named, fix = _NDK_MISSING_FIX[source]
        raise ToolchainError(f"Android NDK not found: {path} (from {named}) is not a directory", fix)
    return None


def select_ndk(flag: str | None, sdk_path: Path | None, config: dict | None, profile) -> tuple[NdkInfo | None, list[str]]:
    """(the NDK to build ``profile``'s TensorFlow with, what else was seen). A named NDK
    (flag, ANDROID_NDK_HOME, mobilebuild.toml) of a revision outside the profile's range is
    refused (ToolchainError); one found by default is skipped and listed as seen."""
    lo, hi = int(profile.require("ndk.min_major")), int(profile.require("ndk.max_major"))
    seen: list[str] = []
    for source, path, explicit in ndk_candidates(flag, sdk_path, config, profile.get("ndk.recommended")):
        if not path.is_dir():
            if explicit:
                find_ndk(flag, sdk_path, config)  # raises the refusal for a named place
            continue
        try:
            ndk = ndk_revision(path.resolve(), source)
        except ToolchainError:
            if explicit:
                raise
            seen.append(f"{path} (no revision, {source})")
            continue
        if lo <= ndk.major <= hi:
            return ndk, seen
        if explicit:
            check_ndk_range(ndk, profile)
        seen.append(f"{path} ({ndk.revision}, {source})")
    return None, seen


def no_ndk_error(profile, sdk_path: Path | None, seen: list[str]) -> ToolchainError:
    """The refusal when ``select_ndk`` found none: what was wanted, where it looked, what it saw."""
    also = f"; seen: {'; '.join(seen)}" if seen else ""
    return ToolchainError(
        f"no Android NDK found for TensorFlow {profile.version_text} (r{profile.require('ndk.min_major')} - "
        f"r{profile.require('ndk.max_major')}; tried {ndk_search_text(sdk_path)}){also}",
        f"the demo compiles TensorFlow's C++ with the NDK: install {profile.get('ndk.recommended')} "
        f"(`mobilebuild setup --tf-ref v{profile.version_text}`) and pass --ndk DIR",
    )


def ndk_search_text(sdk_path: Path | None) -> str:
    """The NDK search order as users read it in a refusal ("tried ...")."""
    places = ["--ndk", "ANDROID_NDK_HOME", "mobilebuild.toml"]
    if sdk_path is not None:
        places += ["SDK/ndk-bundle", "SDK/ndk/<version>"]
    return ", ".join(places + ["the managed prefix"])


def parse_ndk_name(name: str) -> tuple[int, int]:
    """'r12b' -> (12, 1), 'r21' -> (21, 0): the release name as (major, minor)."""
    m = re.fullmatch(r"r?(\d+)([a-z]?)", name.strip())
    if not m:
        raise ToolchainError(f"not an NDK release name: {name!r}", "NDK releases are named like r12b or r21")
    return int(m.group(1)), (ord(m.group(2)) - ord("a") if m.group(2) else 0)


# ---- inspecting ---------------------------------------------------------------------------------


def installed_platforms(sdk: Path) -> list[int]:
    d = sdk / "platforms"
    if not d.is_dir():
        return []
    out = []
    for child in d.iterdir():
        m = re.fullmatch(r"android-(\d+)", child.name)
        if m and child.is_dir():
            out.append(int(m.group(1)))
    return sorted(out)


def installed_build_tools(sdk: Path) -> list[str]:
    d = sdk / "build-tools"
    if not d.is_dir():
        return []
    found = [c.name for c in d.iterdir() if c.is_dir() and re.fullmatch(r"\d+\.\d+\.\d+(-rc\d+)?", c.name)]
    return sorted(found, key=versions.sort_key)


def inspect_sdk(
    sdk: Path,
    *,
    api_level: int | None = None,
    build_tools: str | None = None,
    profile_api_level: int | None = None,
    profile_build_tools: str | None = None,
    source: str = "",
) -> SdkInfo:
    """Pick the api level and build-tools to use: the one asked for (must be installed), else
    the profile's when installed, else the highest installed."""
    platforms = installed_platforms(sdk)
    if not platforms:
        raise ToolchainError(
            f"the Android SDK at {sdk} has no platforms installed (no platforms/android-N)",
            f"install one: sdkmanager \"platforms;android-{profile_api_level or 'N'}\" "
            "(or `mobilebuild setup --accept-licenses`), or point --sdk at another SDK",
        )
    if api_level is not None:
        if api_level not in platforms:
            raise ToolchainError(
                f"Android platform android-{api_level} is not installed in {sdk} "
                f"(installed: {', '.join(f'android-{p}' for p in platforms)})",
                f"install it with sdkmanager \"platforms;android-{api_level}\" or pass --api-level "
                f"{platforms[-1]}",
            )
        chosen_api = api_level
    elif profile_api_level in platforms:
        chosen_api = int(profile_api_level)  # type: ignore[arg-type]
    else:
        chosen_api = platforms[-1]

    tools = installed_build_tools(sdk)
    if not tools:
        raise ToolchainError(
            f"the Android SDK at {sdk} has no build-tools installed (no build-tools/X.Y.Z)",
            f"install them: sdkmanager \"build-tools;{profile_build_tools or 'X.Y.Z'}\" "
            "(or `mobilebuild setup --accept-licenses`)",
        )
    if build_tools is not None:
        if build_tools not in tools:
            raise ToolchainError(
                f"Android build-tools {build_tools} are not installed in {sdk} (installed: {', '.join(tools)})",
                f"install them with sdkmanager \"build-tools;{build_tools}\" or pass --build-tools {tools[-1]}",
            )
        chosen_tools = build_tools
    elif profile_build_tools in tools:
        chosen_tools = str(profile_build_tools)
    else:
        chosen_tools = tools[-1]

    adb = sdk / "platform-tools" / ("adb.exe" if os.name == "nt" else "adb")
    return SdkInfo(
        path=sdk,
        api_level=chosen_api,
        build_tools=chosen_tools,
        adb=adb if adb.is_file() else None,
        platforms=platforms,
        build_tools_versions=tools,
        source=source,
    )


def ndk_revision(ndk: Path, source: str = "") -> NdkInfo:
    """Read the revision from ``source.properties`` (r11+) or ``RELEASE.TXT`` (r10 and older)."""
    props = ndk / "source.properties"
    if props.is_file():
        text = props.read_text(encoding="utf-8", errors="replace")
        m = re.search(r"^\s*Pkg\.Revision\s*=\s*(\d+)\.(\d+)(?:\.(\d+))?", text, re.M)
        if not m:
            raise ToolchainError(
                f"{props} has no Pkg.Revision line",
                "the NDK looks damaged: unpack it again or pass another --ndk",
            )
        pkg = ".".join(g for g in m.groups() if g is not None)
        return NdkInfo(ndk, int(m.group(1)), int(m.group(2)), pkg, source)
    release = ndk / "RELEASE.TXT"
    if release.is_file():
        text = release.read_text(encoding="utf-8", errors="replace").strip()
        m = re.match(r"r(\d+)([a-z]?)", text)
        if not m:
            raise ToolchainError(
                f"{release} does not start with an NDK revision like r10e: {text[:40]!r}",
                "the NDK looks damaged: unpack it again or pass another --ndk",
            )
        minor = ord(m.group(2)) - ord("a") if m.group(2) else 0
        return NdkInfo(ndk, int(m.group(1)), minor, "", source)
    raise ToolchainError(
        f"{ndk} is not an Android NDK: it has neither source.properties nor RELEASE.TXT",
        "pass --ndk with the directory the NDK zip unpacks to (e.g. android-ndk-r12b/)",
    )


def check_ndk_range(ndk: NdkInfo, profile) -> None:
    """Refuse an NDK revision outside the profile's accepted range."""
    lo, hi = int(profile.require("ndk.min_major")), int(profile.require("ndk.max_major"))
    if lo <= ndk.major <= hi:
        return
    recommended = profile.require("ndk.recommended")
    raise ToolchainError(
        f"Android NDK {ndk.describe()} at {ndk.path} is outside what TensorFlow {profile.version_text} builds with "
        f"(r{lo} - r{hi}; recommended {recommended}, Pkg.Revision {profile.get('ndk.recommended_pkg_revision', '?')})",
        f"install NDK {recommended} and pass --ndk DIR. The NDK revision ({recommended}) is not the "
        f"api_level ({profile.require('ndk.api_level')}, set with --ndk-api-level)",
    )
