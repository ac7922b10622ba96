"""`mobilebuild devices ...` end to end: CLI -> adb.py -> real adb server -> simulated devices."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time

from helpers.adbsim import LEGACY_FEATURES

COMPONENT = "org.tensorflow.demo/.ClassifierActivity"


def test_devices_none(cli):
    r = cli("devices")
    assert r.code == 0
    assert r.stdout.strip() == "no devices attached"  # the result, where a pipe finds it
    assert "USB debugging" in r.stderr


def test_devices_lists_state_model_abi(cli, attach):
    a = attach(model="Pixel 3", abi="arm64-v8a", sdk=28)
    b = attach(model="Nexus 5", abi="armeabi-v7a", sdk=23, features=LEGACY_FEATURES)
    u = attach(mode="unauthorized")
    r = cli("devices")
    assert r.code == 0, r.output
    lines = r.stdout.splitlines()  # the table on stdout (plain: not a terminal, NO_COLOR)
    assert lines[0].split() == ["SERIAL", "STATE", "MODEL", "ABI", "ANDROID"]
    assert set(lines[1]) <= {"─", " "}
    row = {line.split()[0]: line for line in lines[2:5]}
    assert row[a.serial].split() == [a.serial, "device", "Pixel", "3", "arm64-v8a", "9", "(API", "28)"]
    assert row[b.serial].split() == [b.serial, "device", "Nexus", "5", "armeabi-v7a", "6.0", "(API", "23)"]
    assert row[u.serial].split() == [u.serial, "unauthorized", "-", "-", "-"]
    assert "Allow USB debugging" in r.stderr


def test_devices_json(cli, attach):
    a = attach(model="Pixel 3", abi="arm64-v8a", sdk=28)
    u = attach(mode="unauthorized")
    r = cli("devices", "--json")
    assert r.code == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["adb"].endswith("adb")
    by_serial = {d["serial"]: d for d in data["devices"]}
    assert by_serial[a.serial]["state"] == "device"
    assert by_serial[a.serial]["model"] == "Pixel_3"
    assert by_serial[a.serial]["abi"] == "arm64-v8a"
    assert by_serial[a.serial]["sdk"] == 28 and by_serial[a.serial]["ready"] is True
    assert by_serial[u.serial]["state"] == "unauthorized" and by_serial[u.serial]["ready"] is False
    assert "unauthorized" in by_serial[u.serial]["problem"]["message"]


def test_adb_missing(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    r = cli("devices")
    assert r.code == 1
    assert "error: adb not found" in r.stderr
    assert "Traceback" not in r.output


def test_install_one_device(cli, attach, apk):
    phone = attach()
    r = cli("devices", "install", apk)
    assert r.code == 0, r.stderr
    assert f"installed {apk.name} on {phone.serial} (Pixel 3)" in r.stderr
    assert phone.installs[0].apk == apk.read_bytes()
    assert phone.installs[0].argv[3:5] == ["-r", "-g"]


def test_install_two_devices_needs_device_option(cli, attach, apk, monkeypatch):
    a = attach()
    b = attach(model="Nexus 5")
    r = cli("devices", "install", apk)
    assert r.code == 1
    assert "error: 2 devices connected; choose one" in r.stderr
    assert f"--device {a.serial}" in r.stderr and f"--device {b.serial}" in r.stderr
    assert a.installs == [] and b.installs == []

    r = cli("devices", "install", apk, "--device", b.serial)
    assert r.code == 0, r.stderr
    assert len(b.installs) == 1 and a.installs == []

    monkeypatch.setenv("ANDROID_SERIAL", a.serial)
    r = cli("devices", "install", apk)
    assert r.code == 0, r.stderr
    assert len(a.installs) == 1 and len(b.installs) == 1


def test_install_failure_exit_0_from_adb_is_an_error(cli, attach, apk):
    phone = attach(sdk=22, features=LEGACY_FEATURES, install_outcomes=["Failure [INSTALL_FAILED_INSUFFICIENT_STORAGE]"])
    r = cli("devices", "install", apk)
    assert r.code == 1
    assert "error: not enough free storage on" in r.stderr
    assert "hint: free some space" in r.stderr
    assert "Traceback" not in r.output
    assert len(phone.installs) == 1


def test_install_reinstall_flag(cli, attach, apk):
    phone = attach(installed={"org.tensorflow.demo"}, foreign_signature=True)
    r = cli("devices", "install", apk)
    assert r.code == 1 and "--reinstall" in r.stderr
    assert phone.uninstalled == []
    r = cli("devices", "install", apk, "--reinstall", "--json")
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout) == {"serial": phone.serial, "apk": str(apk), "reinstalled": True}
    assert phone.uninstalled == ["org.tensorflow.demo"]


def test_install_unauthorized_and_offline(cli, attach, apk):
    u = attach(mode="unauthorized")
    r = cli("devices", "install", apk)
    assert r.code == 1 and "unauthorized" in r.stderr and "Allow" in r.stderr
    o = attach(mode="unresponsive")
    r = cli("devices", "install", apk, "--device", o.serial)
    assert r.code == 1 and f"device {o.serial} is offline" in r.stderr
    assert "adb kill-server" in r.stderr
    assert u.installs == [] and o.installs == []


def test_launch_default_component(cli, attach, apk):
    phone = attach()
    assert cli("devices", "install", apk).code == 0
    r = cli("devices", "launch")
    assert r.code == 0, r.stderr
    assert f"started {COMPONENT}" in r.stderr
    assert phone.shell_commands[-1] == f"am start -n {COMPONENT}"


def test_launch_not_installed(cli, attach):
    attach()
    r = cli("devices", "launch", "--json")
    assert r.code == 1
    assert "does not exist" in r.stderr
    assert "does not exist" in json.loads(r.stdout)["error"]


def _read_until(fd, needle: bytes, timeout: float = 30) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while needle not in data and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
    return data


def _env(adb_server) -> dict:
    return dict(os.environ, NO_COLOR="1", ANDROID_ADB_SERVER_PORT=str(adb_server.port))


def _at_terminal(adb_server, *args: str) -> tuple[subprocess.Popen, int]:
    """`mobilebuild ARGS` with stdin/stderr on a pseudo-terminal (so it may prompt); -> (proc, pty fd)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mobilebuild", *args], stdin=slave, stdout=subprocess.PIPE, stderr=slave, env=_env(adb_server)
    )
    os.close(slave)
    return proc, master


def test_several_devices_prompt_at_a_terminal(attach, apk, adb_server):
    a = attach()
    b = attach(model="Nexus 5")
    proc, master = _at_terminal(adb_server, "devices", "install", str(apk))
    try:
        shown = _read_until(master, b"]: ")
        assert b"Several devices are connected" in shown, shown
        match = re.search(rb"(\d)\) " + re.escape(b.serial.encode()) + rb" \(Nexus 5\)", shown)
        assert match, shown
        os.write(master, match.group(1) + b"\n")
        rest = _read_until(master, b"installed")
        assert proc.wait(timeout=60) == 0, rest
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert len(b.installs) == 1 and a.installs == []


def test_logcat_command_stops_on_ctrl_c(attach, apk, adb_server):
    from mobilebuild.toolchain import adb

    lines = [
        "11-28 04:30:01.500  4321  4321 I tensorflow: CameraActivity: onCreate",
        "11-28 04:30:02.100   999   999 D WifiService: scan",
        "11-28 04:30:02.000  4321  4340 I tensorflow: ClassifierActivity: Detect: daisy",
    ]
    phone = attach(logcat_lines=lines, app_pid=4321)
    adb.install("/usr/bin/adb", phone.serial, apk)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mobilebuild", "devices", "logcat"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=_env(adb_server),
    )
    try:
        out = _read_until(proc.stdout.fileno(), b"daisy")
        assert b"Detect: daisy" in out and b"WifiService" not in out
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_install_no_device(cli, apk):
    r = cli("devices", "install", apk)
    assert r.code == 1
    assert "error: no Android device connected" in r.stderr
    assert "adb connect" in r.stderr


def test_signature_mismatch_asks_at_a_terminal(attach, apk, adb_server):
    phone = attach(installed={"org.tensorflow.demo"}, foreign_signature=True)

    def run(answer: bytes) -> tuple[int, bytes]:
        proc, master = _at_terminal(adb_server, "devices", "install", str(apk))
        try:
            shown = _read_until(master, b"[y/N]: ")
            assert b"wipes the app's data" in shown and shown.endswith(b"[y/N]: "), shown
            os.write(master, answer + b"\n")
            shown += _read_until(master, b"\n\n", timeout=20)
            return proc.wait(timeout=60), shown
        finally:
            if proc.poll() is None:
                proc.kill()
            os.close(master)

    code, shown = run(b"n")
    assert code == 1 and phone.uninstalled == [] and b"--reinstall" in shown
    code, shown = run(b"y")
    assert code == 0, shown
    assert phone.uninstalled == ["org.tensorflow.demo"]
    assert phone.installs[-1].result == "Success"


def test_adb_from_sdk_platform_tools(cli, attach, apk, tmp_path):
    # a stand-in adb in the SDK that records its calls and hands them to the real one
    tools = tmp_path / "sdk" / "platform-tools"
    tools.mkdir(parents=True)
    calls = tmp_path / "calls.txt"
    exe = tools / "adb"
    exe.write_text(f'#!/bin/sh\necho "$*" >> {calls}\nexec /usr/bin/adb "$@"\n')
    exe.chmod(0o755)
    phone = attach()
    r = cli("devices", "--sdk", tmp_path / "sdk", "install", apk)
    assert r.code == 0, r.stderr
    assert len(phone.installs) == 1
    used = calls.read_text().splitlines()
    assert used[0] == "devices -l"
    assert f"-s {phone.serial} install -r -g {apk}" in used
    r = cli("devices", "--sdk", tmp_path / "sdk", "--json")
    assert json.loads(r.stdout)["adb"] == str(exe)


def test_sdk_named_without_adb_is_an_error_not_another_adb(cli, attach, tmp_path):
    """`--sdk DIR` means that SDK's adb: a missing dir (or one without platform-tools/adb) is
    said, never replaced by the adb on PATH."""
    attach()
    for sdk, what in ((tmp_path / "nonexistent", "does not exist"), (tmp_path, "has no adb in platform-tools/")):
        r = cli("devices", "--sdk", sdk)
        assert r.code == 1, r.output
        errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
        assert errors == [f"error: --sdk {sdk} {what}"], r.stderr
        assert "hint:" in r.stderr and "SERIAL" not in r.output
    r = cli("devices", "--sdk", tmp_path / "nonexistent", "install", tmp_path / "x.apk")
    assert r.code == 1 and "does not exist" in r.stderr
