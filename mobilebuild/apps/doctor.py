"""``mobilebuild doctor``: one line per check (ok / warning / missing) with the fix command.

Reads only: versions from package metadata (TensorFlow is never imported), tools through the
runner with short timeouts, the SDK/NDK layout on disk. ``ok`` is true only when every check
the chosen target needs is ok or a warning.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from mobilebuild import config as configmod
from mobilebuild import console, runner
from mobilebuild.choices import DOCTOR_TARGETS
from mobilebuild.errors import ToolchainError, UserError
from mobilebuild.net.downloads import cache_size, downloads_root
from mobilebuild.paths import cache_dir
from mobilebuild.tf.tree import resolve
from mobilebuild.toolchain import machine
from mobilebuild.toolchain import sdk as sdkmod
from mobilebuild.toolchain.adb import find_adb, parse_devices
from mobilebuild.toolchain.machine import Finding

TARGETS = DOCTOR_TARGETS
PACKAGES = ("typer", "rich", "requests", "jinja2", "GitPython", "numpy", "pillow", "tensorflow", "ai-edge-litert")
# Which checks each target cannot do without (the others are informational there).
NEEDED = {
    "android": {"tf-version", "python", "packages", "jdk", "bazel", "android-sdk", "sdk-platform", "sdk-build-tools", "sdk-platform-tools", "android-ndk", "disk"},
    "ios": {"python", "packages", "xcode", "make", "disk"},  # the iOS libraries build with make
    "pi": {"python", "packages", "make", "disk"},
    "model": {"python", "packages"},
}
ADB_TIMEOUT = 5.0
FREE_WARN = 10 * 1024**3
FREE_MISSING = 2 * 1024**3


# One finding type for doctor and setup (machine.Finding); doctor calls its findings checks.
Check = Finding


@dataclass
class DoctorReport:
    target: str
    tf_version: str | None
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(c.status in ("ok", "warning", "skipped") for c in self.checks if c.needed)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "target": self.target, "tf_version": self.tf_version, "checks": [asdict(c) for c in self.checks]}


def _check_python(checks: list[Check]) -> None:
    v = sys.version_info
    status = "ok" if v >= (3, 10) else "missing"
    checks.append(Check("python", status, f"Python {v.major}.{v.minor}.{v.micro} ({sys.executable})", None if status == "ok" else "install Python 3.10 or newer"))
    versions, missing = [], []
    for pkg in PACKAGES:
        try:
            versions.append(f"{pkg} {metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            missing.append(pkg)
    core_missing = [p for p in missing if p not in ("tensorflow", "ai-edge-litert")]
    status = "missing" if core_missing else ("warning" if missing else "ok")
    detail = ", ".join(versions) + (f"; not installed: {', '.join(missing)}" if missing else "")
    checks.append(Check("packages", status, detail, f"{sys.executable} -m pip install {' '.join(missing)}" if missing else None))


def _check_tool(checks: list[Check], name: str, argv: list[str], pattern: str, fix: str) -> None:
    exe = runner.which(argv[0])
    if not exe:
        checks.append(Check(name, "missing", f"{argv[0]} not on PATH", fix))
        return
    try:
        res = runner.run([exe, *argv[1:]], check=False, timeout=machine.PROBE_TIMEOUT)
        m = re.search(pattern, res.output)
        checks.append(Check(name, "ok", f"{m.group(0) if m else res.output.strip()[:60]} ({exe})"))
    except UserError as exc:
        checks.append(Check(name, "warning", f"{exe} does not answer: {exc.message}", fix))


def _check_jdk(checks: list[Check]) -> None:
    checks.append(machine.probe_jdk()[0])


def _check_bazel(checks: list[Check], profile, conf: dict, tree: Path | None) -> None:
    if profile is None:
        exe = runner.which("bazelisk") or runner.which("bazel")
        checks.append(Check("bazel", "warning" if exe else "missing", f"{exe or 'no bazel on PATH'} (no TF version chosen: pass --tf-ref to check the range)", "mobilebuild setup --tf-ref vX.Y.Z"))
        return
    checks.append(machine.probe_bazel(profile, conf, tree)[0])


def _check_sdk(checks: list[Check], profile, conf: dict, sdk_flag: str | None) -> Path | None:
    # The SDK the app commands would use, or their refusal (one search: toolchain.sdk).
    try:
        sdk, source = sdkmod.find_sdk(sdk_flag, conf)
    except ToolchainError as exc:
        checks.append(Check("android-sdk", "missing", exc.message, exc.hint))
        return None
    if profile is None:
        checks.append(Check("android-sdk", "ok", f"{sdk} (found via {source})", path=str(sdk)))
        return sdk
    api, bt = profile.require("sdk.api_level"), profile.require("sdk.build_tools")
    try:  # what the app commands refuse in it (no platform, no build-tools at all)
        sdkmod.inspect_sdk(sdk, profile_api_level=api, profile_build_tools=bt, source=source)
        checks.append(Check("android-sdk", "ok", f"{sdk} (found via {source})", path=str(sdk)))
    except ToolchainError as exc:
        checks.append(Check("android-sdk", "missing", f"{sdk} (found via {source}): {exc.message}", exc.hint, path=str(sdk)))
    have = sdkmod.sdk_packages(sdk, api, bt)
    sdkmgr = sdkmod.sdkmanager_in(sdk)
    cmd = f"{sdkmgr} --sdk_root={sdk}" if sdkmgr else None

    def fix(arg: str) -> str:
        # Without sdkmanager in this SDK, setup installs the command-line tools first.
        # Debian's SDK belongs to the package manager: setup then fills its own prefix.
        where = "" if source == sdkmod.DEBIAN_SOURCE else f" --sdk {sdk}"
        return f"{cmd} {arg}" if cmd else f"mobilebuild setup{where} --accept-licenses --tf-ref v{profile.version_text}"

    plat = f"platforms;android-{api}"
    checks.append(Check("sdk-platform", "ok" if have[plat] else "missing", f"{plat} {'installed' if have[plat] else 'not installed'}", None if have[plat] else fix(f'"{plat}"')))
    btk = f"build-tools;{bt}"
    others = [v for v in sdkmod.installed_build_tools(sdk) if v != bt]
    detail = f"{btk} {'installed' if have[btk] else 'not installed'}" + (f" (also: {', '.join(others)})" if others else "")
    checks.append(Check("sdk-build-tools", "ok" if have[btk] else "missing", detail, None if have[btk] else fix(f'"{btk}"')))
    pt = have["platform-tools"]
    checks.append(Check("sdk-platform-tools", "ok" if pt else "missing", f"platform-tools {'installed' if pt else 'not installed'}", None if pt else fix('"platform-tools"')))
    lic = sdkmod.sdk_licenses_accepted(sdk)
    checks.append(Check("sdk-licenses", "ok" if lic else "warning", "Android SDK licence accepted" if lic else f"no accepted licence in {sdk / 'licenses'}", None if lic else fix("--licenses")))
    return sdk


def _check_ndk(checks: list[Check], profile, conf: dict, sdk: Path | None, ndk_flag: str | None) -> None:
    if profile is None:
        checks.append(Check("android-ndk", "skipped", "no TF version chosen (pass --tf-ref) to know which NDK", "mobilebuild doctor --tf-ref v1.4.0"))
        return
    rec = profile.require("ndk.recommended")
    setup_fix = f"mobilebuild setup --tf-ref v{profile.version_text}"
    try:
        ndk, seen = sdkmod.select_ndk(ndk_flag, sdk, conf, profile)  # the NDK the app commands would use
    except ToolchainError as exc:
        checks.append(Check("android-ndk", "missing", exc.message, f"{exc.hint} (or without --ndk: {setup_fix} installs {rec})"))
        return
    if ndk is not None:
        status = "ok" if ndk.revision == rec else "warning"
        note = "" if status == "ok" else f" (accepted; {rec} is recommended)"
        checks.append(Check("android-ndk", status, f"NDK {ndk.revision} ({ndk.pkg_revision or ndk.revision}) at {ndk.path} ({ndk.source}){note}; api_level {profile.get('ndk.api_level')}", path=str(ndk.path)))
    else:
        checks.append(Check("android-ndk", "missing", sdkmod.no_ndk_error(profile, sdk, seen).message, setup_fix))


def android_checks(checks: list[Check], profile, conf: dict, sdk_flag: str | None, ndk_flag: str | None) -> Path | None:
    """The SDK and NDK checks (the SDK's path, None when there is none): the same SDK and NDK the
    app commands would use, or the same refusal, and the profile's packages in that SDK."""
    sdk = _check_sdk(checks, profile, conf, sdk_flag)
    _check_ndk(checks, profile, conf, sdk, ndk_flag)
    return sdk


def _check_xcode(checks: list[Check], profile) -> None:
    checks.append(machine.probe_xcode(profile))


def _check_adb(checks: list[Check], sdk: Path | None) -> None:
    try:
        adb = find_adb(sdk)
    except ToolchainError:
        checks.append(Check("adb", "missing", "adb not found (SDK platform-tools, PATH)", "install platform-tools (mobilebuild setup) or: apt-get install adb"))
        return
    try:
        res = runner.run([adb, "devices", "-l"], check=True, timeout=ADB_TIMEOUT)
    except UserError as exc:
        checks.append(Check("adb", "warning", f"{adb}: adb server did not answer ({exc.message})", f"{adb} kill-server && {adb} start-server"))
        return
    devices = parse_devices(res.stdout)
    if not devices:
        checks.append(Check("adb", "warning", f"{adb}: no device connected", "connect a phone with USB debugging on (or start an emulator)"))
        return
    desc = ", ".join(f"{d.serial} ({d.state}{', ' + d.model if d.model else ''})" for d in devices)
    bad = [d for d in devices if not d.ready]
    fix = None
    if bad:
        states = {d.state for d in bad}
        fix = "accept the USB debugging prompt on the phone" if "unauthorized" in states else "reconnect the device / adb reconnect"
    checks.append(Check("adb", "warning" if bad else "ok", f"{adb}: {desc}", fix))


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest existing parent: where a directory made later would live."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_cache(checks: list[Check]) -> None:
    root = downloads_root()
    probe = _nearest_existing(root)
    if not (probe.is_dir() and os.access(probe, os.W_OK)):
        checks.append(Check("cache", "warning", f"{root}: not writable (nothing can be downloaded)", "set MOBILEBUILD_CACHE to a writable directory"))
        return
    n, size, partial = cache_size()
    unfinished = f"; {console.size(partial)} of unfinished downloads" if partial else ""
    checks.append(Check("cache", "ok", f"{root} ({n} files, {console.size(size)}{unfinished})"))


def _check_network(checks: list[Check], conf: dict) -> None:
    mirrors = conf.get("mirrors") or []
    proxies = {k: v for k in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy") if (v := os.environ.get(k))}
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    parts = [f"mirrors: {', '.join(mirrors) if mirrors else 'none'}", f"proxy: {', '.join(f'{k}={_redact(v)}' for k, v in proxies.items()) if proxies else 'none'}"]
    if netrc.is_file():
        parts.append(f"netrc: {netrc}")
    checks.append(Check("network", "ok", "; ".join(parts)))


def _redact(url: str) -> str:
    return re.sub(r"//[^/@]*@", "//***@", url)


def _check_disk(checks: list[Check]) -> None:
    probe = _nearest_existing(cache_dir())
    free = shutil.disk_usage(probe).free
    status = "ok" if free >= FREE_WARN else ("warning" if free >= FREE_MISSING else "missing")
    checks.append(Check("disk", status, f"{console.size(free)} free at {probe}", None if status == "ok" else "free some space: a TF build needs ~10 GB"))


def run_doctor(*, target: str = "android", tf_ref: str | None = None, tf_src: str | None = None, sdk: str | None = None,
               ndk: str | None = None, conf: dict | None = None) -> DoctorReport:
    """Every check; ``conf``: mobilebuild.toml's settings (read when None)."""
    if target not in TARGETS:
        raise UserError(f"unknown target {target!r}", f"use one of: {', '.join(TARGETS)}")
    conf = configmod.load_config() if conf is None else conf
    why_none = "no TF version chosen (no --tf-ref/--tf-src, no mobilebuild.toml)"
    try:
        found = resolve(tf_ref=tf_ref, tf_src=tf_src, conf=conf, need_tree=False)
        profile, tree, how = found.profile, found.root, found.how
    except UserError as exc:
        if tf_ref or tf_src:
            raise
        profile, tree = None, None
        if conf.get("tf_src") or conf.get("tf_ref"):
            why_none = f"{conf.get('config_path')}: {exc.message}"
    checks: list[Check] = []
    if profile is not None:
        checks.append(Check("tf-version", "ok", f"TensorFlow {profile.version_text} ({profile.family}): {how}"))
    else:
        checks.append(Check("tf-version", "missing", why_none, "mobilebuild doctor --tf-ref v1.4.0  (or run mobilebuild setup)"))
    _check_python(checks)
    _check_tool(checks, "git", ["git", "--version"], r"git version \S+", "apt-get install git  (macOS: xcode-select --install)")
    _check_jdk(checks)
    _check_bazel(checks, profile, conf, tree)
    sdk_path = android_checks(checks, profile, conf, sdk, ndk)
    _check_xcode(checks, profile)
    _check_tool(checks, "make", ["make", "--version"], r"GNU Make \S+", "apt-get install make")
    _check_adb(checks, sdk_path)
    _check_cache(checks)
    _check_network(checks, conf)
    _check_disk(checks)
    for c in checks:
        c.needed = c.name in NEEDED[target]
        if c.needed and c.status == "skipped":
            # A check the target needs but that cannot be done here (Xcode off macOS, an
            # NDK without a TF version) is not met.
            c.status = "missing"
    return DoctorReport(target, profile.version_text if profile else None, checks)
