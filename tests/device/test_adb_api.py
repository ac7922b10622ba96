"""mobilebuild.toolchain.adb against the real adb server and simulated devices."""

from __future__ import annotations

import os
import stat

import pytest

from helpers.adbsim import LEGACY_FEATURES
from mobilebuild.toolchain import adb
from mobilebuild.errors import DeviceError, ToolchainError

ADB = "/usr/bin/adb"
COMPONENT = "org.tensorflow.demo/.ClassifierActivity"


# --- parsing and locating -------------------------------------------------------------------


def test_parse_devices_all_shapes():
    output = (
        "* daemon not running; starting now at tcp:5037\n"
        "* daemon started successfully\n"
        "List of devices attached\n"
        "0123456789ABCDEF       device usb:1-1.2 product:walleye model:Pixel_2 device:walleye transport_id:4\n"
        "emulator-5554          offline transport_id:2\n"
        "HT4A1JT00123           unauthorized usb:2-1 transport_id:5\n"
        "????????????           no permissions (user in plugdev group; are your udev rules wrong?); "
        "see [http://developer.android.com/tools/device.html] usb:1-3 transport_id:6\n"
        "\n"
    )
    devices = adb.parse_devices(output)
    assert [(d.serial, d.state) for d in devices] == [
        ("0123456789ABCDEF", "device"),
        ("emulator-5554", "offline"),
        ("HT4A1JT00123", "unauthorized"),
        ("????????????", "no permissions"),
    ]
    first = devices[0]
    assert (first.model, first.product, first.device, first.transport_id, first.usb) == ("Pixel_2", "walleye", "walleye", "4", "1-1.2")
    assert first.ready and not devices[1].ready
    assert first.describe() == "0123456789ABCDEF (Pixel 2)"


def _stand_in_adb(directory):
    directory.mkdir(parents=True)
    exe = directory / "adb"
    exe.write_text("#!/bin/sh\nexec /usr/bin/adb \"$@\"\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return exe


def test_find_adb_prefers_sdk_platform_tools(tmp_path, monkeypatch):
    exe = _stand_in_adb(tmp_path / "sdk" / "platform-tools")
    assert adb.find_adb(tmp_path / "sdk") == str(exe)
    monkeypatch.setenv("ANDROID_HOME", str(tmp_path / "sdk"))
    assert adb.find_adb() == str(exe)


def test_find_adb_falls_back_to_path(tmp_path):
    (tmp_path / "sdk").mkdir()
    assert adb.find_adb(tmp_path / "sdk") == "/usr/bin/adb"


def test_find_adb_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolchainError) as info:
        adb.find_adb(tmp_path / "sdk")
    assert "adb not found" in info.value.message
    assert "platform-tools" in info.value.hint


# --- listing and choosing -------------------------------------------------------------------


def test_no_device():
    assert adb.list_devices(ADB) == []
    with pytest.raises(DeviceError) as info:
        adb.select_device([], None)
    assert info.value.message == "no Android device connected"
    assert "USB debugging" in info.value.hint and "adb connect" in info.value.hint


def test_one_device_is_chosen(attach):
    phone = attach(model="Pixel 3", product="blueline", abi="arm64-v8a", sdk=28)
    devices = adb.list_devices(ADB)
    assert len(devices) == 1
    device = devices[0]
    assert (device.serial, device.state, device.model, device.product) == (phone.serial, "device", "Pixel_3", "blueline")
    assert device.transport_id and device.transport_id.isdigit()
    assert adb.select_device(devices, None) == device
    assert adb.device_abi(ADB, phone.serial) == "arm64-v8a"
    assert adb.device_sdk(ADB, phone.serial) == 28
    info = adb.device_info(ADB, phone.serial)
    assert info == {"abi": "arm64-v8a", "abilist": ["arm64-v8a", "armeabi-v7a", "armeabi"], "sdk": 28, "release": "9"}


def test_two_devices_need_a_choice(attach, monkeypatch):
    a = attach(model="Pixel 3")
    b = attach(model="Nexus 5", abi="armeabi-v7a", sdk=23)
    devices = adb.list_devices(ADB)
    with pytest.raises(DeviceError) as info:
        adb.select_device(devices, None)
    assert "2 devices connected" in info.value.message
    assert f"--device {a.serial}" in info.value.hint and f"--device {b.serial}" in info.value.hint
    assert adb.select_device(devices, b.serial).serial == b.serial
    monkeypatch.setenv("ANDROID_SERIAL", a.serial)
    assert adb.select_device(devices, None).serial == a.serial
    # --device wins over ANDROID_SERIAL
    assert adb.select_device(devices, b.serial).serial == b.serial


def test_requested_device_not_connected(attach, monkeypatch):
    a = attach()
    devices = adb.list_devices(ADB)
    with pytest.raises(DeviceError) as info:
        adb.select_device(devices, "ZX1G22KHQK")
    assert "'ZX1G22KHQK' (from --device) is not connected" in info.value.message
    assert a.serial in info.value.hint
    monkeypatch.setenv("ANDROID_SERIAL", "ZX1G22KHQK")
    with pytest.raises(DeviceError, match="from ANDROID_SERIAL"):
        adb.select_device(devices, None)


def test_unauthorized_device(attach):
    phone = attach(mode="unauthorized")
    devices = adb.list_devices(ADB)
    assert [(d.serial, d.state) for d in devices] == [(phone.serial, "unauthorized")]
    # the host offered its public key: a real phone would now show the RSA prompt
    assert phone.offered_keys and phone.offered_keys[0].startswith(b"QAAAA")
    with pytest.raises(DeviceError) as info:
        adb.select_device(devices, None)
    assert "unauthorized" in info.value.message
    assert "Allow USB debugging" in info.value.hint
    with pytest.raises(DeviceError, match="unauthorized"):
        adb.device_abi(ADB, phone.serial)


def test_offline_device(attach):
    phone = attach(mode="unresponsive")
    devices = adb.list_devices(ADB)
    assert [(d.serial, d.state) for d in devices] == [(phone.serial, "offline")]
    with pytest.raises(DeviceError) as info:
        adb.select_device(devices, phone.serial)
    assert "offline" in info.value.message
    assert "replug" in info.value.hint and "adb kill-server" in info.value.hint


def test_ready_device_chosen_over_unauthorized(attach, capsys):
    good = attach()
    attach(mode="unauthorized")
    assert adb.select_device(adb.list_devices(ADB), None).serial == good.serial
    assert "unauthorized" in capsys.readouterr().err


# --- install -------------------------------------------------------------------------------


def test_install_streamed(attach, apk):
    phone = attach(sdk=28)
    result = adb.install(ADB, phone.serial, apk)
    assert not result.reinstalled
    assert len(phone.installs) == 1
    record = phone.installs[0]
    assert record.via == "stream"
    assert record.apk == apk.read_bytes()
    assert record.argv[:5] == ["cmd", "package", "install", "-r", "-g"]
    assert record.argv[-2:] == ["-S", str(apk.stat().st_size)]
    assert "org.tensorflow.demo" in phone.installed


def test_install_pushed_on_old_android_without_grant_flag(attach, apk):
    phone = attach(sdk=22, features=LEGACY_FEATURES, model="Nexus 5", abi="armeabi-v7a")
    adb.install(ADB, phone.serial, apk)
    record = phone.installs[0]
    assert record.via == "push"
    assert record.apk == apk.read_bytes()
    # Android 5.1 has no runtime permissions; its pm rejects -g
    assert record.argv == ["pm", "install", "-r", f"/data/local/tmp/{apk.name}"]
    assert phone.pushed == {}  # adb removed the pushed copy afterwards


FAILURES = {
    "INSTALL_FAILED_UPDATE_INCOMPATIBLE": (
        "Package org.tensorflow.demo signatures do not match the previously installed version; ignoring!",
        "signed with a different key",
        "--reinstall",
    ),
    "INSTALL_FAILED_VERSION_DOWNGRADE": ("", "newer version of org.tensorflow.demo", "--reinstall"),
    "INSTALL_FAILED_INSUFFICIENT_STORAGE": ("", "not enough free storage", "free some space"),
    "INSTALL_FAILED_NO_MATCHING_ABIS": ("Failed to extract native libraries, res=-113", "no native code", "--cpu x86_64"),
    "INSTALL_FAILED_OLDER_SDK": ("Requires newer sdk version #26 (current version is #22)", "older than the APK's minSdkVersion", "newer Android"),
    "INSTALL_FAILED_TEST_ONLY": ("installPackageLI", "testOnly", "-t"),
    "INSTALL_PARSE_FAILED_NO_CERTIFICATES": ("Package /data/app/vmdl1.tmp/base.apk has no certificates", "not signed", "rebuild the APK"),
    "INSTALL_PARSE_FAILED_NOT_APK": ("", "not an APK", "rebuild the APK"),
    "INSTALL_FAILED_USER_RESTRICTED": ("Install canceled by user", "refused the install", "Install via USB"),
}


@pytest.mark.parametrize("legacy", [False, True], ids=["streamed-exit1", "pushed-exit0"])
@pytest.mark.parametrize("code", sorted(FAILURES))
def test_install_failures_are_translated(attach, apk, adb_server, code, legacy):
    detail, in_message, in_hint = FAILURES[code]
    line = f"Failure [{code}: {detail}]" if detail else f"Failure [{code}]"
    options = dict(abi="x86_64", sdk=22 if legacy else 28, install_outcomes=[line])
    if legacy:
        options["features"] = LEGACY_FEATURES
    phone = attach(**options)
    if legacy:
        # what makes exit codes useless: adb itself reports success here
        probe = attach(**options)
        proc = adb_server.run("-s", probe.serial, "install", "-r", str(apk))
        assert proc.returncode == 0 and code in proc.stdout
    with pytest.raises(DeviceError) as info:
        adb.install(ADB, phone.serial, apk, package="org.tensorflow.demo")
    assert in_message in info.value.message
    assert in_hint in info.value.hint
    assert phone.uninstalled == []  # nothing destructive without --reinstall


def test_signature_mismatch_reinstall_uninstalls_first(attach, apk):
    phone = attach(installed={"org.tensorflow.demo"}, foreign_signature=True)
    with pytest.raises(DeviceError, match="different key"):
        adb.install(ADB, phone.serial, apk)
    assert phone.uninstalled == [] and "org.tensorflow.demo" in phone.installed
    result = adb.install(ADB, phone.serial, apk, reinstall=True)
    assert result.reinstalled
    assert phone.uninstalled == ["org.tensorflow.demo"]
    assert [r.result.split(" ")[0] for r in phone.installs] == [
        "Failure",
        "Failure",
        "Success",
    ]


def test_install_on_vanished_device(apk):
    with pytest.raises(DeviceError, match="no longer connected"):
        adb.install(ADB, "127.0.0.1:9", apk)


def test_install_missing_apk(attach, tmp_path):
    phone = attach()
    with pytest.raises(DeviceError, match="APK not found"):
        adb.install(ADB, phone.serial, tmp_path / "nope.apk")


# --- launch and logcat ---------------------------------------------------------------------


def test_launch_sends_am_start(attach, apk):
    phone = attach()
    adb.install(ADB, phone.serial, apk)
    result = adb.launch(ADB, phone.serial, COMPONENT)
    assert phone.shell_commands[-1] == f"am start -n {COMPONENT}"
    assert result.component == COMPONENT and result.warning is None


def test_launch_error_is_detected_despite_exit_0(attach, adb_server):
    phone = attach()  # nothing installed: am prints "Error: Activity class ... does not exist."
    assert adb_server.run("-s", phone.serial, "shell", "am", "start", "-n", COMPONENT).returncode == 0
    with pytest.raises(DeviceError) as info:
        adb.launch(ADB, phone.serial, COMPONENT)
    assert "does not exist" in info.value.message
    assert "installed" in info.value.hint


def test_launch_warning_is_reported(attach):
    phone = attach(am_output="Starting: Intent { cmp=org.tensorflow.demo/.ClassifierActivity }\n"
                   "Warning: Activity not started, its current task has been brought to the front\n")
    result = adb.launch(ADB, phone.serial, COMPONENT)
    assert result.warning.startswith("Warning: Activity not started")


def test_component_from_profile_values():
    assert adb.component("org.tensorflow.demo", "org.tensorflow.demo.ClassifierActivity") == COMPONENT
    assert adb.component("org.tensorflow.demo", "com.other.Main") == "org.tensorflow.demo/com.other.Main"


LOG = [
    "--------- beginning of main",
    "11-28 04:30:01.100  1200  1200 I ActivityManager: Start proc 4321:org.tensorflow.demo/u0a85",
    "11-28 04:30:01.500  4321  4321 I tensorflow: CameraActivity: onCreate org.tensorflow.demo.ClassifierActivity",
    "11-28 04:30:02.000  4321  4340 I tensorflow: ClassifierActivity: Detect: [[0] daisy (91.2%)]",
    "11-28 04:30:02.100   999   999 D WifiService: scan",
]


def test_logcat_follows_the_app_until_ctrl_c(attach, apk):
    phone = attach(logcat_lines=LOG, app_pid=4321)
    adb.install(ADB, phone.serial, apk)
    seen = []

    def on_line(line):
        seen.append(line)
        if len(seen) == 2:
            raise KeyboardInterrupt  # what Ctrl-C does in the reading loop

    assert adb.logcat(ADB, phone.serial, "org.tensorflow.demo", on_line) == 2
    assert seen == LOG[2:4]
    assert any(c.endswith("exec logcat '-v' 'threadtime'") for c in phone.shell_commands)


def test_logcat_ends_when_the_log_ends(attach, apk):
    phone = attach(logcat_lines=LOG, logcat_follow=False, app_pid=4321)
    adb.install(ADB, phone.serial, apk)
    seen = []
    assert adb.logcat(ADB, phone.serial, "org.tensorflow.demo", seen.append) == 2
    assert seen == LOG[2:4]


def test_sim_rejects_grant_flag_on_old_android(attach, adb_server, apk):
    # the reason install() leaves -g out below API 23: old pm refuses the whole install
    phone = attach(sdk=22, features=LEGACY_FEATURES)
    proc = adb_server.run("-s", phone.serial, "install", "-r", "-g", str(apk))
    assert proc.returncode == 0 and "Unknown option: -g" in proc.stdout
    assert phone.installs == []


def test_not_an_apk(attach, tmp_path):
    phone = attach()
    bogus = tmp_path / "demo.apk"
    bogus.write_text("<html>404</html>")
    with pytest.raises(DeviceError) as info:
        adb.install(ADB, phone.serial, bogus)
    assert "not an APK" in info.value.message and "INSTALL_PARSE_FAILED_NOT_APK" in info.value.message


def test_streamed_install_error_without_code(attach, apk):
    phone = attach(install_outcomes=["cmd: Can't find service: package"])
    with pytest.raises(DeviceError) as info:
        adb.install(ADB, phone.serial, apk)
    assert "adb failed to install the APK" in info.value.message
    assert "Can't find service: package" in info.value.message


def test_list_devices_when_adb_cannot_run(monkeypatch):
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", "not-a-port")
    with pytest.raises(DeviceError) as info:
        adb.list_devices(ADB)
    assert "ANDROID_ADB_SERVER_PORT must be a positive number" in info.value.message
    assert "adb kill-server" in info.value.hint


@pytest.mark.parametrize("legacy", [False, True], ids=["streamed", "pushed"])
def test_large_apk_arrives_intact(attach, tmp_path, legacy):
    # many WRTE packets, each acknowledged before the next (adb's flow control), and many
    # 64 KiB sync DATA chunks on the push path
    big = tmp_path / "big.apk"
    big.write_bytes(b"PK\x03\x04" + os.urandom(6 * 1024 * 1024))
    phone = attach(sdk=22, features=LEGACY_FEATURES) if legacy else attach()
    adb.install(ADB, phone.serial, big)
    assert phone.installs[0].apk == big.read_bytes()
    assert phone.installs[0].via == ("push" if legacy else "stream")


def test_logcat_on_old_android_finds_the_pid_with_ps(attach, apk):
    phone = attach(sdk=22, features=LEGACY_FEATURES, logcat_lines=LOG, logcat_follow=False, app_pid=4321)
    adb.install(ADB, phone.serial, apk)
    assert adb.app_pid(ADB, phone.serial, "org.tensorflow.demo") == 4321
    assert "ps" in phone.shell_commands
    seen = []
    assert adb.logcat(ADB, phone.serial, "org.tensorflow.demo", seen.append) == 2
    assert seen == LOG[2:4]


def test_logcat_app_not_running_waits_for_it_to_start(attach, apk, capsys):
    phone = attach(logcat_lines=LOG, logcat_follow=False)  # installed below only
    seen = []
    # Not running when we start: ActivityManager's "Start proc" line then names its pid.
    assert adb.logcat(ADB, phone.serial, "org.tensorflow.demo", seen.append) == 2
    assert seen == LOG[2:4]
    err = capsys.readouterr().err
    assert "is not running" in err and "waiting for it to start" in err and "started (pid 4321)" in err


def _set_pid(pid):
    def change(device):
        device.app_pid = pid

    return change


def test_logcat_follows_the_app_across_restarts(attach, apk, capsys):
    """The app crashes and is started again with a new pid: its new lines keep coming, other
    processes' lines (and the old pid's, reused by another process) do not."""
    log = [
        "11-28 04:30:02.000  4321  4340 I tensorflow: before the crash",
        "11-28 04:30:03.000  1200  1300 I ActivityManager: Process org.tensorflow.demo (pid 4321) has died: fore TOP",
        _set_pid(5678),
        "11-28 04:30:03.500  4321  4321 D other: a new process that got the old pid",
        "11-28 04:30:04.000  1200  1300 I ActivityManager: Start proc 5678:org.tensorflow.demo/u0a85 for activity {org.tensorflow.demo/.ClassifierActivity}",
        "11-28 04:30:04.500  5678  5678 I tensorflow: after the restart",
        "11-28 04:30:04.600   999   999 D WifiService: scan",
    ]
    phone = attach(logcat_lines=log, logcat_follow=False, app_pid=4321)
    adb.install(ADB, phone.serial, apk)
    seen = []
    assert adb.logcat(ADB, phone.serial, "org.tensorflow.demo", seen.append) == 2
    assert seen == [log[0], log[5]]
    err = capsys.readouterr().err
    assert "exited; waiting for it to start again" in err and "started (pid 5678)" in err


def test_logcat_finds_the_new_pid_by_asking_again(attach, apk, monkeypatch, capsys):
    """An Android 6 phone whose log has no start line we recognise: the pid is asked again
    (ps there: no pidof before Android 7) when other processes log, and the app is found."""
    monkeypatch.setattr(adb, "PID_RECHECK_SECONDS", 0.0)
    log = [
        "11-28 04:30:02.000  4321  4340 I tensorflow: first run",
        _set_pid(6000),
        "11-28 04:30:05.000  6000  6000 I tensorflow: second run",
        "11-28 04:30:05.100   999   999 D WifiService: scan",
    ]
    phone = attach(sdk=23, features=LEGACY_FEATURES, logcat_lines=log, logcat_follow=False, app_pid=4321)
    adb.install(ADB, phone.serial, apk)
    seen = []
    assert adb.logcat(ADB, phone.serial, "org.tensorflow.demo", seen.append) == 2
    assert seen == [log[0], log[2]]
    assert "restarted (pid 6000)" in capsys.readouterr().err


def test_find_adb_searches_sdks_in_the_build_order(tmp_path, monkeypatch):
    """--sdk, ANDROID_HOME, ..., the managed prefix: the same SDK search as the build."""
    from mobilebuild.paths import data_dir

    monkeypatch.chdir(tmp_path)  # no mobilebuild.toml
    (tmp_path / "bare-sdk").mkdir()
    managed = _stand_in_adb(data_dir() / "android-sdk" / "platform-tools")
    assert adb.find_adb(tmp_path / "bare-sdk") == str(managed)
    env_adb = _stand_in_adb(tmp_path / "env-sdk" / "platform-tools")
    monkeypatch.setenv("ANDROID_SDK_ROOT", str(tmp_path / "env-sdk"))
    assert adb.find_adb(tmp_path / "bare-sdk") == str(env_adb)
    assert adb.find_adb() == str(env_adb)
