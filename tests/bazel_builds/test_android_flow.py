"""The whole `mobilebuild android --no-install` flow on the TF-shaped Bazel workspace, built by
the real Bazel 2.1.0 (it still defines android_sdk_repository, which the flow uncomments into
WORKSPACE): the APK holds the prepared model; a re-run rewrites nothing and Bazel does a no-op."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from helpers import bazelws
from helpers.bazelws import fresh_tree_state

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def flow_inputs(tmp_path_factory):
    b2 = bazelws.bazel2_path()
    if not b2:
        pytest.skip("Bazel 2.1.0 binary not present (MOBILEBUILD_TEST_BAZEL2)")
    if bazelws.missing_tools():
        pytest.skip("missing for the test APK: " + ", ".join(bazelws.missing_tools()))
    import tensorflow as tf

    base = tmp_path_factory.mktemp("flow")
    ws = bazelws.make_bazel_workspace(base / "tensorflow", "1.1")
    sdk, ndk = bazelws.make_sdk_ndk(base)
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [1, 224, 224, 3], name="input")
        w = tf.constant(0.01, shape=[224 * 224 * 3, 3])
        tf.nn.softmax(tf.matmul(tf.reshape(x, [1, -1]), w), name="output")
    model = base / "retrained_graph.pb"
    model.write_bytes(g.as_graph_def().SerializeToString())
    labels = base / "retrained_labels.txt"
    labels.write_text("daisy\nroses\ntulips\n")
    startup = bazelws.bazel_startup(base)
    yield {"b2": b2, "ws": ws, "sdk": sdk, "ndk": ndk, "model": model, "labels": labels, "startup": startup}
    bazelws.shutdown(b2, startup, ws)


def test_android_flow_builds_apk_with_model_then_noop(cli, flow_inputs):
    f = flow_inputs
    args = [
        "android", "--tf-src", f["ws"], "--sdk", f["sdk"], "--ndk", f["ndk"],
        "--model", f["model"], "--labels", f["labels"], "--mean", "128", "--std", "128",
        "--no-install", "--bazel", f["b2"], "--ignore-bazel-version",
        *[f"--bazel-startup-arg={s}" for s in f["startup"]], "--json",
    ]
    r = cli(*args)
    assert r.code == 0, r.stderr
    res = json.loads(r.stdout)
    assert "version check was overridden" in r.stderr  # the deliberate override stays visible
    apk = f["ws"] / bazelws.APK
    assert res["apk"] == str(apk)
    assets = f["ws"] / "tensorflow/examples/android/assets"
    with zipfile.ZipFile(apk) as z:
        names = z.namelist()
        packed = {n[len("assets/"):]: z.read(n) for n in names if n.startswith("assets/")}
    assert packed, names
    for name, data in packed.items():
        assert (assets / name).read_bytes() == data  # exactly the prepared copies in the tree
    assert any(name.endswith(".pb") for name in packed) and any(name.endswith(".txt") for name in packed)
    assert "android_sdk_repository(" in (f["ws"] / "WORKSPACE").read_text()

    state = fresh_tree_state(f["ws"])
    r2 = cli(*args)
    assert r2.code == 0, r2.stderr
    assert json.loads(r2.stdout)["build"]["no_op"] is True
    assert fresh_tree_state(f["ws"]) == state


def _flow_args(f, *extra):
    return [
        "android", "--tf-src", f["ws"], "--sdk", f["sdk"], "--ndk", f["ndk"],
        "--model", f["model"], "--labels", f["labels"], "--mean", "128", "--std", "128",
        "--no-install", "--bazel", f["b2"], "--ignore-bazel-version",
        *[f"--bazel-startup-arg={s}" for s in f["startup"]], *extra,
    ]


def test_apk_found_where_bazel_reports_it(cli, flow_inputs):
    """A --symlink_prefix moves bazel-bin: the APK is taken from Bazel's own report."""
    f = flow_inputs
    r = cli(*_flow_args(f, "--bazel-arg=--symlink_prefix=out-", "--json"))
    assert r.code == 0, r.stderr
    res = json.loads(r.stdout)
    moved = f["ws"] / "out-bin/tensorflow/examples/android/tensorflow_demo.apk"
    assert res["apk"] == str(moved) and moved.is_file()
    assert res["build"]["outputs"] == ["out-bin/tensorflow/examples/android/tensorflow_demo.apk"]
    assert res["device"] is None and res["bazel"]["version"] == "2.1.0"


def test_ctrl_c_during_the_build_exits_130_and_leaves_the_tree_as_patched(cli, flow_inputs):
    """Ctrl-C at a terminal (SIGINT to the foreground process group) while Bazel runs a slow
    action: exit 130, Bazel's action gone, the tree exactly as the patch step left it, and the
    next run works (no lock left behind)."""
    f = flow_inputs
    r = cli(*_flow_args(f))  # prepares the model in this test's cache: the subprocess reuses it
    assert r.code == 0, r.stderr
    build = f["ws"] / "tensorflow/examples/android/BUILD"
    original = build.read_text()
    build.write_text(original.replace("set -e\n", "set -e\nsleep 97\n", 1))
    try:
        state = fresh_tree_state(f["ws"])
        proc = subprocess.Popen(
            [sys.executable, "-m", "mobilebuild", *map(str, _flow_args(f))],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=dict(os.environ, NO_COLOR="1"), start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while not _running("sleep 97"):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the slow action never started"
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "bazel build interrupted" in err and "Traceback" not in err
        deadline = time.monotonic() + 30
        while _running("sleep 97") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _running("sleep 97"), "Bazel's action outlived the interrupt"
        assert fresh_tree_state(f["ws"]) == state
    finally:
        build.write_text(original)
    again = cli(*_flow_args(f))  # nothing left locked or half-done: the next run just works
    assert again.code == 0, again.stderr


def _running(needle: str) -> bool:
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if needle.encode() in (d / "cmdline").read_bytes().replace(b"\0", b" "):
                    return True
            except OSError:
                continue
    return False


def test_full_flow_on_an_x86_phone_builds_for_it_installs_and_launches(cli, flow_inputs, monkeypatch):
    """Build, install and launch on a simulated phone attached to the real adb server. Without
    --cpu the flow builds for the phone's ABI (x86 here: it cannot run armeabi-v7a code), and
    --json carries the APK path, the device and the timings of every step."""
    import shutil

    from helpers.adbsim import AdbServer, SimulatedDevice

    adb = shutil.which("adb")
    if not adb:
        pytest.skip("adb is not installed")
    f = flow_inputs
    server = AdbServer(adb).start()
    log = ["11-28 04:30:01.500  4321  4321 I tensorflow: ClassifierActivity: Detect: daisy",
           "11-28 04:30:01.600   999   999 D WifiService: scan"]
    phone = SimulatedDevice(abi="x86", abilist="x86", sdk=23, model="Nexus_5X", logcat_lines=log, logcat_follow=False)
    try:
        monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(server.port))
        assert "connected" in server.attach(phone) and server.wait_state(phone.serial, "device")
        args = [a for a in _flow_args(f) if a != "--no-install"]
        r = cli(*args, "--json")
        assert r.code == 0, r.stderr
        res = json.loads(r.stdout)
        assert res["cpu"] == "x86" and "--fat_apk_cpu=x86" in res["build"]["argv"]
        assert "building for --cpu x86" in r.stderr
        assert res["apk"] == str(f["ws"] / bazelws.APK) and res["device"]["serial"] == phone.serial
        assert list(res["timings"]) == res["steps"] and res["steps"][-3:] == ["apk", "install", "launch"]
        assert len(phone.installs) == 1 and phone.installs[0].apk == (f["ws"] / bazelws.APK).read_bytes()
        assert any("am start -n org.tensorflow.demo/.ClassifierActivity" in c for c in phone.shell_commands)
        # --logcat follows the app's own lines (here until the simulated log ends).
        r = cli(*args, "--logcat")
        assert r.code == 0, r.stderr
        assert "Detect: daisy" in r.stdout and "WifiService" not in r.stdout
        # An explicit --cpu is the user's choice: kept even when the phone cannot run it.
        r = cli(*args, "--json", "--cpu", "armeabi-v7a", "--no-launch")
        assert r.code == 0, r.stderr
        assert json.loads(r.stdout)["cpu"] == "armeabi-v7a"
    finally:
        server.detach(phone)
        phone.close()
        server.stop()


def test_unreachable_remote_cache_warns_and_the_build_goes_on(cli, flow_inputs):
    from helpers.loopback import free_port

    f = flow_inputs
    cache = f"http://127.0.0.1:{free_port()}/cache"  # nothing listens there
    # A changed action env makes Bazel run the genrule, so it has to ask the cache.
    args = _flow_args(f, "--remote-cache", cache, f"--bazel-arg=--action_env=MB_CACHE_TEST={time.time_ns()}", "--json")
    r = cli(*args)
    assert r.code == 0, r.stderr
    res = json.loads(r.stdout)
    assert not res["build"]["no_op"] and res["build"]["remote_cache_hits"] == 0
    remote = [w for w in res["build"]["warnings"] if w.startswith("remote cache")]
    assert remote and "building locally" in remote[0]
    assert "warning: remote cache" in r.stderr
    assert f"--bazelrc={f['ws'].resolve()}/mobilebuild.bazelrc" in res["build"]["argv"]
    assert zipfile.ZipFile(res["apk"]).namelist()
    # Again, nothing changed: the fragment and our records are not rewritten, Bazel does a no-op.
    state = fresh_tree_state(f["ws"])
    again = cli(*args)
    assert again.code == 0, again.stderr
    assert json.loads(again.stdout)["build"]["no_op"] and fresh_tree_state(f["ws"]) == state
    # The fragment is ours: `mobilebuild restore` takes it away with the rest.
    r = cli("restore", "--tf-src", f["ws"], "--dry-run", "--json")
    assert "mobilebuild.bazelrc" in json.loads(r.stdout)["removed"]
