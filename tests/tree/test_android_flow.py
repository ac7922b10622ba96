"""The whole `mobilebuild android` flow: patch -> real Bazel build -> APK -> install + launch on a
simulated device through the real adb server. Plus the full plan in --dry-run."""

from __future__ import annotations

import shutil
import zipfile

import pytest

from helpers import bazelws
from helpers.tftrees import ANDROID_ASSETS, make_ndk, make_sdk, one_line_error, tree_digest


def test_full_plan_dry_run_prints_every_command_and_changes_nothing(cli, tmp_path, sdk, ndk, tf_tree):
    tree = tf_tree("1.4")
    before = tree_digest(tree)
    fake_bazel = tmp_path / "bin" / "bazel"
    fake_bazel.parent.mkdir()
    # Bazel 0.5.x has no --remote_cache flag (mobilebuild refuses --remote-cache with it): a newer one.
    fake_bazel.write_text("#!/bin/sh\necho 'Build label: 0.26.1'\n")
    fake_bazel.chmod(0o755)
    r = cli("android", "--tf-src", tree, "--sdk", sdk, "--ndk", ndk, "--dry-run", "--bazel", fake_bazel, "--ignore-bazel-version",
            "--cpu", "arm64-v8a", "-c", "dbg", "--bazel-arg=--jobs=2", "--remote-cache", "http://127.0.0.1:9/cache",
            "--device", "SERIAL1")
    assert r.code == 0, r.stderr
    assert "plan: source -> files -> toolchain -> bazel -> device -> model -> patch -> build -> apk -> install -> launch" in r.stderr
    out = r.stdout
    order = [out.index(x) for x in ("devices -l", "--- a/WORKSPACE", "write mobilebuild.bazelrc", " build --color=no", "install -r -g", "am start -n")]
    assert order == sorted(order)
    assert "-c dbg" in out and "--fat_apk_cpu=arm64-v8a" in out and "--jobs=2" in out
    assert f"--bazelrc={tree.resolve()}/mobilebuild.bazelrc" in out
    assert "-s SERIAL1 shell am start -n org.tensorflow.demo/.ClassifierActivity" in out
    assert tree_digest(tree) == before


@pytest.mark.parametrize("args,message", [(("--cpu", "mips"), "unknown --cpu"), (("-c", "fast"), "not a Bazel compilation mode"),
                                          (("--remote-cache", "ftp://x"), "not a usable URL")])
def test_bad_build_options_fail_before_anything_is_touched(cli, tf_tree, sdk, ndk, args, message):
    tree = tf_tree("1.2")
    before = tree_digest(tree)
    r = cli("android", "--tf-src", tree, "--sdk", sdk, "--ndk", ndk, "--no-install", *args)
    one_line_error(r)
    assert message in r.stderr
    assert tree_digest(tree) == before
    if "--remote-cache" not in args:  # --generate-only prints a bazel command with -c/--cpu: checked first too
        r = cli("android", "--generate-only", "--tf-src", tree, "--sdk", sdk, "--ndk", ndk, *args)
        one_line_error(r)
        assert message in r.stderr
        assert tree_digest(tree) == before


def test_generate_only_prints_the_bazel_command_the_build_step_would_run(cli, tf_tree, sdk, ndk):
    tree = tf_tree("1.3")
    r = cli("android", "--generate-only", "--tf-src", tree, "--sdk", sdk, "--ndk", ndk, "--cpu", "x86")
    assert r.code == 0, r.stderr
    assert (f"next: cd {tree.resolve()} && bazel build -c opt --cxxopt=-std=c++11 --fat_apk_cpu=x86 "
            "//tensorflow/examples/android:tensorflow_demo") in r.stderr


@pytest.mark.slow
def test_build_install_launch_on_a_simulated_device(cli, tmp_path, monkeypatch, retrain_model):
    from helpers.adbsim import AdbServer, SimulatedDevice

    bazel2 = bazelws.bazel2_path()
    adb = shutil.which("adb")
    missing = bazelws.missing_tools()
    if not bazel2 or not adb or missing:
        pytest.skip(f"needs Bazel 2.1.0, adb and the APK tools (missing: {missing or 'bazel2/adb'})")
    model, labels = retrain_model
    tree = bazelws.make_bazel_workspace(tmp_path / "tensorflow", "1.1", with_git=True)
    sdk = make_sdk(tmp_path / "sdk", platforms=(23,), build_tools=("25.0.1",), adb=False)
    ndk = make_ndk(tmp_path / "ndk")
    server = AdbServer(adb).start()
    device = SimulatedDevice(abi="armeabi-v7a", sdk=23)
    startup = bazelws.bazel_startup(tmp_path)
    try:
        monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(server.port))
        assert "connected" in server.attach(device) and server.wait_state(device.serial, "device")
        argv = ["android", "--tf-src", tree, "--sdk", sdk, "--ndk", ndk, "--model", model, "--labels", labels,
                "--bazel", bazel2, "--ignore-bazel-version", *[f"--bazel-startup-arg={s}" for s in startup]]
        r = cli("--json", *argv)
        assert r.code == 0, r.stderr
        import json

        data = json.loads(r.stdout)
        apk = tree / bazelws.APK
        assert data["apk"] == str(apk) and data["device"]["serial"] == device.serial
        assert set(data["timings"]) >= {"build", "install", "launch"}
        names = zipfile.ZipFile(apk).namelist()
        assert "assets/retrained_graph.pb" in names and "assets/retrained_labels.txt" in names
        assert zipfile.ZipFile(apk).read("assets/retrained_graph.pb") == (tree / ANDROID_ASSETS / "retrained_graph.pb").read_bytes()
        assert len(device.installs) == 1
        assert any("am start -n org.tensorflow.demo/.ClassifierActivity" in c for c in device.shell_commands)

        # Re-run: no file rewritten, Bazel reports a no-op.
        state = bazelws.fresh_tree_state(tree)
        r = cli("--json", *argv, "--no-install")
        assert r.code == 0, r.stderr
        assert json.loads(r.stdout)["build"]["no_op"] is True
        assert bazelws.fresh_tree_state(tree) == state
    finally:
        server.run("disconnect")
        device.close()
        server.stop()
        bazelws.shutdown(bazel2, startup, tree)


def test_no_device_or_no_bazel_fails_before_the_tree_is_patched(cli, tf_tree, sdk, ndk, tmp_path, monkeypatch):
    """A missing phone or Bazel is reported before any model work or patch: the tree stays as it was."""
    from helpers.adbsim import AdbServer

    adb = shutil.which("adb")
    if not adb:
        pytest.skip("adb not installed")
    sdk = make_sdk(tmp_path / "sdk-without-adb", platforms=(23,), build_tools=("25.0.1",), adb=False)  # adb from PATH
    tree = tf_tree("1.1")
    before = tree_digest(tree)
    fake_bazel = tmp_path / "bazel"
    fake_bazel.write_text("#!/bin/sh\necho 'Build label: 0.4.5'\n")
    fake_bazel.chmod(0o755)
    server = AdbServer(adb).start()  # a real adb server with no device attached
    try:
        monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(server.port))
        r = cli("android", "--tf-src", tree, "--sdk", sdk, "--ndk", ndk, "--bazel", fake_bazel)
        one_line_error(r)
        assert "no Android device connected" in r.stderr
        assert "model" not in r.stderr  # stopped before any model work
        assert tree_digest(tree) == before
    finally:
        server.stop()
    r = cli("android", "--tf-src", tree, "--sdk", sdk, "--ndk", ndk, "--no-install", "--bazel", tmp_path / "nope")
    one_line_error(r)
    assert "--bazel" in r.stderr
    assert tree_digest(tree) == before


def test_a_64_bit_only_phone_gets_a_workspace_for_its_cpu(cli, tf_tree, sdk, ndk, tmp_path, monkeypatch):
    """The device step picks --cpu x86_64 for an x86_64-only phone after the WORKSPACE block was
    planned for the default 32-bit CPU: the block is planned again (NDK api_level 21)."""
    from helpers.adbsim import AdbServer, SimulatedDevice

    adb = shutil.which("adb")
    if not adb:
        pytest.skip("adb not installed")
    sdk = make_sdk(tmp_path / "sdk-without-adb", platforms=(23,), build_tools=("26.0.1",), adb=False)  # the real adb
    tree = tf_tree("1.4")
    fake_bazel = tmp_path / "bazel"
    fake_bazel.write_text("#!/bin/sh\necho 'Build label: 0.5.4'\n")  # builds nothing: the APK step fails
    fake_bazel.chmod(0o755)
    server = AdbServer(adb).start()
    device = SimulatedDevice(abi="x86_64", abilist="x86_64", sdk=24)
    try:
        monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(server.port))
        assert "connected" in server.attach(device) and server.wait_state(device.serial, "device")
        r = cli("android", "--tf-src", tree, "--sdk", sdk, "--ndk", ndk, "--bazel", fake_bazel)
        assert "building for --cpu x86_64" in r.stderr, r.stderr
        assert "    api_level = 21,\n)\n# END mobilebuild android repositories" in (tree / "WORKSPACE").read_text()
    finally:
        server.run("disconnect")
        device.close()
        server.stop()
