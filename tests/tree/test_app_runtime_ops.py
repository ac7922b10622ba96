"""Issue 6 inside the app flows: every model put into an app is checked against the op set of
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
