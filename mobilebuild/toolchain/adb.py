"""Knowledge of adb: finding it, the devices it sees, installing and starting the app, logcat.

Every adb call goes through ``runner.run`` (so ``ANDROID_ADB_SERVER_PORT`` and friends pass
through from the environment) and always names the device with ``-s SERIAL``.

adb's exit status is not trusted: a push install on a device without the shell protocol
(Android < 7) exits 0 even when ``pm`` printed ``Failure [...]``. Outcomes are decided from
the output: ``Success``, ``Failure [CODE: detail]``, ``adb: failed to install ...`` or
``error: ...`` from the adb client itself.
"""

from __future__ import annotations

import os
import re
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

from mobilebuild import console, runner
from mobilebuild.choices import ANDROID_CPUS
from mobilebuild.errors import DeviceError, ToolchainError
from mobilebuild.toolchain.sdk import DEBIAN_SOURCE, sdk_candidates

ADB_EXE = "adb.exe" if os.name == "nt" else "adb"

# The ABIs the TF-Mobile demo can be built for (the values of --cpu).

CONNECT_HINT = (
    "connect a phone with USB debugging on (Settings > About phone: tap 'Build number' 7 times, "
    "then Developer options > USB debugging) and accept the prompt on its screen, "
    "or for Wi-Fi debugging run `adb connect PHONE_IP:5555`; `adb devices` must list it as 'device'"
)


@dataclass(frozen=True)
class Device:
    """One line of `adb devices -l`."""

    serial: str
    state: str
    model: str | None = None
    product: str | None = None
    device: str | None = None
    transport_id: str | None = None
    usb: str | None = None

    @property
    def ready(self) -> bool:
        return self.state == "device"

    def describe(self) -> str:
        return f"{self.serial} ({self.model.replace('_', ' ')})" if self.model else self.serial

    def to_json(self) -> dict:
        return asdict(self)


# --- locating adb --------------------------------------------------------------------------


def find_adb(sdk: Path | str | None = None, *, strict: bool = False) -> str:
    """adb from the platform-tools of the first SDK that has it, in the SDK search order of the
    build (``sdk.sdk_candidates``: --sdk, ANDROID_HOME, ANDROID_SDK_ROOT, mobilebuild.toml, the
    usual places, the managed prefix), else adb on PATH. ``strict``: ``sdk`` was named by the
    user (``devices --sdk``), so only its adb will do."""
    candidates = sdk_candidates(str(sdk) if sdk else None)
    for source, root, _explicit in candidates:
        candidate = root / "platform-tools" / ADB_EXE
        if strict and source == "--sdk" and not runner.is_executable(candidate):
            # The SDK named on the command line is the one meant: another adb (another
            # version, another server) would act on devices the user did not ask about.
            what = "does not exist" if not root.exists() else ("is not a directory" if not root.is_dir() else f"has no {ADB_EXE} in platform-tools/")
            raise ToolchainError(
                f"--sdk {root} {what}",
                "pass the SDK directory that holds platform-tools/adb, or leave --sdk out to use ANDROID_HOME or adb on PATH",
            )
        # Debian's SDK gets its adb from the adb package, which is on PATH as well: PATH decides.
        if not root.is_dir() or source == DEBIAN_SOURCE:
            continue
        if runner.is_executable(candidate):
            return str(candidate)
        console.detail(f"no adb in {candidate.parent}")
    found = runner.which("adb")
    if found:
        return found
    named = [root for _source, root, explicit in candidates if explicit]
    where = f" (not in {named[0] / 'platform-tools'} nor on PATH)" if named else " (not on PATH)"
    raise ToolchainError(
        f"adb not found{where}",
        "install the SDK's platform-tools (`sdkmanager platform-tools`, or `apt install adb`) "
        "and pass --sdk, or put adb on PATH",
    )


# --- devices -------------------------------------------------------------------------------

_PROPERTY_KEYS = ("usb", "product", "model", "device", "transport_id")


def parse_devices(output: str) -> list[Device]:
    """The devices in the output of `adb devices -l`."""
    devices = []
    for line in output.splitlines():
        line = line.rstrip()
        if not line or line.startswith("*") or line.startswith("List of devices") or line.startswith("adb "):
            continue
        parts = line.split()
        serial, rest = parts[0], parts[1:]
        props: dict[str, str] = {}
        # key:value pairs trail the state; the state itself may have spaces
        # ("no permissions (user in plugdev group; ...); see [http://...]").
        while rest and ":" in rest[-1] and rest[-1].split(":", 1)[0] in _PROPERTY_KEYS:
            key, value = rest.pop().split(":", 1)
            props[key] = value
        if not rest:
            continue  # not a device line
        state = " ".join(rest)
        if state.startswith("no permissions"):
            state = "no permissions"
        devices.append(
            Device(
                serial=serial,
                state=state,
                model=props.get("model"),
                product=props.get("product"),
                device=props.get("device"),
                transport_id=props.get("transport_id"),
                usb=props.get("usb"),
            )
        )
    return devices


DEFAULT_SERVER_PORT = 5037
PROBE_TIMEOUT = 3.0  # an adb server answers host:version at once; a stranger makes adb wait 60 s


def server_port() -> int:
    try:
        return int(os.environ.get("ANDROID_ADB_SERVER_PORT") or DEFAULT_SERVER_PORT)
    except ValueError:
        return DEFAULT_SERVER_PORT


def check_server_port(port: int | None = None) -> None:
    """Refuse quickly when the adb server port is held by a program that is not an adb server.

    adb clients connect to the port and wait up to a minute for an answer before they fail
    with no hint. One ``host:version`` request (the adb host protocol: 4 hex digits of length,
    then the request; a server answers OKAY or FAIL) tells within seconds; nobody listening
    is fine (adb starts its server)."""
    port = port or server_port()
    try:
        conn = socket.create_connection(("127.0.0.1", port), timeout=PROBE_TIMEOUT)
    except OSError:
        return  # nothing there: adb starts a server
    with conn:
        try:
            request = b"host:version"
            conn.sendall(b"%04x" % len(request) + request)
            answer = conn.recv(4)
        except socket.timeout:
            answer = None
        except OSError:
            return  # reset or closed: a server restarting; let adb deal with it
    if answer in (b"OKAY", b"FAIL"):
        return
    holder = port_holder(port)
    said = "did not answer within {:g} s".format(PROBE_TIMEOUT) if answer is None else f"answered {answer!r}"
    raise DeviceError(
        f"the adb server port {port} is held by {holder or 'a program'} that is not an adb server ({said})",
        f"stop that program, or use another port for adb (export ANDROID_ADB_SERVER_PORT={port + 1})",
    )


def port_holder(port: int) -> str | None:
    """'pid N (cmdline)' of the process listening on TCP ``port`` (Linux /proc; None elsewhere
    or when it belongs to another user)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f, None)
                for line in f:
                    fields = line.split()
                    # local address HEX_IP:HEX_PORT, state 0A = LISTEN
                    if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(fields[9])
        except (OSError, ValueError):
            continue
    if not inodes:
        return None
    targets = {f"socket:[{inode}]" for inode in inodes}
    for pid in filter(str.isdigit, _listdir("/proc")):
        for fd in _listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in targets:
                    return f"pid {pid} ({_cmdline(pid)})"
            except OSError:
                continue
    return None


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def _cmdline(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            text = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return "?"
    return text if len(text) <= 120 else text[:117] + "..."


def list_devices(adb_path: str) -> list[Device]:
    """The devices the adb server sees, in its order (starts the server if needed)."""
    check_server_port()
    result = runner.run([adb_path, "devices", "-l"], check=False, timeout=60)
    if result.returncode != 0:
        detail = _first_error_line(result.output) or f"exit code {result.returncode}"
        raise DeviceError(
            f"adb could not list devices: {detail}",
            "restart the adb server with `adb kill-server` and retry "
            "(another adb of a different version may be using the server port)",
        )
    return parse_devices(result.stdout)


def state_error(device: Device) -> DeviceError:
    """Why ``device`` cannot be used, and what to do about it."""
    name = device.describe()
    state = device.state
    if state == "unauthorized":
        return DeviceError(
            f"device {name} is unauthorized: this computer's adb key has not been accepted on the phone",
            "unlock the phone and tap 'Allow' on the 'Allow USB debugging?' prompt (tick 'Always allow'); "
            "no prompt? Developer options > Revoke USB debugging authorizations, then replug",
        )
    if state == "offline":
        return DeviceError(
            f"device {name} is offline: adb cannot talk to it",
            "replug the USB cable (or toggle USB debugging), or restart adb with `adb kill-server`; "
            "then check `adb devices`",
        )
    if state == "no permissions":
        return DeviceError(
            f"device {name} cannot be opened: no permission on its USB device",
            "add a udev rule for the phone (Debian/Ubuntu: `apt install android-sdk-platform-tools-common`) "
            "and make sure you are in the plugdev group, then replug",
        )
    if state in ("recovery", "rescue", "sideload", "bootloader", "fastboot"):
        return DeviceError(f"device {name} is in {state} mode, not running Android", "reboot the phone normally")
    if state in ("authorizing", "connecting"):
        return DeviceError(f"device {name} is still {state}", "wait a few seconds and retry")
    return DeviceError(f"device {name} is not ready (state '{state}')", "check `adb devices` and replug the phone")


def _listing(devices: Sequence[Device]) -> str:
    return "; ".join(f"--device {d.serial} [{d.state}{', ' + d.model if d.model else ''}]" for d in devices)


def select_device(devices: Sequence[Device], requested: str | None = None) -> Device:
    """The device to use: ``requested`` (--device), else $ANDROID_SERIAL, else the only one.

    Several ready devices: a numbered prompt at a terminal, otherwise an error listing the
    ``--device`` values. A device that is not ready raises its own explanation.
    """
    source = "--device"
    if not requested and os.environ.get("ANDROID_SERIAL"):
        requested, source = os.environ["ANDROID_SERIAL"], "ANDROID_SERIAL"
    if requested:
        for device in devices:
            if device.serial == requested:
                if not device.ready:
                    raise state_error(device)
                return device
        attached = _listing(devices) if devices else "none"
        raise DeviceError(
            f"device '{requested}' (from {source}) is not connected",
            f"attached devices: {attached}" if devices else CONNECT_HINT,
        )
    if not devices:
        raise DeviceError("no Android device connected", CONNECT_HINT)
    ready = [d for d in devices if d.ready]
    if not ready:
        if len(devices) == 1:
            raise state_error(devices[0])
        first = state_error(devices[0])
        raise DeviceError(f"no usable device: {_listing(devices)}", first.hint)
    if len(ready) == 1:
        for other in devices:
            if not other.ready:
                console.warn(f"ignoring {other.describe()}: {other.state}")
        return ready[0]
    if console.is_interactive():
        return _prompt_for_device(ready)
    raise DeviceError(
        f"{len(ready)} devices connected; choose one",
        f"pass one of: {_listing(ready)} (or set ANDROID_SERIAL)",
    )


def _prompt_for_device(devices: Sequence[Device]) -> Device:
    console.info("Several devices are connected:")
    for number, device in enumerate(devices, 1):
        console.info(f"  {number}) {device.describe()}")
    while True:
        answer = console.err().input(f"Install on which device? [1-{len(devices)}]: ", markup=False).strip()
        if answer.isdigit() and 1 <= int(answer) <= len(devices):
            return devices[int(answer) - 1]
        for device in devices:
            if answer == device.serial:
                return device
        console.warn(f"answer with a number from 1 to {len(devices)}")


# --- properties ----------------------------------------------------------------------------


def shell(adb: str, serial: str, *args: str, timeout: float | None = 60) -> runner.Result:
    """`adb -s SERIAL shell ARGS`, not checked (callers read the output)."""
    return runner.run([adb, "-s", serial, "shell", *args], check=False, timeout=timeout)


def getprop(adb: str, serial: str, name: str) -> str:
    result = shell(adb, serial, "getprop", name)
    _raise_for_client_error(result.output, serial)
    return result.stdout.strip()


def device_abi(adb: str, serial: str) -> str:
    """The device's primary ABI (``ro.product.cpu.abi``), e.g. ``arm64-v8a``."""
    abi = getprop(adb, serial, "ro.product.cpu.abi")
    if not abi:
        raise DeviceError(f"device {serial} did not report its CPU ABI", "check `adb -s SERIAL shell getprop`")
    return abi


def device_sdk(adb: str, serial: str) -> int | None:
    """The device's API level (``ro.build.version.sdk``), None if it does not say."""
    value = getprop(adb, serial, "ro.build.version.sdk")
    return int(value) if value.isdigit() else None


def device_info(adb: str, serial: str) -> dict:
    """ABI, ABI list, API level and Android release of a ready device, in one round trip."""
    names = ("ro.product.cpu.abi", "ro.product.cpu.abilist", "ro.build.version.sdk", "ro.build.version.release")
    result = shell(adb, serial, "; ".join(f"getprop {name}" for name in names))
    _raise_for_client_error(result.output, serial)
    values = (result.stdout.splitlines() + [""] * len(names))[: len(names)]
    abi, abilist, sdk, release = (v.strip() for v in values)
    return {
        "abi": abi or None,
        "abilist": [a for a in abilist.split(",") if a] or ([abi] if abi else []),
        "sdk": int(sdk) if sdk.isdigit() else None,
        "release": release or None,
    }


def cpu_for_abi(abi: str) -> str | None:
    """The --cpu value whose APK runs on a device whose primary ABI is ``abi``."""
    return abi if abi in ANDROID_CPUS else None


# --- install -------------------------------------------------------------------------------

_FAILURE = re.compile(r"Failure \[([A-Z0-9_]+)(?::\s*([^\]]*))?\]")
_CLIENT_ERROR = re.compile(r"^(?:adb: )?error: (.*)$", re.MULTILINE)


@dataclass
class InstallResult:
    serial: str
    apk: str
    reinstalled: bool
    output: str

    def to_json(self) -> dict:
        return {"serial": self.serial, "apk": self.apk, "reinstalled": self.reinstalled}


def install(
    adb: str,
    serial: str,
    apk: Path | str,
    *,
    reinstall: bool = False,
    grant: bool = True,
    package: str | None = None,
) -> InstallResult:
    """`adb install -r [-g] APK` on ``serial``; a failure becomes a DeviceError with the fix.

    ``reinstall``: when the installed app is signed differently (or newer), uninstall it
    first, which wipes its data. Without it the user is asked at a terminal, else told.
    """
    apk = Path(apk)
    if not apk.is_file():
        raise DeviceError(f"APK not found: {apk}", "build it first (`mobilebuild android --no-install`)")
    argv = [adb, "-s", serial, "install", "-r"]
    # Runtime permissions (the camera) exist from Android 6 (API 23); older pm rejects -g.
    if grant:
        sdk = device_sdk(adb, serial)
        if sdk is None or sdk >= 23:
            argv.append("-g")
    argv.append(str(apk))

    output = _run_install(argv, serial)
    code, detail = _install_failure(output)
    if code is None:
        return InstallResult(serial, str(apk), False, output)
    if code in ("INSTALL_FAILED_UPDATE_INCOMPATIBLE", "INSTALL_FAILED_VERSION_DOWNGRADE"):
        pkg = package or _package_from_detail(detail)
        if pkg and (reinstall or _confirm_uninstall(pkg, serial, code)):
            uninstall(adb, serial, pkg)
            output = _run_install(argv, serial)
            again, again_detail = _install_failure(output)
            if again is None:
                return InstallResult(serial, str(apk), True, output)
            raise translate_failure(again, again_detail, adb=adb, serial=serial, apk=apk, package=pkg)
        raise translate_failure(code, detail, adb=adb, serial=serial, apk=apk, package=pkg)
    raise translate_failure(code, detail, adb=adb, serial=serial, apk=apk, package=package)


def _run_install(argv: list[str], serial: str) -> str:
    console.detail(f"installing on {serial}")
    result = runner.run(argv, check=False, timeout=600)
    output = result.output
    _raise_for_client_error(output, serial)
    return output


def _install_failure(output: str) -> tuple[str | None, str]:
    """(None, "") for success, else (failure code, detail)."""
    match = _FAILURE.search(output)
    if match:
        return match.group(1), (match.group(2) or "").strip()
    if re.search(r"^Success\b", output, re.MULTILINE):
        return None, ""
    failed = re.search(r"adb: failed to install [^:]*: (.*)", output)
    if failed:
        return "ADB_FAILED", failed.group(1).strip()
    tail = "; ".join(output.strip().splitlines()[-2:])
    return "NO_RESULT", tail


def _package_from_detail(detail: str) -> str | None:
    match = re.search(r"Package ([\w.]+)", detail)
    return match.group(1) if match else None


def _confirm_uninstall(package: str, serial: str, code: str) -> bool:
    if not console.is_interactive():
        return False
    why = "signed with a different key" if code.endswith("INCOMPATIBLE") else "a newer version"
    console.warn(f"{package} on {serial} is {why}; installing needs uninstalling it, which wipes the app's data")
    answer = console.err().input(f"Uninstall {package} from {serial} and install again? [y/N]: ", markup=False)
    return answer.strip().lower() in ("y", "yes")


def uninstall(adb: str, serial: str, package: str) -> None:
    result = runner.run([adb, "-s", serial, "uninstall", package], check=False, timeout=120)
    _raise_for_client_error(result.output, serial)
    if not re.search(r"^Success\b", result.output, re.MULTILINE):
        code, detail = _install_failure(result.output)
        raise DeviceError(
            f"could not uninstall {package} from {serial}: {detail or code}",
            f"uninstall it on the phone (Settings > Apps) or with `adb -s {serial} uninstall {package}`",
        )
    console.info(f"uninstalled {package} from {serial} (its data is gone)")


def translate_failure(
    code: str,
    detail: str,
    *,
    adb: str | None = None,
    serial: str = "",
    apk: Path | str = "",
    package: str | None = None,
) -> DeviceError:
    """A pm/adb install failure as one sentence and a fix."""
    pkg = package or _package_from_detail(detail) or "the app"
    shown = f" ({detail})" if detail else ""
    if code == "INSTALL_FAILED_UPDATE_INCOMPATIBLE":
        return DeviceError(
            f"{pkg} is already installed on {serial} signed with a different key, so it cannot be updated",
            f"rerun with --reinstall to uninstall it first (wipes the app's data), or `adb -s {serial} uninstall {pkg}`",
        )
    if code == "INSTALL_FAILED_VERSION_DOWNGRADE":
        return DeviceError(
            f"{serial} has a newer version of {pkg} than this APK{shown}",
            "rerun with --reinstall to uninstall the newer one first (wipes the app's data), or raise versionCode",
        )
    if code == "INSTALL_FAILED_INSUFFICIENT_STORAGE":
        size = ""
        try:
            size = f" ({console.size(Path(apk).stat().st_size)})" if apk else ""
        except OSError:
            pass
        return DeviceError(
            f"not enough free storage on {serial} to install the APK{size}",
            "free some space on the phone (uninstall apps, delete media) and retry",
        )
    if code == "INSTALL_FAILED_NO_MATCHING_ABIS":
        abi = None
        if adb:
            try:
                abi = device_abi(adb, serial)
            except DeviceError:
                abi = None
        cpu = cpu_for_abi(abi) if abi else None
        if cpu:
            fix = f"rebuild for the phone's CPU with --cpu {cpu}"
        elif abi:
            fix = f"the demo cannot be built for this CPU ({abi}); use a phone with one of: {', '.join(ANDROID_CPUS)}"
        else:
            fix = f"rebuild with the --cpu matching `adb -s {serial} shell getprop ro.product.cpu.abi`"
        return DeviceError(
            f"the APK has no native code for {serial}'s CPU{' (' + abi + ')' if abi else ''}",
            fix,
        )
    if code == "INSTALL_FAILED_OLDER_SDK":
        sdk = None
        if adb:
            try:
                sdk = device_sdk(adb, serial)
            except DeviceError:
                sdk = None
        level = f" (API {sdk})" if sdk else ""
        return DeviceError(
            f"{serial}'s Android version{level} is older than the APK's minSdkVersion{shown}",
            "use a phone with a newer Android, or lower minSdkVersion in the demo's AndroidManifest.xml",
        )
    if code == "INSTALL_FAILED_TEST_ONLY":
        return DeviceError(
            "the APK is marked android:testOnly, which the device refuses to install from adb without -t",
            f"build it without testOnly (a `-c opt` build), or install it by hand: `adb -s {serial} install -r -t {apk}`",
        )
    if code.startswith("INSTALL_PARSE_FAILED_"):
        what = {
            "INSTALL_PARSE_FAILED_NO_CERTIFICATES": "the APK is not signed",
            "INSTALL_PARSE_FAILED_INCONSISTENT_CERTIFICATES": "the APK's files are not all signed with the same key",
            "INSTALL_PARSE_FAILED_NOT_APK": "the file is not an APK",
            "INSTALL_PARSE_FAILED_BAD_MANIFEST": "the APK's AndroidManifest.xml is invalid",
            "INSTALL_PARSE_FAILED_MANIFEST_MALFORMED": "the APK's AndroidManifest.xml is malformed",
        }.get(code, "the device could not read the APK")
        return DeviceError(
            f"{what} ({code}{': ' + detail if detail else ''})",
            "rebuild the APK (a truncated or unsigned file?); Bazel signs debug builds with the debug key",
        )
    if code == "INSTALL_FAILED_USER_RESTRICTED":
        return DeviceError(
            f"{serial} refused the install: installing over USB is not allowed on it",
            "unlock the phone and accept its install prompt; on MIUI enable Developer options > 'Install via USB'",
        )
    if code == "ADB_FAILED":
        return DeviceError(f"adb failed to install the APK on {serial}: {detail}", f"retry with `adb -s {serial} install -r {apk}` to see adb's output")
    if code == "NO_RESULT":
        return DeviceError(
            f"adb install on {serial} reported neither Success nor a failure code: {detail}",
            f"retry with `adb -s {serial} install -r {apk}` to see adb's output",
        )
    return DeviceError(
        f"install on {serial} failed: {code}{shown}",
        f"see the code at https://developer.android.com/reference/android/content/pm/PackageManager; "
        f"retry with `adb -s {serial} install -r {apk}`",
    )


def _first_error_line(output: str) -> str:
    """The line saying what went wrong: one mentioning an error, else adb's last word."""
    lines = [line.strip() for line in output.splitlines() if line.strip() and not line.startswith("*")]
    for line in lines:
        if "error" in line.lower() or "cannot" in line.lower():
            return line
    return lines[-1] if lines else ""


def _raise_for_client_error(output: str, serial: str) -> None:
    """Errors of the adb client/server itself (device gone, offline, unauthorized)."""
    match = _CLIENT_ERROR.search(output)
    if not match:
        failed = re.search(r"failed to get feature set: (.*)", output)
        if not failed:
            return
        text = failed.group(1)
    else:
        text = match.group(1)
    text = text.strip()
    if "unauthorized" in text:
        raise state_error(Device(serial, "unauthorized"))
    if "offline" in text:
        raise state_error(Device(serial, "offline"))
    if "not found" in text and "device" in text:
        raise DeviceError(f"device {serial} is no longer connected", "replug it and check `adb devices`")
    if "no permissions" in text:
        raise state_error(Device(serial, "no permissions"))
    if "closed" in text or "protocol fault" in text:
        raise DeviceError(f"the connection to {serial} broke: {text}", "replug the phone and retry (or `adb kill-server`)")


# --- launch --------------------------------------------------------------------------------


def component(package: str, activity: str) -> str:
    """``org.tensorflow.demo`` + ``org.tensorflow.demo.ClassifierActivity`` -> ``org.tensorflow.demo/.ClassifierActivity``."""
    if activity.startswith(package + "."):
        activity = activity[len(package) :]
    return f"{package}/{activity}"


@dataclass
class LaunchResult:
    serial: str
    component: str
    output: str
    warning: str | None = None

    def to_json(self) -> dict:
        return {"serial": self.serial, "component": self.component, "warning": self.warning}


def launch(adb: str, serial: str, component: str) -> LaunchResult:
    """`am start -n COMPONENT`; am reports errors on its output with exit status 0."""
    result = shell(adb, serial, "am", "start", "-n", component)
    output = result.output
    _raise_for_client_error(output, serial)
    errors = [line.strip() for line in output.splitlines() if line.strip().startswith("Error:")]
    exceptions = [line.strip() for line in output.splitlines() if re.match(r"\s*(java\.\S+Exception|Exception)", line)]
    if errors or exceptions:
        reason = (errors or exceptions)[0]
        reason = reason[len("Error:") :].strip() if reason.startswith("Error:") else reason
        if "does not exist" in reason:
            hint = "is the app installed? (`mobilebuild android` installs it; check the activity name in the profile)"
        elif "Permission Denial" in reason or "SecurityException" in reason:
            hint = "the activity is not exported to the shell; start the app from the phone's launcher"
        else:
            hint = f"try `adb -s {serial} shell am start -n {component}` to see the whole message"
        raise DeviceError(f"could not start {component} on {serial}: {reason}", hint)
    if result.returncode != 0 and "Starting: Intent" not in output:
        raise DeviceError(
            f"could not start {component} on {serial}: {output.strip().splitlines()[-1] if output.strip() else 'no output'}",
            f"try `adb -s {serial} shell am start -n {component}`",
        )
    warning = next((line.strip() for line in output.splitlines() if line.strip().startswith("Warning:")), None)
    return LaunchResult(serial, component, output, warning)


# --- logcat --------------------------------------------------------------------------------

_THREADTIME = re.compile(r"^\d\d-\d\d \d\d:\d\d:\d\d\.\d+\s+(\d+)\s+\d+\s")


def app_pid(adb: str, serial: str, package: str) -> int | None:
    """The pid of the running app: `pidof` (Android 7+), else the last column of `ps`."""
    result = shell(adb, serial, "pidof", package)
    _raise_for_client_error(result.output, serial)
    first = result.stdout.strip().split()
    if first and first[0].isdigit():
        return int(first[0])
    result = shell(adb, serial, "ps")
    for line in result.stdout.splitlines():
        cols = line.split()
        if len(cols) >= 2 and cols[-1] == package and cols[1].isdigit():
            return int(cols[1])
    return None


# ActivityManager's note of a (re)started process: "Start proc 5678:org.x/u0a85 for activity ..."
# (Android 7+), "Start proc org.x for activity org.x/.Main: pid=5678 uid=..." (Android 4-6); and
# of its end: "Process org.x (pid 5678) has died".
_STARTED = (
    re.compile(r"Start proc (?P<pid>\d+):(?P<pkg>[\w.]+)(?:/\S+)?"),
    re.compile(r"Start proc (?P<pkg>[\w.]+) for .*?pid=(?P<pid>\d+)"),
)
_DIED = re.compile(r"Process (?P<pkg>[\w.]+) \(pid (?P<pid>\d+)\) has died")
# How often the app's pid is asked again while lines of other processes arrive: the way back
# to the app when ActivityManager's start line was missed (a ROM wording it differently).
PID_RECHECK_SECONDS = 2.0


def logcat(adb: str, serial: str, package: str, on_line: Callable[[str], None]) -> int:
    """Follow the app's log lines until Ctrl-C (or the device goes); return how many were shown.

    Lines are filtered on our side by the app's pid in the ``threadtime`` format, which works
    on every Android version; ``logcat --pid`` (Android 7+) would fix one pid for the whole
    run. The app is followed across restarts: ActivityManager's "Start proc" line names the new
    pid at once, and the pid is asked again (at most every ``PID_RECHECK_SECONDS``) while only
    other processes log. When the app is not running yet, its lines show once it starts.
    """
    pid = app_pid(adb, serial, package)
    if pid is None:
        console.warn(f"{package} is not running on {serial}; waiting for it to start")
    shown = 0
    checked = time.monotonic()

    def _follow(new: int | None) -> None:
        nonlocal pid
        if new == pid:
            return
        if new is None:
            console.info(f"{package} exited; waiting for it to start again")
        else:
            console.info(f"{package} {'started' if pid is None else 'restarted'} (pid {new})")
        pid = new

    def _line(line: str) -> None:
        nonlocal shown, checked
        match = _THREADTIME.match(line)
        if match is None:
            return  # "--------- beginning of main" and other separators
        for pattern in _STARTED:
            started = pattern.search(line)
            if started and started.group("pkg") == package:
                _follow(int(started.group("pid")))
                return
        died = _DIED.search(line)
        if died and died.group("pkg") == package and pid == int(died.group("pid")):
            _follow(None)
            return
        if int(match.group(1)) != pid:
            now = time.monotonic()
            if now - checked < PID_RECHECK_SECONDS:
                return
            checked = now
            _follow(app_pid(adb, serial, package))
            if int(match.group(1)) != pid:
                return
        shown += 1
        on_line(line)

    try:
        result = runner.run([adb, "-s", serial, "logcat", "-v", "threadtime"], check=False, on_line=_line)
    except KeyboardInterrupt:
        return shown  # Ctrl-C is how one stops following
    if result.returncode != 0:
        _raise_for_client_error(result.output, serial)
        raise DeviceError(f"logcat on {serial} stopped: exit code {result.returncode}", "replug the phone and retry")
    return shown
