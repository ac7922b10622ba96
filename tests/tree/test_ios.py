"""`mobilebuild ios` (generation) on every tag: the example's path moves at v1.3.0."""

from __future__ import annotations

import pytest

from helpers.tftrees import VERSIONS, ios_camera_dir, one_line_error, tree_digest, tree_mtimes


@pytest.mark.parametrize("version", VERSIONS)
def test_camera_example_patched_in_place(cli, tf_tree, retrain_model, version):
    model, labels = retrain_model
    tree = tf_tree(version)
    before = tree_digest(tree)
    camera = tree / ios_camera_dir(version)
    assert ("contrib/ios_examples" in str(camera)) == (version < "1.3")
    r = cli("ios", "--tf-src", tree, "--model", model, "--labels", labels)
    assert r.code == 0, r.stderr
    text = (camera / "CameraExampleViewController.mm").read_text()
    assert 'static NSString* model_file_name = @"retrained_graph";\n' in text
    assert 'static NSString* model_file_type = @"pb";\n' in text
    assert "const bool model_uses_memory_mapping = false;\n" in text
    assert 'static NSString* labels_file_name = @"retrained_labels";\n' in text
    assert "const int wanted_input_width = 64;\nconst int wanted_input_height = 64;\nconst int wanted_input_channels = 3;\n" in text
    assert "const float input_mean = 128.0f;\nconst float input_std = 128.0f;\n" in text
    assert 'const std::string input_layer_name = "Mul";\nconst std::string output_layer_name = "final_result";\n' in text
    assert (camera / "data" / "retrained_graph.pb").is_file() and (camera / "data" / "retrained_labels.txt").is_file()
    assert "Xcode" in r.stderr and "Copy Bundle Resources" in r.stderr

    mtimes = tree_mtimes(tree)
    r = cli("ios", "--tf-src", tree, "--model", model, "--labels", labels)
    assert r.code == 0 and "nothing rewritten" in r.stderr
    assert tree_mtimes(tree) == mtimes
    assert cli("restore", "--tf-src", tree).code == 0
    assert tree_digest(tree) == before


def test_out_writes_a_patched_copy_and_leaves_the_tree(cli, tf_tree, tmp_path):
    tree = tf_tree("1.3")
    before = tree_digest(tree)
    out = tmp_path / "MyCamera"
    r = cli("ios", "--tf-src", tree, "--out", out)
    assert r.code == 0, r.stderr
    assert tree_digest(tree) == before
    text = (out / "CameraExampleViewController.mm").read_text()
    assert 'model_file_name = @"digits";' in text and (out / "data" / "digits.pb").is_file()
    assert (out / "data" / "grace_hopper.jpg").is_file() and (out / "README.md").is_file()
    assert not (out / ".mobilebuild").exists()
    mtimes = tree_mtimes(out)
    r = cli("ios", "--tf-src", tree, "--out", out)
    assert r.code == 0 and "nothing rewritten" in r.stderr and tree_mtimes(out) == mtimes
    one_line_error(cli("ios", "--tf-src", tree, "--out", tmp_path / "no" / "such" / "dir"))
    one_line_error(cli("ios", "--tf-src", tree, "--out", tree / ios_camera_dir("1.3") / "sub"))
    assert tree_digest(tree) == before


def test_memmapped_model_sets_memory_mapping(cli, tf_tree, retrain_model, tmp_path):
    model, labels = retrain_model
    package = tmp_path / "retrained.mmapped"
    r = cli("model", "memmap", model, "-o", package, "--min-conversion-tensor-size", "16")
    assert r.code == 0, r.stderr
    tree = tf_tree("1.4")
    r = cli("ios", "--tf-src", tree, "--model", package, "--labels", labels)
    assert r.code == 0, r.stderr
    text = (tree / ios_camera_dir("1.4") / "CameraExampleViewController.mm").read_text()
    assert "const bool model_uses_memory_mapping = true;\n" in text
    assert 'model_file_name = @"retrained";\nstatic NSString* model_file_type = @"mmapped";' in text
    # the Android demo cannot load a memmapped package: refused, tree unchanged
    from helpers.tftrees import make_ndk, make_sdk

    sdk, ndk = make_sdk(tmp_path / "sdk"), make_ndk(tmp_path / "ndk")
    before = tree_digest(tree)
    r = cli("android", "--generate-only", "--tf-src", tree, "--sdk", sdk, "--ndk", ndk, "--model", package, "--labels", labels)
    one_line_error(r)
    assert "memory-mapped" in r.stderr
    assert tree_digest(tree) == before


def test_ios_refuses_a_controller_without_a_constant(cli, tf_tree):
    from helpers.tftrees import ios_controller, tree_files

    text = tree_files("1.1")[ios_controller("1.1")].decode().replace("const float input_std = 1.0f;\n", "")
    tree = tf_tree("1.1", extra_files={ios_controller("1.1"): text})
    before = tree_digest(tree)
    r = cli("ios", "--tf-src", tree)
    one_line_error(r)
    assert "no declaration of input_std" in r.stderr and "TensorFlow 1.1.0" in r.stderr
    assert tree_digest(tree) == before


def test_build_is_refused_off_macos_before_anything_changes(cli, tf_tree, monkeypatch):
    import sys

    if sys.platform == "darwin":
        pytest.skip("macOS builds for real")
    monkeypatch.delenv("MOBILEBUILD_IOS_FORCE_HOST", raising=False)
    tree = tf_tree("1.3")
    before = tree_digest(tree)
    r = cli("ios", "--tf-src", tree, "--build")
    one_line_error(r)
    assert "macOS" in r.stderr
    assert tree_digest(tree) == before


def test_out_again_with_another_model_leaves_no_old_model(cli, tf_tree, retrain_model, tmp_path):
    """A second --out into the same copy for another model: the old model and labels leave
    data/ (the app bundles the whole folder); the user's own files elsewhere stay."""
    model, labels = retrain_model
    tree = tf_tree("1.3")
    out = tmp_path / "MyCamera"
    assert cli("ios", "--tf-src", tree, "--out", out).code == 0
    assert (out / "data" / "digits.pb").is_file()
    (out / "Podfile.lock").write_text("user's pod install\n")
    r = cli("ios", "--tf-src", tree, "--out", out, "--model", model, "--labels", labels)
    assert r.code == 0, r.stderr
    data = sorted(p.name for p in (out / "data").iterdir())
    assert "digits.pb" not in data and "labels.txt" not in data
    assert "retrained_graph.pb" in data and "retrained_labels.txt" in data
    assert "grace_hopper.jpg" in data  # the example's own data stays
    assert (out / "Podfile.lock").read_text() == "user's pod install\n"


def test_out_into_an_unrelated_non_empty_dir_is_refused(cli, tf_tree, tmp_path):
    tree = tf_tree("1.3")
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"jpeg")
    r = cli("ios", "--tf-src", tree, "--out", out)
    one_line_error(r)
    assert "is not empty and is not a copy of the camera example" in r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["holiday.jpg"]
