"""The whole `mobilebuild android --no-install` flow on the TF-shaped Bazel workspace, built by
the real Bazel 2.1.0 (it still defines android_sdk_repository, which the flow uncomments into
WORKSPACE): the APK holds the prepared model; a re-run rewrites nothing and Bazel does a no-op."""

from __future__ import annotations

import json
import zipfile

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
    sdk, ndk = base / "sdk", base / "ndk"
    # The SDK layout Bazel's android_sdk_repository and mobilebuild's SDK check look at.
    (sdk / "platforms/android-23").mkdir(parents=True)
    (sdk / "platforms/android-23/android.jar").write_bytes(b"PK\x05\x06" + b"\0" * 18)
    (sdk / "build-tools/25.0.1").mkdir(parents=True)
    ndk.mkdir()
    (ndk / "source.properties").write_text("Pkg.Desc = Android NDK\nPkg.Revision = 12.1.2977051\n")
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
