"""Real Bazel builds of the TF-shaped workspace: a real signed APK holding the model, the no-op
re-run, a short failure report, Ctrl-C, and nginx as the HTTP remote cache.

Debian's bazel-bootstrap (4.2.3) builds the genrule; each test that needs a fresh output base
gets its own --output_user_root, and every server is shut down at the end.
"""

from __future__ import annotations

import dataclasses
import io
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from helpers import bazelws
from helpers.bazelws import LABELS, MODEL_BYTES, SYSTEM_BAZEL, fresh_tree_state
from mobilebuild.toolchain import bazel
from mobilebuild.errors import CommandError

pytestmark = pytest.mark.slow

TARGET = bazelws.DEMO_TARGET


def test_build_signed_apk_with_model_then_noop(apk_ws, system_bazel, profile_11, tmp_path):
    log = tmp_path / "build.log"
    first = bazel.build(system_bazel, apk_ws, TARGET, flags=["-c", "opt"], log_path=log)
    assert not first.no_op and first.actions and first.actions >= 2
    assert first.remote_cache_hits == 0
    assert "Build completed successfully" in log.read_text()
    apk = bazel.locate_apk(apk_ws, profile_11)
    with zipfile.ZipFile(apk) as z:
        assert z.read("assets/retrained_graph.pb") == MODEL_BYTES
        assert z.read("assets/retrained_labels.txt").decode() == LABELS
        assert "AndroidManifest.xml" in z.namelist()
    verify = subprocess.run(["apksigner", "verify", "--print-certs", str(apk)], capture_output=True, text=True)
    assert verify.returncode == 0 and "CN=mobilebuild test" in verify.stdout
    badging = subprocess.run(["aapt", "dump", "badging", str(apk)], capture_output=True, text=True).stdout
    assert "package: name='org.tensorflow.demo'" in badging
    assert "launchable-activity: name='org.tensorflow.demo.ClassifierActivity'" in badging

    state = fresh_tree_state(apk_ws)
    apk_mtime = Path(apk).stat().st_mtime_ns
    second = bazel.build(system_bazel, apk_ws, TARGET, flags=["-c", "opt"], log_path=tmp_path / "again.log")
    assert second.no_op, second.processes
    assert fresh_tree_state(apk_ws) == state
    assert Path(apk).stat().st_mtime_ns == apk_mtime


def test_failure_is_short_with_log(apk_ws, system_bazel, tmp_path, cli):
    log = tmp_path / "fail.log"
    with pytest.raises(CommandError) as exc:
        bazel.build(system_bazel, apk_ws, "//broken:fail", log_path=log)
    err = exc.value
    assert err.message.startswith("bazel build //broken:fail failed (exit 1)")
    assert err.log_path == str(log) and log.is_file()
    excerpt = err.output.splitlines()
    assert excerpt[0].startswith("ERROR:") and len(excerpt) <= 12
    assert any("error: demo.cc:3" in ln for ln in excerpt)
    assert not any("src/main/tools/linux-sandbox" in ln for ln in excerpt)
    assert not any(ln.startswith("  (cd ") for ln in excerpt)  # the command echo stays in the log
    # The full output is in the log, more than the excerpt.
    assert len(log.read_text().splitlines()) > len(excerpt)


def test_ctrl_c_stops_bazel_and_exits_130(apk_ws, system_bazel, tmp_path):
    """SIGINT to a process running bazel.build: Bazel is stopped, the genrule's command is gone,
    KeyboardInterrupt reaches the caller (the CLI maps it to 130), and Bazel is usable at once."""
    log = tmp_path / "slow.log"
    script = (
        "import sys\n"
        "from mobilebuild.toolchain import bazel\n"
        f"bz = bazel.Bazel({system_bazel.path!r}, None, 'flag', startup_options={system_bazel.startup_options!r})\n"
        "try:\n"
        f"    bazel.build(bz, {str(apk_ws)!r}, '//slow:sleep', log_path={str(log)!r})\n"
        "except KeyboardInterrupt:\n"
        "    sys.exit(130)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if log.is_file() and "//slow:sleep" in log.read_text() and _sleepers():
            break
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("the slow genrule never started")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    assert "bazel build interrupted" in proc.stderr.read()
    deadline = time.monotonic() + 30
    while _sleepers() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _sleepers(), "the genrule's command outlived the interrupt"
    assert not (apk_ws / "bazel-bin/slow/s.txt").exists()
    # The server is free again: a no-op build of the APK answers straight away.
    res = bazel.build(system_bazel, apk_ws, TARGET, flags=["-c", "opt"], log_path=tmp_path / "after.log")
    assert res.actions is not None


def _sleepers() -> list[str]:
    """Processes running the slow genrule's command (read from /proc: no procps needed)."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmdline = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "sleep 120; touch" in cmdline:
            found.append(d.name)
    return found


def test_remote_cache_hits_everything_in_fresh_output_base(apk_ws, system_bazel, profile_11, nginx_cache, tmp_path):
    rc = bazel.write_bazelrc_fragment(apk_ws, remote_cache=nginx_cache.url)
    roots = []
    try:
        # Output base A: builds and uploads (a fresh base executes the genrule).
        a = _fresh(system_bazel, tmp_path / "a", roots)
        first = bazel.build(a, apk_ws, TARGET, flags=["-c", "opt"], bazelrc=rc, log_path=tmp_path / "a.log")
        assert first.remote_cache_hits == 0 and not first.no_op
        stored = nginx_cache.stored_entries()
        assert any(e.startswith("ac/") for e in stored) and any(e.startswith("cas/") for e in stored)
        apk_a = bazel.locate_apk(apk_ws, profile_11).read_bytes()

        # Output base B: nothing local, every action comes from the cache.
        b = _fresh(system_bazel, tmp_path / "b", roots)
        second = bazel.build(b, apk_ws, TARGET, flags=["-c", "opt"], bazelrc=rc, log_path=tmp_path / "b.log")
        executed = {k: v for k, v in second.processes.items() if k != "internal"}
        assert executed == {"remote cache hit": second.remote_cache_hits} and second.remote_cache_hits >= 1
        assert bazel.locate_apk(apk_ws, profile_11).read_bytes() == apk_a
        assert not any("remote cache" in w for w in second.warnings)

        # Cache down: output base C still builds, with a warning.
        nginx_cache.stop()
        c = _fresh(system_bazel, tmp_path / "c", roots)
        third = bazel.build(c, apk_ws, TARGET, flags=["-c", "opt"], bazelrc=rc, log_path=tmp_path / "c.log")
        assert third.remote_cache_hits == 0 and not third.no_op
        assert any("remote cache" in w for w in third.warnings)
        with zipfile.ZipFile(io.BytesIO(bazel.locate_apk(apk_ws, profile_11).read_bytes())) as z:
            assert z.read("assets/retrained_graph.pb") == MODEL_BYTES
    finally:
        for startup in roots:
            bazelws.shutdown(SYSTEM_BAZEL, startup, apk_ws)


def _fresh(bz: bazel.Bazel, root: Path, roots: list) -> bazel.Bazel:
    startup = bazelws.bazel_startup(root)
    roots.append(startup)
    return dataclasses.replace(bz, startup_options=startup)


def test_bazel2_builds_workspace_with_uncommented_android_block(tmp_path, profile_11):
    """Bazel 2.1.0 still has android_sdk_repository: the WORKSPACE with the block uncommented
    (a path with platforms/android-23/android.jar) loads, the demo genrule builds, re-run no-op."""
    path = bazelws.bazel2_path()
    if not path:
        pytest.skip("Bazel 2.1.0 binary not present (MOBILEBUILD_TEST_BAZEL2)")
    if bazelws.missing_tools():
        pytest.skip("missing for the test APK: " + ", ".join(bazelws.missing_tools()))
    ws = bazelws.make_bazel_workspace(tmp_path / "tf", "1.1")
    sdk = tmp_path / "sdk"
    (sdk / "platforms/android-23").mkdir(parents=True)
    (sdk / "platforms/android-23/android.jar").write_bytes(b"PK\x05\x06" + b"\0" * 18)
    text = (ws / "WORKSPACE").read_text()
    block = bazelws.workspace_block("1.1")
    live = "".join(ln[1:] if ln.startswith("#") else ln for ln in block.splitlines(keepends=True))
    live = live.replace("<PATH_TO_SDK>", str(sdk)).replace(
        'android_ndk_repository(\n    name="androidndk",\n    path="<PATH_TO_NDK>",\n    api_level=14)\n', ""
    )
    (ws / "WORKSPACE").write_text(text.replace(block, live))
    (ws / "tensorflow/examples/android/assets/graph.pb").write_bytes(MODEL_BYTES)
    bz = bazel.resolve_bazel(profile_11, bazel_path=path, allow_any_version=True)
    bz = dataclasses.replace(bz, startup_options=bazelws.bazel_startup(tmp_path))
    try:
        first = bazel.build(bz, ws, TARGET, log_path=tmp_path / "1.log")
        assert not first.no_op
        with zipfile.ZipFile(bazel.locate_apk(ws, profile_11)) as z:
            assert z.read("assets/graph.pb") == MODEL_BYTES
        second = bazel.build(bz, ws, TARGET, log_path=tmp_path / "2.log")
        assert second.no_op and second.processes == {}
    finally:
        bazelws.shutdown(path, bz.startup_options, ws)


def test_debian_bazel_on_uncommented_android_block_explains_itself(tmp_path, profile_11):
    """Debian's Bazel has no Android rules: the real error gets a hint naming the way out."""
    bazel_bin = SYSTEM_BAZEL
    if not os.access(bazel_bin, os.X_OK) or bazelws.missing_tools():
        pytest.skip("needs Debian's bazel-bootstrap and the SDK build-tools")
    ws = bazelws.make_bazel_workspace(tmp_path / "tf", "1.1")
    text = (ws / "WORKSPACE").read_text()
    (ws / "WORKSPACE").write_text(text + 'android_sdk_repository(name = "androidsdk", path = "/nonexistent")\n')
    bz = bazel.resolve_bazel(profile_11, bazel_path=bazel_bin, allow_any_version=True)
    bz = dataclasses.replace(bz, startup_options=("--batch", *bazelws.bazel_startup(tmp_path)))
    with pytest.raises(CommandError) as exc:
        bazel.build(bz, ws, TARGET, log_path=tmp_path / "b.log")
    assert "android_sdk_repository' is not defined" in exc.value.message + exc.value.output
    assert "no Android rules" in exc.value.hint
