"""The runtime op-set check inside the app flows: every model put into an app is checked against the op set of
the runtime the app links, and downgraded when needed, with a line saying what was rewritten."""

from __future__ import annotations

import hashlib

import pytest

from helpers.tftrees import ANDROID_ASSETS, ios_camera_dir


@pytest.fixture(scope="session")
def keras3_model(tmp_path_factory):
    """A Keras 3 graph written by TF 2.x: AddV2, Conv2D dilations/explicit_paddings, MatMul grad_a/b."""
    from helpers.graphs import build_keras3_bn_graph

    d = tmp_path_factory.mktemp("keras3")
    g = build_keras3_bn_graph(d, size=24, classes=4, name="keras3_bn")
    labels = d / "keras3_labels.txt"
    labels.write_text("a\nb\nc\nd\n")
    return g.path, labels


def test_android_downgrades_the_apps_copy_for_the_trees_runtime(cli, tf_tree, sdk, ndk, keras3_model):
    model, labels = keras3_model
    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    assert cli("model", "check", model, "--tf-version", "1.1").code == 1  # as written: would not load
    tree = tf_tree("1.1")
    r = cli("android", "--generate-only", "--tf-src", tree, "--sdk", sdk, "--ndk", ndk,
            "--model", model, "--labels", labels, "--mean", "128", "--std", "128")
    assert r.code == 0, r.stderr
    assert "rewrote for the TF v1.1.0 runtime: AddV2 -> Add" in r.stderr
    assert "MatMul: dropped grad_a, grad_b" in r.stderr
    asset = tree / ANDROID_ASSETS / model.name
    r = cli("model", "check", asset, "--tf-version", "1.1")
    assert r.code == 0, r.stderr
    assert hashlib.sha256(model.read_bytes()).hexdigest() == sha  # the user's file is never modified


def test_ios_from_1_3_targets_the_pods_runtime(cli, tf_tree, keras3_model):
    """The 1.3+ example links the TensorFlow-experimental pod (TF 1.1), not the tree's 1.3."""
    model, labels = keras3_model
    tree = tf_tree("1.3")
    r = cli("ios", "--tf-src", tree, "--model", model, "--labels", labels, "--mean", "128", "--std", "128")
    assert r.code == 0, r.stderr
    assert "rewrote for the TF v1.1.0 runtime" in r.stderr
    assert "TensorFlow-experimental pod" in r.stderr and "tf_camera_example.xcworkspace" in r.stderr
    asset = tree / ios_camera_dir("1.3") / "data" / model.name
    assert cli("model", "check", asset, "--tf-version", "1.1").code == 0


def test_a_memmapped_packages_graph_is_downgraded_too(cli, tf_tree, keras3_model, tmp_path):
    model, labels = keras3_model
    package = tmp_path / "k3.mmapped"
    assert cli("model", "memmap", model, "-o", package, "--min-conversion-tensor-size", "16").code == 0
    tree = tf_tree("1.2")
    r = cli("ios", "--tf-src", tree, "--model", package, "--labels", labels, "--mean", "128", "--std", "128")
    assert r.code == 0, r.stderr
    assert "rewrote for the TF v1.2.0 runtime: AddV2 -> Add" in r.stderr
    asset = tree / ios_camera_dir("1.2") / "data" / package.name
    assert "model_uses_memory_mapping = true;" in (tree / ios_camera_dir("1.2") / "CameraExampleViewController.mm").read_text()
    assert cli("model", "check", asset, "--tf-version", "1.2").code == 0


def test_an_eightbit_quantized_app_copy_loads_in_the_oldest_runtime(cli, tf_tree, sdk, ndk, retrain_model):
    model, labels = retrain_model
    tree = tf_tree("1.0")
    r = cli("android", "--generate-only", "--tf-src", tree, "--sdk", sdk, "--ndk", ndk,
            "--model", model, "--labels", labels, "--quantize", "eightbit")
    assert r.code == 0, r.stderr
    assert "quantized (eightbit)" in r.stderr and "rewrote for the TF v1.0.0 runtime" in r.stderr
    assert cli("model", "check", tree / ANDROID_ASSETS / model.name, "--tf-version", "1.0").code == 0


@pytest.mark.parametrize("version,tag", [("1.15", "v1.15.0"), ("2.3", "v2.3.0")])
def test_an_app_model_for_later_trees_passes_that_tags_android_op_set(cli, tf_tree, sdk, ndk, keras3_model, version, tag):
    """The Android demo of 1.15 / 2.3 links that tag's android_tensorflow_lib: the app's copy is
    fitted to that library's op set (not the makefile build's) and passes it with no problem."""
    import json

    model, labels = keras3_model
    tree = tf_tree(version)
    r = cli("android", "--generate-only", "--tf-src", tree, "--sdk", sdk, "--ndk", ndk,
            "--model", model, "--labels", labels, "--mean", "128", "--std", "128")
    assert r.code == 0, r.stderr
    asset = tree / ANDROID_ASSETS / model.name
    r = cli("--json", "model", "check", asset, "--tf-version", version, "--runtime", "android")
    assert r.code == 0, r.stdout + r.stderr
    data = json.loads(r.stdout)
    assert data["loads"] is True and data["problems"] == [] and data["tag"] == tag and data["runtime"] == "android"


def test_ios_camera_of_later_trees_targets_the_pods_makefile_runtime(cli, tf_tree, keras3_model):
    """From 1.3 to 2.3 the camera example links the TensorFlow-experimental pod: the makefile
    build of TF 1.1, whatever the tree's version."""
    import json

    model, labels = keras3_model
    tree = tf_tree("2.3")
    r = cli("ios", "--tf-src", tree, "--model", model, "--labels", labels, "--mean", "128", "--std", "128")
    assert r.code == 0, r.stderr
    assert "rewrote for the TF v1.1.0 runtime" in r.stderr
    asset = tree / ios_camera_dir("2.3") / "data" / model.name
    r = cli("--json", "model", "check", asset, "--tf-version", "1.1", "--runtime", "makefile")
    assert r.code == 0 and json.loads(r.stdout)["problems"] == []


def test_the_two_runtimes_of_one_tag_differ_and_the_check_names_the_one_used(cli, tmp_path):
    """v1.1.0: Abs has a kernel only in the Android library, ParallelConcat only in the makefile
    build (shared/tf-mobile-ops/README.md)."""

    from mobilebuild.graphs import runtime_ops

    android = runtime_ops.load_opset("1.1", runtime="android")
    makefile = runtime_ops.load_opset("1.1", runtime="makefile")
    assert android.ops["Abs"].has_kernel and not makefile.ops["Abs"].has_kernel
    assert makefile.ops["ParallelConcat"].has_kernel and not android.ops["ParallelConcat"].has_kernel
    # macro-registered kernels count (ScatterUpdate is registered through a file-local macro)
    assert makefile.ops["ScatterUpdate"].has_kernel
    r = cli("--json", "model", "check", "--tf-version", "2.1", "--runtime", "makefile")
    assert r.code == 1 and "has no makefile build" in r.stderr and "removed from TensorFlow in 2.1" in r.stderr
