"""``mobilebuild setup``: make this machine ready for one TensorFlow version, installing only
what is missing.

Steps, each reported as present / installed / missing (with the exact fix) / skipped:
JDK (detected; installed with the OS package manager only with ``--yes``), Bazel at the
version the profile or the tree's ``.bazelversion`` asks for (bazelisk, then a bazel on PATH
in range, then the pinned release from ``toolchains/pins.toml`` verified by its digest),
the Android SDK (command-line tools if needed, then ``sdkmanager`` for the profile's
platform / build-tools / platform-tools; licences only with consent), the NDK at the
recommended revision unless an accepted one exists, Xcode on macOS. The resulting paths go to
``mobilebuild.toml``. Installs land under the managed prefix (``machine.managed_prefix()``).
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from mobilebuild import config as configmod
from mobilebuild import console, runner
from mobilebuild.errors import CommandError, ToolchainError, UserError
from mobilebuild.net.downloads import Artifact, fetch
from mobilebuild.paths import TOOLCHAINS_DIR
from mobilebuild.tf.tree import resolve
from mobilebuild.toolchain import machine
from mobilebuild.toolchain import sdk as sdkmod
from mobilebuild.toolchain.machine import Finding

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from mobilebuild.net.archives import extract

PINS_ENV = "MOBILEBUILD_PINS"
# The string keys each kind of pin must have (the steps read them).
PIN_KEYS = {"bazel": ("version", "os", "url"), "ndk": ("revision", "os", "url"), "sdk_tools": ("file", "os", "url", "layout")}


# One finding type for doctor and setup (machine.Finding); setup calls its findings steps.
Step = Finding


def _present(finding: Finding) -> Finding:
    """A shared probe's finding in setup's words: what doctor calls ok is present here."""
    if finding.status == "ok":
        finding.status = "present"
    return finding


@dataclass
class SetupReport:
    tf_version: str
    profile_source: str
    prefix: str
    steps: list[Step] = field(default_factory=list)
    config_path: str | None = None
    config_written: bool = False

    @property
    def changed(self) -> bool:
        return self.config_written or any(s.status == "installed" for s in self.steps)

    @property
    def missing(self) -> list[Step]:
        return [s for s in self.steps if s.status == "missing"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "tf_version": self.tf_version,
            "profile_source": self.profile_source,
            "prefix": self.prefix,
            "changed": self.changed,
            "config_path": self.config_path,
            "config_written": self.config_written,
            "steps": [asdict(s) for s in self.steps],
        }


# ---------------------------------------------------------------------------- pins


def load_pins(pins_file: str | os.PathLike | None = None) -> dict[str, Any]:
    """toolchains/pins.toml, or the file named by ``--pins`` / ``MOBILEBUILD_PINS``."""
    path = Path(pins_file or os.environ.get(PINS_ENV) or TOOLCHAINS_DIR / "pins.toml")
    try:
        with open(path, "rb") as f:
            pins = tomllib.load(f)
    except FileNotFoundError as exc:
        raise UserError(f"pins file not found: {path}", f"fix --pins / {PINS_ENV}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"pins file {path} is not valid TOML: {exc}", "fix the line named above") from exc
    for table, keys in PIN_KEYS.items():
        entries = pins.get(table, [])
        for i, entry in enumerate(entries if isinstance(entries, list) else [None]):
            lacking = [k for k in keys if not isinstance(entry, dict) or not isinstance(entry.get(k), str)]
            if lacking:
                raise UserError(f"pins file {path}: [[{table}]] entry {i + 1} lacks {', '.join(lacking)}", f"every [[{table}]] needs: {', '.join(keys)}")
    return pins


def pin_artifact(pin: dict[str, Any], user_sha256: str | None, what: str, flag: str) -> Artifact:
    """The pinned download, verified by its digest; without one, only with the user's digest."""
    sha256 = user_sha256 or pin.get("sha256")
    if not sha256 and not pin.get("sha1"):
        size = f" (its size should be {pin['size']} bytes)" if pin.get("size") else ""
        raise ToolchainError(
            f"no published digest is known for {what} ({pin['url']}){size}: refusing to install it unverified",
            f"check the file yourself and pass {flag} DIGEST, or install it and set its path in mobilebuild.toml",
        )
    return Artifact((pin["url"], *pin.get("mirror_urls", [])), sha256=sha256, sha1=pin.get("sha1"), size=pin.get("size"))


# ---------------------------------------------------------------------------- profile


# ---------------------------------------------------------------------------- steps


def step_jdk(yes: bool) -> tuple[Step, machine.Found]:
    step, java = machine.probe_jdk()
    if java.path:
        return _present(step), java
    cmd = machine.jdk_install_command()
    cmd_text = runner.format_argv(cmd) if cmd else None
    if cmd and yes:
        console.info(f"installing a JDK: {cmd_text}")
        runner.run(cmd, hint="install a JDK yourself and set JAVA_HOME")
        step, java = machine.probe_jdk()
        if java.path:
            step.status = "installed"
            return step, java
    if cmd_text:
        step.fix = f"{cmd_text}   (or rerun setup with --yes to run it)"
    return step, java


def step_bazel(profile, tree: Path | None, conf: dict, pins: dict, bazel_sha256: str | None, mirrors: list[str], offline: bool) -> Step:
    step, found = machine.probe_bazel(profile, conf, tree)
    want, why = found.extra["want"], found.extra["why"]
    if found.path:
        return _present(step)
    os_, arch = machine.os_name(), machine.arch_name()
    pin = next((p for p in pins.get("bazel", []) if p["version"] == want and p["os"] == os_ and p.get("arch", "x86_64") == arch), None)
    tried = "; ".join(found.extra.get("tried", [])) or "none on PATH"
    if pin is None:
        return Step(
            "bazel", "missing",
            f"Bazel {want} wanted by {why}; found {tried}; no pinned download for {os_}-{arch}",
            f"install Bazel {want} (or bazelisk) and set `bazel = \"PATH\"` in mobilebuild.toml",
        )
    art = pin_artifact(pin, bazel_sha256, f"Bazel {want}", "--bazel-sha256")
    archive = fetch(art, mirrors=mirrors, offline=offline)
    dest = machine.managed_prefix() / "bazel" / want
    install_bazel(archive, dest, pin.get("kind", "binary"), want)
    exe = dest / "bin" / "bazel"
    return Step("bazel", "installed", f"Bazel {want} from {pin['url']} ({art.describe()}) into {dest}", path=str(exe))


def install_bazel(archive: Path, dest: Path, kind: str, version: str) -> None:
    """An installer script runs with --prefix into a staging dir; a binary is copied. The
    staging dir is renamed into place only when complete."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    stage = dest.with_name(f".{dest.name}.staging")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    try:
        if kind == "installer":
            runner.run(["bash", str(archive), f"--prefix={stage}"], hint="the Bazel installer failed; see its output above")
            if not (stage / "bin" / "bazel").exists():
                raise ToolchainError(f"the Bazel {version} installer did not create bin/bazel", "install Bazel yourself and set its path in mobilebuild.toml")
        else:
            (stage / "bin").mkdir()
            shutil.copyfile(archive, stage / "bin" / "bazel")
            os.chmod(stage / "bin" / "bazel", 0o755)
        # Releases before 0.24 have no --version: remember which one this is.
        (stage / "VERSION").write_text(version + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(stage, dest)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def _licence_consent(accept_licenses: bool) -> bool:
    if accept_licenses:
        return True
    if console.is_interactive():
        from rich.prompt import Confirm

        console.info("The Android SDK packages are under the Android SDK licence (https://developer.android.com/studio/terms).")
        return Confirm.ask("Accept the Android SDK licences?", console=console.err(), default=False)
    return False


def step_sdk(profile, sdk_flag: str | None, conf: dict, pins: dict, java: machine.Found, accept_licenses: bool, mirrors: list[str], offline: bool) -> Step:
    # The SDK the app commands use, when it has the profile's packages; else the one to fill
    # (the one named, else the first found, else the managed prefix; never Debian's).
    api, bt = profile.require("sdk.api_level"), profile.require("sdk.build_tools")
    try:
        sdk, source = sdkmod.find_sdk(sdk_flag, conf)
    except ToolchainError:
        sdk, source = None, ""
    if sdk is None or not all(sdkmod.sdk_packages(sdk, api, bt).values()):
        sdk, source = sdkmod.install_target(sdk_flag, conf)
    have = sdkmod.sdk_packages(sdk, api, bt)
    missing = [pkg for pkg, ok in have.items() if not ok]
    if not missing:
        lic = "" if sdkmod.sdk_licenses_accepted(sdk) else " (licence file not found; packages present anyway)"
        return Step("android-sdk", "present", f"{sdk} ({source}): {', '.join(have)}{lic}", path=str(sdk))
    sdkmanager = sdkmod.sdkmanager_in(sdk)
    installed_tools = ""
    if sdkmanager is None and (on_path := runner.which("sdkmanager")):
        sdkmanager = Path(on_path)
    if sdkmanager is None:
        if not java.path:
            return Step("android-sdk", "missing", f"{sdk} lacks {', '.join(missing)} and the SDK tools need a JDK", "install the JDK first (see the jdk line), then rerun setup", str(sdk))
        sdkmanager, installed_tools = install_sdk_tools(sdk, pins, java, mirrors, offline)
    if not sdkmod.sdk_licenses_accepted(sdk):
        if not _licence_consent(accept_licenses):
            return Step(
                "android-sdk", "missing",
                f"{sdk} lacks {', '.join(missing)}; installing them needs the Android SDK licences accepted",
                "rerun with --accept-licenses to accept them (or run setup at a terminal to be asked)",
                str(sdk),
            )
        with console.line_status("sdkmanager --licenses") as show:
            runner.run([sdkmanager, f"--sdk_root={sdk}", "--licenses"], input="y\n" * 20, on_line=show, hint="sdkmanager --licenses failed")
    if offline:
        return Step("android-sdk", "missing", f"{sdk} lacks {', '.join(missing)} (offline: sdkmanager needs the network)", "rerun setup without --offline", str(sdk))
    console.info(f"sdkmanager: installing {', '.join(missing)} into {sdk}")
    # Streamed: each package is a download of many MB; its progress lines show as they come.
    with console.line_status("sdkmanager") as show:
        runner.run([sdkmanager, f"--sdk_root={sdk}", *missing], input="y\n" * 20, on_line=show, hint="sdkmanager failed; see its output above")
    still = [pkg for pkg, ok in sdkmod.sdk_packages(sdk, api, bt).items() if not ok]
    if still:
        raise ToolchainError(f"sdkmanager ran but {sdk} still lacks {', '.join(still)}", f"run {sdkmanager} --sdk_root={sdk} {' '.join(still)} yourself to see why")
    return Step("android-sdk", "installed", f"{installed_tools}{', '.join(missing)} into {sdk} ({source})", path=str(sdk))


def install_sdk_tools(sdk: Path, pins: dict, java: machine.Found, mirrors: list[str], offline: bool) -> tuple[Path, str]:
    major = int(java.extra.get("major") or 0)
    usable = [
        p for p in pins.get("sdk_tools", [])
        if p["os"] == machine.os_name() and p.get("min_java", 8) <= major and major <= p.get("max_java", 99)
    ]
    if not usable:
        raise ToolchainError(
            f"no pinned Android SDK command-line tools run on Java {java.version} ({machine.os_name()})",
            "install the command-line tools from developer.android.com into SDK/cmdline-tools/latest",
        )
    pin = usable[-1]
    archive = fetch(pin_artifact(pin, None, pin["file"], "--sha256"), mirrors=mirrors, offline=offline)
    dest = sdk / pin["layout"]
    if dest.exists():
        shutil.rmtree(dest)
    extract(archive, dest, strip_components=1)
    exe = dest / "bin" / "sdkmanager"
    if not runner.is_executable(exe):
        raise ToolchainError(f"{pin['file']} has no bin/sdkmanager", "the archive is not the SDK command-line tools")
    return exe, f"command-line tools {pin['file']}, "


def step_ndk(profile, ndk_flag: str | None, conf: dict, sdk: Path | None, pins: dict, ndk_sha256: str | None, mirrors: list[str], offline: bool) -> Step:
    ndk, seen_list = sdkmod.select_ndk(ndk_flag, sdk, conf, profile)  # a named NDK out of range is refused
    if ndk is not None:
        return Step("android-ndk", "present", f"NDK {ndk.revision} ({ndk.pkg_revision or ndk.revision}) at {ndk.path} ({ndk.source})", path=str(ndk.path))
    rec = profile.require("ndk.recommended")
    seen = "; ".join(seen_list) or "none found"
    pin = next((p for p in pins.get("ndk", []) if p["revision"] == rec and p["os"] == machine.os_name()), None)
    if pin is None:
        return Step("android-ndk", "missing", f"NDK {rec} recommended; seen: {seen}; no pinned download for {machine.os_name()}",
                    f"install NDK {rec} and set `ndk = \"PATH\"` in mobilebuild.toml")
    art = pin_artifact(pin, ndk_sha256, f"NDK {rec}", "--ndk-sha256")
    archive = fetch(art, mirrors=mirrors, offline=offline)
    dest = machine.managed_prefix() / f"android-ndk-{rec}"
    if dest.exists():
        shutil.rmtree(dest)  # a broken earlier install (no accepted revision in it)
    extract(archive, dest, strip_components=1)
    try:
        got = sdkmod.ndk_revision(dest)
    except ToolchainError:
        got = None
    if got is None or got.major != sdkmod.parse_ndk_name(rec)[0]:
        shutil.rmtree(dest, ignore_errors=True)  # not the NDK we wanted: leave nothing behind
        raise ToolchainError(f"the NDK archive {pin['url']} has revision {got.revision if got else None}, not {rec}", "check the [[ndk]] pin (its url and digest) in the pins file")
    rev = got.pkg_revision or got.revision
    return Step("android-ndk", "installed", f"NDK {rec} ({rev}) from {pin['url']} ({art.describe()}) into {dest}", path=str(dest))


def step_xcode(profile) -> Step:
    return _present(machine.probe_xcode(profile))


# ---------------------------------------------------------------------------- entry point


def _attempt(name: str, step, *args) -> Step:
    """Run one step; a failure it can explain (download, checksum, archive, tool) makes the
    step "missing" with that explanation, so one run reports every step, not the first fault."""
    try:
        return step(*args)
    except UserError as exc:
        return _failed_step(name, exc)


def _failed_step(name: str, exc: UserError) -> Step:
    detail = exc.message
    if isinstance(exc, CommandError) and exc.output.strip():
        detail += f" (last output: {exc.output_tail(1).strip()})"
    return Step(name, "missing", detail, exc.hint)


def run_setup(
    *,
    tf_ref: str | None = None,
    tf_src: str | None = None,
    sdk: str | None = None,
    ndk: str | None = None,
    yes: bool = False,
    accept_licenses: bool = False,
    mirrors: Iterable[str] = (),
    offline: bool = False,
    pins_file: str | None = None,
    bazel_sha256: str | None = None,
    ndk_sha256: str | None = None,
    conf: dict | None = None,
) -> SetupReport:
    # The project's mobilebuild.toml (found from the cwd upward, as the downloader finds its
    # mirrors); without one, setup creates it in the cwd.
    conf = configmod.load_config() if conf is None else conf
    existing = Path(conf["config_path"]) if conf.get("config_path") else None
    found = resolve(tf_ref=tf_ref, tf_src=tf_src, conf=conf, need_tree=False)
    profile, tree, how = found.profile, found.root, found.how
    pins = load_pins(pins_file)
    mirrors = list(mirrors)
    report = SetupReport(profile.version_text, how, str(machine.managed_prefix()))
    console.info(f"setup for {how} (profile {profile.family})")

    try:
        jdk_step, java = step_jdk(yes)
    except UserError as exc:  # the install command (--yes) failed
        jdk_step, java = _failed_step("jdk", exc), machine.Found(None)
    report.steps.append(jdk_step)
    report.steps.append(_attempt("bazel", step_bazel, profile, tree, conf, pins, bazel_sha256, mirrors, offline))
    sdk_step = _attempt("android-sdk", step_sdk, profile, sdk, conf, pins, java, accept_licenses, mirrors, offline)
    report.steps.append(sdk_step)
    report.steps.append(_attempt("android-ndk", step_ndk, profile, ndk, conf, Path(sdk_step.path) if sdk_step.path else None, pins, ndk_sha256, mirrors, offline))
    report.steps.append(step_xcode(profile))

    updates: dict[str, Any] = {}
    if tree is not None:
        updates["tf_src"] = str(tree)
    if tf_ref:
        updates["tf_ref"] = tf_ref
    for step in report.steps:
        key = {"bazel": "bazel", "android-sdk": "sdk", "android-ndk": "ndk", "jdk": "jdk"}.get(step.name)
        if key and step.path and step.status in ("present", "installed"):
            updates[key] = step.path
    bazel_found = next(s for s in report.steps if s.name == "bazel")
    if bazel_found.path and Path(bazel_found.path).name.startswith("bazelisk"):
        updates["bazel_version"] = machine.bazel_wanted(profile, tree)[0]
    if mirrors:
        old = configmod.read_raw(existing).get("mirrors", []) if existing else []
        updates["mirrors"] = list(dict.fromkeys([*old, *mirrors]))
    target = existing or Path.cwd() / configmod.FILENAME
    report.config_path = str(target)
    report.config_written = configmod.update_config(target, updates)
    return report
