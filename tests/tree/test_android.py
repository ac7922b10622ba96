"""`mobilebuild android --generate-only` on trees of every tag, with retrain-shaped and default models."""

from __future__ import annotations

import hashlib
import json

import pytest

from helpers.tftrees import ACTIVITY, ANDROID_ASSETS, VERSIONS, one_line_error, tree_digest, tree_mtimes


def _gen(cli, tree, sdk, ndk, *args):
    return cli("android", "--generate-only", "--tf-src", tree, "--sdk", sdk, "--ndk", ndk, *args)


def _graph_ops(path) -> set[str]:
    from tensorflow.core.framework import graph_pb2

    gd = graph_pb2.GraphDef()
    gd.ParseFromString(path.read_bytes())
    return {n.op for n in gd.node}


@pytest.mark.parametrize("version", VERSIONS)
def test_retrained_model_on_every_tag(cli, tf_tree, sdk, ndk, retrain_model, version):
    model, labels = retrain_model
    model_sha = hashlib.sha256(model.read_bytes()).hexdigest()
    tree = tf_tree(version)
    before = tree_digest(tree)
    r = _gen(cli, tree, sdk, ndk, "--model", model, "--labels", labels)
    assert r.code == 0, r.stderr
    text = (tree / ACTIVITY).read_text()
    suffix = ":0" if version == "1.0" else ""
    assert "  private static final int INPUT_SIZE = 64;\n" in text
    # v1.0.0 still declares NUM_CLASSES (its classifier took the class count): set from the model
    assert ("  private static final int NUM_CLASSES = 5;\n" in text) == (version == "1.0")
    assert "NUM_CLASSES" not in text or version == "1.0"
    assert "  private static final int IMAGE_MEAN = 128;\n" in text
    assert "  private static final float IMAGE_STD = 128.0f;\n" in text
    assert f'  private static final String INPUT_NAME = "Mul{suffix}";\n' in text
    assert f'  private static final String OUTPUT_NAME = "final_result{suffix}";\n' in text
    assert '  private static final String MODEL_FILE = "file:///android_asset/retrained_graph.pb";\n' in text
    assert '  private static final String LABEL_FILE =\n      "file:///android_asset/retrained_labels.txt";\n' in text
    # The app's copy is cut at Mul (no DecodeJpeg: no kernel on the phone); the user's file is untouched.
    asset = tree / ANDROID_ASSETS / "retrained_graph.pb"
    assert "DecodeJpeg" not in _graph_ops(asset) and "DecodeJpeg" in _graph_ops(model)
    assert hashlib.sha256(model.read_bytes()).hexdigest() == model_sha
    assert (tree / ANDROID_ASSETS / "retrained_labels.txt").read_bytes() == labels.read_bytes()
    assert "cut the graph at 'Mul'" in r.stderr
    assert "android_sdk_repository(" in (tree / "WORKSPACE").read_text()

    # Second run: nothing rewritten, no mtime moves.
    mtimes = tree_mtimes(tree)
    r = _gen(cli, tree, sdk, ndk, "--model", model, "--labels", labels)
    assert r.code == 0 and "nothing rewritten" in r.stderr
    assert tree_mtimes(tree) == mtimes

    # restore: byte-identical to the checkout
    assert cli("restore", "--tf-src", tree).code == 0
    assert tree_digest(tree) == before


def test_default_model_dry_run_then_json(cli, tf_tree, sdk, ndk):
    tree = tf_tree("1.4")
    before = tree_digest(tree)
    r = _gen(cli, tree, sdk, ndk, "--dry-run")
    assert r.code == 0, r.stderr
    assert "--- a/WORKSPACE\n+++ b/WORKSPACE\n" in r.stdout
    assert f"--- a/{ACTIVITY}\n+++ b/{ACTIVITY}\n" in r.stdout
    assert '-  private static final String OUTPUT_NAME = "output";\n' in r.stdout
    assert f"-> {ANDROID_ASSETS}/digits.pb (" in r.stdout and f"-> {ANDROID_ASSETS}/labels.txt (" in r.stdout
    assert tree_digest(tree) == before

    r = cli("--json", "android", "--generate-only", "--tf-src", tree, "--sdk", sdk, "--ndk", ndk)
    assert r.code == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["model"]["default_model"] is True and data["tree"]["version"] == "1.4.0"
    assert sorted(data["patch"]["changed"]) == sorted(["WORKSPACE", ACTIVITY, f"{ANDROID_ASSETS}/digits.pb", f"{ANDROID_ASSETS}/labels.txt"])
    assert data["steps"] == ["source", "files", "toolchain", "model", "patch"]
    labels = (tree / ANDROID_ASSETS / "labels.txt").read_text().split()
    assert data["model"]["num_classes"] == len(labels)


def test_switching_models_removes_the_old_assets_and_restore_is_exact(cli, tf_tree, sdk, ndk, retrain_model):
    model, labels = retrain_model
    tree = tf_tree("1.2")
    before = tree_digest(tree)
    assert _gen(cli, tree, sdk, ndk, "--model", model, "--labels", labels).code == 0
    r = _gen(cli, tree, sdk, ndk)  # back to the default model
    assert r.code == 0, r.stderr
    assets = sorted(p.name for p in (tree / ANDROID_ASSETS).iterdir())
    assert assets == ["BUILD", "digits.pb", "labels.txt"]
    assert cli("restore", "--tf-src", tree).code == 0
    assert tree_digest(tree) == before


def test_command_line_values_win(cli, tf_tree, sdk, ndk, retrain_model):
    model, labels = retrain_model
    tree = tf_tree("1.3")
    r = _gen(cli, tree, sdk, ndk, "--model", model, "--labels", labels, "--mean", "127.0", "--std", "127.5")
    assert r.code == 0, r.stderr
    text = (tree / ACTIVITY).read_text()
    assert "IMAGE_MEAN = 127;" in text and "IMAGE_STD = 127.5f;" in text


def test_label_file_name_with_a_quote(cli, tf_tree, sdk, ndk, retrain_model, tmp_path):
    """Android: old Bazel cannot glob such a name into a label -> refused up front (the Java
    escaping itself is proven by test_patching's javac test). iOS: escaped into the NSString."""
    model, labels = retrain_model
    quoted = tmp_path / 'my "flower" labels.txt'
    quoted.write_bytes(labels.read_bytes())
    tree = tf_tree("1.3")
    before = tree_digest(tree)
    r = _gen(cli, tree, sdk, ndk, "--model", model, "--labels", quoted)
    one_line_error(r)
    assert "cannot be an Android asset" in r.stderr and "my__flower__labels.txt" in r.stderr
    assert tree_digest(tree) == before
    r = cli("ios", "--tf-src", tree, "--model", model, "--labels", quoted)
    assert r.code == 0, r.stderr
    from helpers.tftrees import ios_controller

    text = (tree / ios_controller("1.3")).read_text()
    assert 'static NSString* labels_file_name = @"my \\"flower\\" labels";\n' in text


@pytest.mark.parametrize(
    "args,message",
    [
        (("--mean", "127.5"), "IMAGE_MEAN is an int"),
        (("--labels-lines", "3"), "has 3 lines but the model outputs 5 classes"),
        (("--no-labels",), "needs --labels"),
        (("--model-missing",), "model file not found"),
        (("--quantize", "sixbit"), "unknown quantize mode"),
        (("--std", "0"), "divide every pixel by zero"),
        (("--std", "nan"), "--std nan is not a number"),
        (("--mean", "inf"), "--mean inf is not a number"),
    ],
)
def test_bad_model_inputs_leave_the_tree_alone(cli, tf_tree, sdk, ndk, retrain_model, tmp_path, args, message):
    model, labels = retrain_model
    argv = ["--model", str(model), "--labels", str(labels)]
    if args == ("--labels-lines", "3"):
        short = tmp_path / "labels3.txt"
        short.write_text("a\nb\nc\n")
        argv = ["--model", str(model), "--labels", str(short)]
    elif args == ("--no-labels",):
        argv = ["--model", str(model)]
    elif args == ("--model-missing",):
        argv = ["--model", str(tmp_path / "nope.pb"), "--labels", str(labels)]
    else:
        argv += list(args)
    tree = tf_tree("1.1")
    before = tree_digest(tree)
    r = _gen(cli, tree, sdk, ndk, *argv)
    one_line_error(r)
    assert message in r.stderr
    assert tree_digest(tree) == before


def test_rerun_reuses_the_prepared_model_without_importing_tensorflow(cli, tf_tree, sdk, ndk, retrain_model):
    import subprocess
    import sys

    model, labels = retrain_model
    tree = tf_tree("1.1")
    argv = ["android", "--generate-only", "--tf-src", str(tree), "--sdk", str(sdk), "--ndk", str(ndk),
            "--model", str(model), "--labels", str(labels)]
    assert cli(*argv).code == 0
    mtimes = tree_mtimes(tree)
    code = (
        "import sys; from mobilebuild.cli import run; rc = run(sys.argv[1:]);"
        "print('TF' if 'tensorflow' in sys.modules else 'noTF'); sys.exit(rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "noTF"
    assert "reused the copy prepared by an earlier run" in proc.stderr and "nothing rewritten" in proc.stderr
    assert tree_mtimes(tree) == mtimes
    # other options: prepared again, and the constants follow
    r = cli(*argv, "--input-size", "80")
    assert r.code == 0, r.stderr
    assert "reused" not in r.stderr and "INPUT_SIZE = 80;" in (tree / ACTIVITY).read_text()


def test_a_model_kept_where_the_app_copy_goes_is_never_overwritten(cli, tf_tree, sdk, ndk, retrain_model):
    model, labels = retrain_model
    tree = tf_tree("1.2")
    inside = tree / ANDROID_ASSETS / model.name
    inside.write_bytes(model.read_bytes())
    before = tree_digest(tree)
    r = _gen(cli, tree, sdk, ndk, "--model", inside, "--labels", labels)
    one_line_error(r)
    assert "where mobilebuild writes the app's prepared copy" in r.stderr and "move your model out" in r.stderr
    assert tree_digest(tree) == before
    from helpers.tftrees import ios_camera_dir

    data = tree / ios_camera_dir("1.2") / "data"
    (data / model.name).write_bytes(model.read_bytes())
    before = tree_digest(tree)
    one_line_error(cli("ios", "--tf-src", tree, "--model", data / model.name, "--labels", labels))
    assert tree_digest(tree) == before


def test_android_takes_the_workspace_options(cli, tf_tree, sdk, ndk):
    tree = tf_tree("1.4")
    r = _gen(cli, tree, sdk, ndk, "--api-level", "25", "--build-tools", "25.0.1", "--ndk-api-level", "21")
    assert r.code == 0, r.stderr
    text = (tree / "WORKSPACE").read_text()
    assert '    api_level = 25,\n    build_tools_version = "25.0.1",\n' in text
    assert "    api_level = 21,\n)\n# END mobilebuild android repositories" in text
    before = tree_digest(tree)
    one_line_error(_gen(cli, tree, sdk, ndk, "--api-level", "19"))  # not installed
    one_line_error(_gen(cli, tree, sdk, ndk, "--ndk-api-level", "9"))  # below the minimum
    assert tree_digest(tree) == before


def test_a_64_bit_cpu_gets_the_ndk_api_level_its_platforms_start_at(cli, tf_tree, sdk, ndk):
    """The NDK has arch-arm64 / arch-x86_64 only from android-21: api_level 14 cannot build them."""
    from mobilebuild.profiles import load_profile
    from mobilebuild.tf.workspace import choose_ndk_api_level

    p = load_profile("1.4")
    assert choose_ndk_api_level(p, None) == 14 and choose_ndk_api_level(p, None, "armeabi-v7a") == 14
    assert choose_ndk_api_level(p, None, "arm64-v8a") == 21 and choose_ndk_api_level(p, 24, "x86_64") == 24
    tree = tf_tree("1.4")
    r = _gen(cli, tree, sdk, ndk, "--cpu", "arm64-v8a")
    assert r.code == 0, r.stderr
    assert "    api_level = 21,\n)\n# END mobilebuild android repositories" in (tree / "WORKSPACE").read_text()
    before = tree_digest(tree)
    r = _gen(cli, tree, sdk, ndk, "--cpu", "x86_64", "--ndk-api-level", "14")
    one_line_error(r)
    assert "below the 21 --cpu x86_64 (64-bit) needs" in r.stderr
    assert tree_digest(tree) == before
