"""`mobilebuild doctor` against SDK/NDK layouts built here, Debian's /usr/lib/android-sdk, and
the real adb server (Debian's adb, on a private port, killed at the end) with no device.

Bazel 0.5 cannot run here: the in-range Bazel is a stand-in executable printing the version
line a real Bazel prints (at the managed-prefix path setup installs to).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.machine_standins import make_ndk, make_sdk, write_exe
from mobilebuild.paths import data_dir

ADB = "/usr/bin/adb"
pytestmark = pytest.mark.skipif(not os.path.exists(ADB), reason="Debian's adb package is not installed")


@pytest.fixture
def adb_port(monkeypatch):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(port))
    yield port
    subprocess.run([ADB, "kill-server"], env={**os.environ, "ANDROID_ADB_SERVER_PORT": str(port)}, capture_output=True, timeout=30)


@pytest.fixture
def bazel_054():
    return write_exe(data_dir() / "bazel" / "0.5.4" / "bin" / "bazel", "#!/bin/sh\necho 'bazel 0.5.4'\n")


def lines_by_check(stdout: str) -> dict[str, str]:
    """The table doctor prints on stdout: 'MARK STATUS CHECK DETAILS' -> {check: 'STATUS ... DETAILS'}."""
    out = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] in ("✓", "!", "✗", "-") and parts[1] in ("ok", "warning", "MISSING", "skipped"):
            out[parts[2]] = line[line.index(parts[1]):].rstrip()
    return out


def test_complete_layout_is_ready(cli, tmp_path, adb_port, bazel_054):
    sdk = make_sdk(tmp_path / "sdk")
    ndk = make_ndk(tmp_path / "ndk")
    r = cli("doctor", "--tf-ref", "v1.4.0", "--sdk", sdk, "--ndk", ndk)
    assert r.code == 0, r.stderr
    checks = lines_by_check(r.stdout)
    for name in ("tf-version", "python", "packages", "git", "jdk", "bazel", "android-sdk", "sdk-platform",
                 "sdk-build-tools", "sdk-platform-tools", "sdk-licenses", "android-ndk", "xcode", "adb",
                 "cache", "network", "disk"):
        assert name in checks, name
    assert checks["bazel"].startswith("ok") and "0.5.4" in checks["bazel"]
    assert f"{sdk} (found via --sdk)" in checks["android-sdk"]
    assert "r14b (14.1.3816874)" in checks["android-ndk"]
    # The real adb server answered on our private port, with no device attached.
    assert checks["adb"].startswith("warning") and "no device connected" in checks["adb"]
    assert "ready for android" in r.stderr


def test_json_is_one_object_with_every_check(cli, tmp_path, adb_port, bazel_054):
    r = cli("doctor", "--json", "--tf-ref", "v1.4.0", "--sdk", make_sdk(tmp_path / "sdk"), "--ndk", make_ndk(tmp_path / "ndk"))
    assert r.code == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["ok"] is True and data["target"] == "android" and data["tf_version"] == "1.4.0"
    by = {c["name"]: c for c in data["checks"]}
    assert by["adb"]["status"] == "warning" and by["jdk"]["status"] == "ok"
    assert all({"name", "status", "detail", "fix", "needed"} <= set(c) for c in data["checks"])


def test_broken_layout_names_each_missing_part_with_its_fix(cli, tmp_path, adb_port, bazel_054):
    sdk = make_sdk(tmp_path / "sdk", build_tools="23.0.1", licenses=False)
    ndk = make_ndk(tmp_path / "ndk17", "17.2.4988734")  # too new for TF 1.4 (r12..r14)
    r = cli("doctor", "--tf-ref", "v1.4.0", "--sdk", sdk, "--ndk", ndk)
    assert r.code == 1
    checks = lines_by_check(r.stdout)
    assert checks["sdk-build-tools"].startswith("MISSING") and "build-tools;26.0.1" in checks["sdk-build-tools"]
    assert "(also: 23.0.1)" in checks["sdk-build-tools"]
    # No sdkmanager in that SDK: the fix is setup, which brings the command-line tools.
    assert f"fix: mobilebuild setup --sdk {sdk} --accept-licenses --tf-ref v1.4.0" in r.stdout
    assert checks["sdk-licenses"].startswith("warning")
    assert checks["android-ndk"].startswith("MISSING") and "r17c" in checks["android-ndk"]
    assert "mobilebuild setup --tf-ref v1.4.0" in r.stdout
    assert "not ready for android: missing sdk-build-tools, android-ndk" in r.stderr


def test_sdk_without_platform_tools_and_no_bazel(cli, tmp_path, adb_port, monkeypatch):
    from helpers.machine_standins import sdkmanager_script

    sdk = make_sdk(tmp_path / "sdk", adb=None)
    write_exe(sdk / "cmdline-tools/latest/bin/sdkmanager", sdkmanager_script())
    r = cli("doctor", "--tf-ref", "v1.1.0", "--sdk", sdk, "--ndk", make_ndk(tmp_path / "ndk", "12.1.2977051"))
    assert r.code == 1
    checks = lines_by_check(r.stdout)
    assert checks["sdk-platform-tools"].startswith("MISSING")
    assert f'fix: {sdk}/cmdline-tools/latest/bin/sdkmanager --sdk_root={sdk} "platform-tools"' in r.stdout
    # Debian's bazel-bootstrap is on PATH but reports no version: not usable for TF 1.1.
    assert checks["bazel"].startswith("MISSING") and "0.4.2" in checks["bazel"]


def test_debian_sdk_found_via_android_home(cli, tmp_path, adb_port, monkeypatch):
    if not Path("/usr/lib/android-sdk/build-tools").is_dir():
        pytest.skip("Debian's android-sdk package is not installed")
    monkeypatch.setenv("ANDROID_HOME", "/usr/lib/android-sdk")
    r = cli("doctor", "--tf-ref", "v1.2.0")
    checks = lines_by_check(r.stdout)
    assert "/usr/lib/android-sdk (found via ANDROID_HOME)" in checks["android-sdk"]
    assert checks["sdk-build-tools"].startswith("MISSING") and "29.0.3" in checks["sdk-build-tools"]
    assert checks["sdk-platform-tools"].startswith("ok")
    assert r.code == 1


def test_model_target_needs_no_android_tools(cli, tmp_path, adb_port, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no java, no adb, no git: not needed for models
    r = cli("doctor", "--target", "model")
    checks = lines_by_check(r.stdout)
    assert checks["jdk"].startswith("MISSING") and checks["git"].startswith("MISSING")
    assert r.code == 0, r.stderr


def test_unknown_target(cli):
    r = cli("doctor", "--target", "windows-phone")
    assert r.code == 1 and "android, ios, pi, model" in r.stderr


def test_does_not_import_tensorflow(tmp_path, adb_port):
    code = (
        "import sys\n"
        "from mobilebuild.cli import hoist_global_flags, run\n"
        "rc = run(hoist_global_flags(['doctor', '--json', '--target', 'model']))\n"
        "print('TF-IMPORTED' if 'tensorflow' in sys.modules else 'TF-NOT-IMPORTED', rc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert "TF-NOT-IMPORTED 0" in out.stdout, out.stderr


def test_devices_are_listed_with_their_states(cli, tmp_path, monkeypatch, bazel_054):
    """Two simulated phones attached to the real adb server (tests/helpers/adbsim.py speaks
    the ADB wire protocol): one ready, one that has not accepted this computer's key."""
    from helpers.adbsim import AdbServer, SimulatedDevice

    adb_server = AdbServer().start()
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(adb_server.port))
    ready = SimulatedDevice(model="Pixel_3")
    locked = SimulatedDevice(mode="unauthorized")
    try:
        adb_server.attach(ready)
        adb_server.attach(locked)
        assert adb_server.wait_state(ready.serial, "device") and adb_server.wait_state(locked.serial, "unauthorized")
        r = cli("--json", "doctor", "--tf-ref", "v1.4.0", "--sdk", make_sdk(tmp_path / "sdk"), "--ndk", make_ndk(tmp_path / "ndk"))
        adb = next(c for c in json.loads(r.stdout)["checks"] if c["name"] == "adb")
        assert f"{ready.serial} (device, Pixel_3)" in adb["detail"]
        assert f"{locked.serial} (unauthorized" in adb["detail"]
        assert adb["status"] == "warning" and "USB debugging prompt" in adb["fix"]
        assert r.code == 0  # a device is not needed to be ready to build
    finally:
        adb_server.stop()
        ready.close()
        locked.close()


@pytest.mark.skipif(sys.platform == "darwin", reason="Xcode may exist on a Mac")
def test_ios_target_is_not_ready_off_macos(cli, adb_port):
    r = cli("doctor", "--target", "ios")
    checks = lines_by_check(r.stdout)
    assert checks["xcode"].startswith("MISSING") and "fix: build the iOS app on a Mac with Xcode" in r.stdout
    assert r.code == 1 and "not ready for ios: missing xcode" in r.stderr


def test_cache_mirrors_and_proxy_in_effect(cli, tmp_path, adb_port, monkeypatch, server):
    """The cache line counts what is cached; the network line shows the mirrors of
    mobilebuild.toml and the proxy from the environment with its password hidden."""
    from helpers.archive_builders import sha256
    from mobilebuild.config import update_config
    from mobilebuild.net.downloads import downloads_root, fetch

    data = b"x" * 2048
    fetch(server.add("/c.bin", data), sha256=sha256(data))
    update_config(tmp_path, {"mirrors": ["https://mirror.example.com/bazel"]})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HTTPS_PROXY", "http://builder:s3cret@proxy.lan:3128")
    r = cli("--json", "doctor", "--target", "model")
    assert r.code == 0, r.stderr
    by = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    assert by["cache"]["detail"] == f"{downloads_root()} (1 files, 2.0 kB)"
    assert "mirrors: https://mirror.example.com/bazel" in by["network"]["detail"]
    assert "HTTPS_PROXY=http://***@proxy.lan:3128" in by["network"]["detail"]
    assert "s3cret" not in r.stdout + r.stderr


def test_unwritable_cache_is_a_warning_with_the_fix(cli, tmp_path, adb_port, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("MOBILEBUILD_CACHE", str(blocker / "cache"))
    r = cli("--json", "doctor", "--target", "model")
    cache = next(c for c in json.loads(r.stdout)["checks"] if c["name"] == "cache")
    assert cache["status"] == "warning" and "not writable" in cache["detail"]
    assert cache["fix"] == "set MOBILEBUILD_CACHE to a writable directory"
