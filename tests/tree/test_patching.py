"""PatchSet (staged, all-or-nothing, idempotent, restorable) and constant declarations."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from helpers.tftrees import ACTIVITY, activity_text, ios_controller, one_line_error, tree_digest
from mobilebuild.errors import PatchError
from mobilebuild.tf.patching import PatchSet, declarations_for, restore_tree, set_declarations
from mobilebuild.profiles import load_profile


def test_all_files_change_together_or_not_at_all(tf_tree, tmp_path, monkeypatch):
    root = tf_tree("1.1")
    before = tree_digest(root)
    src = tmp_path / "model.pb"
    src.write_bytes(b"\x0a\x03abc")
    ps = PatchSet(root)
    ps.edit("WORKSPACE", "first\n")
    ps.edit(ACTIVITY, "second\n")
    ps.copy(src, "tensorflow/examples/android/assets/model.pb")

    real_replace = os.replace
    calls = []

    def failing_replace(a, b):
        if ".mobilebuild" not in str(b):
            calls.append(b)
            if len(calls) == 3:  # the third rename into the tree fails (disk full, say)
                raise OSError(28, "No space left on device", str(b))
        return real_replace(a, b)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(PatchError, match="No space left"):
        ps.apply()
    monkeypatch.setattr(os, "replace", real_replace)
    # The two files already renamed got their old bytes back; no temp files left behind.
    assert len(calls) == 5  # 3 renames forward (the 3rd failed), 2 back
    assert tree_digest(root) == before
    leftovers = [p for p in root.rglob("*") if ".mbstage" in p.name or ".mbold" in p.name]
    assert leftovers == []
    # and a retry succeeds, restore returns everything
    assert sorted(ps.apply().changed) == sorted(["WORKSPACE", ACTIVITY, "tensorflow/examples/android/assets/model.pb"])
    assert ps.apply().changed == []
    restore_tree(root)
    assert tree_digest(root) == before


def test_restore_removes_created_dirs_and_keeps_modes(tf_tree, tmp_path):
    root = tf_tree("1.3")
    (root / "WORKSPACE").chmod(0o600)
    before = tree_digest(root)
    src = tmp_path / "labels.txt"
    src.write_text("a\nb\n")
    ps = PatchSet(root)
    ps.copy(src, "tensorflow/examples/ios/camera/newdir/sub/labels.txt")
    ps.edit("WORKSPACE", "x\n")
    ps.apply()
    assert (root / "tensorflow/examples/ios/camera/newdir/sub/labels.txt").read_text() == "a\nb\n"
    res = restore_tree(root)
    assert res.removed == ["tensorflow/examples/ios/camera/newdir/sub/labels.txt"] and res.restored == ["WORKSPACE"]
    assert tree_digest(root) == before


def _java_decls(version: str, **values):
    p = load_profile(version)
    return p, declarations_for(
        p.require("android.constants"), values, literal_template=p.require("android.literal_template"), file_label=ACTIVITY
    )


def test_declarations_keep_the_layout_of_each_line():
    p, decls = _java_decls(
        "1.1",
        input_size=299,
        mean=128,
        std=128,
        input_name="Mul",
        output_name="final_result",
        model_asset_url="file:///android_asset/graph.pb",
        labels_asset_url="file:///android_asset/labels.txt",
    )
    old = activity_text("1.1")
    new = set_declarations(old, decls, pattern=p.require("android.declaration"), file_label=ACTIVITY, expected="x")
    assert "  private static final int INPUT_SIZE = 299;\n" in new
    assert "  private static final int IMAGE_MEAN = 128;\n" in new
    assert "  private static final float IMAGE_STD = 128.0f;\n" in new
    assert '  private static final String INPUT_NAME = "Mul";\n' in new
    # the two-line LABEL_FILE declaration stays two lines
    assert '  private static final String LABEL_FILE =\n      "file:///android_asset/labels.txt";\n' in new
    # the comment above the constants mentions INPUT_NAME = "Mul" too: untouched
    assert '// INPUT_NAME = "Mul", and OUTPUT_NAME = "final_result".' in new
    changed = [ln for ln in new.splitlines() if ln not in old.splitlines()]
    assert len(changed) == 7


@pytest.mark.parametrize(
    "drop,dup,message",
    [(("IMAGE_STD",), (), "no declaration of IMAGE_STD"), ((), ("OUTPUT_NAME",), "OUTPUT_NAME is declared 2 times"),
     (("LABEL_FILE",), (), "no declaration of LABEL_FILE")],
)
def test_missing_or_duplicated_declaration(drop, dup, message):
    p, decls = _java_decls("1.2", std=1.0, output_name="o", labels_asset_url="u")
    text = activity_text("1.2", drop=drop, duplicate=dup)
    with pytest.raises(PatchError, match=message) as info:
        set_declarations(text, decls, pattern=p.require("android.declaration"), file_label=ACTIVITY,
                         expected="the tf-mobile-1.x profile for TensorFlow 1.2.0")
    assert ACTIVITY in info.value.message and "TensorFlow 1.2.0" in info.value.message


def test_mistyped_declaration_is_refused():
    p, decls = _java_decls("1.1", mean=128)
    text = activity_text("1.1").replace("private static final int IMAGE_MEAN", "private static final float IMAGE_MEAN")
    with pytest.raises(PatchError, match="IMAGE_MEAN is declared as float.*expects int"):
        set_declarations(text, decls, pattern=p.require("android.declaration"), file_label=ACTIVITY, expected="profile")


def test_non_integral_mean_is_refused_with_the_reason():
    with pytest.raises(PatchError, match="IMAGE_MEAN is an int") as info:
        _java_decls("1.1", mean=127.5)
    assert "TensorFlowImageClassifier.create() takes an int mean" in info.value.hint


@pytest.mark.skipif(shutil.which("javac") is None, reason="no javac")
def test_escaped_values_compile_in_java(tmp_path):
    """The patched declarations (with quotes, backslashes, non-ASCII) are valid Java and keep the
    exact strings: compile them with the real javac and print the values back."""
    tricky_label = 'file:///android_asset/my "best" labels\\v2 ü.txt'
    p, decls = _java_decls(
        "1.4", input_size=224, mean=117, std=1.5, input_name='in"put', output_name="out\\put",
        model_asset_url="file:///android_asset/graph.pb", labels_asset_url=tricky_label,
    )
    new = set_declarations(activity_text("1.4"), decls, pattern=p.require("android.declaration"), file_label=ACTIVITY, expected="x")
    start = new.index("  private static final int INPUT_SIZE")
    end = new.index(";", new.index("LABEL_FILE =")) + 1
    src = (
        "public class Check {\n" + new[start:end] + "\n"
        "  static void create(int inputSize, int imageMean, float imageStd, String in, String out, String m, String l) {\n"
        "    System.out.println(inputSize + \"|\" + imageMean + \"|\" + imageStd + \"|\" + in + \"|\" + out + \"|\" + l);\n"
        "  }\n"
        "  public static void main(String[] a) throws Exception {\n"
        "    System.setOut(new java.io.PrintStream(System.out, true, \"UTF-8\"));\n"
        "    create(INPUT_SIZE, IMAGE_MEAN, IMAGE_STD, INPUT_NAME, OUTPUT_NAME, MODEL_FILE, LABEL_FILE);\n"
        "  }\n}\n"
    )
    (tmp_path / "Check.java").write_text(src, encoding="ascii")  # java_string escapes non-ASCII
    subprocess.run(["javac", "Check.java"], cwd=tmp_path, check=True, capture_output=True)
    out = subprocess.run(["java", "-cp", ".", "Check"], cwd=tmp_path, check=True, capture_output=True).stdout.decode("utf-8")
    assert out.strip() == f'224|117|1.5|in"put|out\\put|{tricky_label}'


def test_objc_declarations_and_escaping():
    p = load_profile("1.3")
    decls = declarations_for(
        p.require("ios.constants"),
        {"model_file_name": 'my "graph"', "model_file_type": "pb", "memory_mapped": True, "labels_file_name": "l",
         "labels_file_type": "txt", "input_size": 299, "channels": 3, "mean": 127.5, "std": 128,
         "input_name": "Mul", "output_name": "final_result"},
        literal_template=p.require("ios.literal_template"), file_label="CameraExampleViewController.mm",
    )
    from helpers.tftrees import tree_files

    old = tree_files("1.3")[ios_controller("1.3")].decode()
    new = set_declarations(old, decls, pattern=p.require("ios.declaration"), file_label="c.mm", expected="x")
    assert 'static NSString* model_file_name = @"my \\"graph\\"";\n' in new
    assert "const bool model_uses_memory_mapping = true;\n" in new
    assert "const int wanted_input_width = 299;\nconst int wanted_input_height = 299;\n" in new
    assert "const float input_mean = 127.5f;\nconst float input_std = 128.0f;\n" in new
    assert 'const std::string output_layer_name = "final_result";\n' in new
    # the if (model_uses_memory_mapping) use further down is not a declaration: untouched
    assert "  if (model_uses_memory_mapping) {\n" in new


def test_android_refuses_a_tree_whose_activity_lacks_a_constant(cli, tf_tree, sdk, ndk):
    root = tf_tree("1.1", extra_files={ACTIVITY: activity_text("1.1", drop=("IMAGE_MEAN",))})
    before = tree_digest(root)
    r = cli("android", "--generate-only", "--tf-src", root, "--sdk", sdk, "--ndk", ndk)
    one_line_error(r)
    assert "no declaration of IMAGE_MEAN" in r.stderr and "TensorFlow 1.1.0" in r.stderr and "ClassifierActivity.java" in r.stderr
    assert tree_digest(root) == before  # WORKSPACE untouched too: all or nothing


def test_android_refuses_an_unknown_version_and_no_ndk(cli, tf_tree, sdk):
    from helpers.tftrees import VERSION_H

    root = tf_tree("1.4", extra_files={VERSION_H: "#define TF_MAJOR_VERSION 2\n#define TF_MINOR_VERSION 0\n#define TF_PATCH_VERSION 0\n"})
    before = tree_digest(root)
    one_line_error(cli("android", "--generate-only", "--tf-src", root, "--sdk", sdk))
    assert tree_digest(root) == before
    root = tf_tree("1.4")
    before = tree_digest(root)
    r = cli("android", "--generate-only", "--tf-src", root, "--sdk", sdk)
    one_line_error(r)
    assert "no Android NDK found" in r.stderr and "r14b" in r.stderr
    assert tree_digest(root) == before


def test_declarations_inside_block_comments_do_not_count():
    p, decls = _java_decls("1.1", input_size=299, mean=128)
    text = activity_text("1.1").replace(
        "  private static final int INPUT_SIZE = 224;\n",
        "  /*\n  private static final int INPUT_SIZE = 299;\n  private static final int IMAGE_MEAN = 128;\n  */\n"
        "  private static final int INPUT_SIZE = 224;\n",
    )
    new = set_declarations(text, decls, pattern=p.require("android.declaration"), file_label=ACTIVITY, expected="x")
    assert "  /*\n  private static final int INPUT_SIZE = 299;\n  private static final int IMAGE_MEAN = 128;\n  */\n" in new
    assert new.count("private static final int INPUT_SIZE = 299;") == 2  # the comment and the real one
    assert "  private static final int IMAGE_MEAN = 128;\n  private static final float" in new


def test_a_second_command_on_the_same_tree_is_refused_while_one_runs(cli, tf_tree, sdk, ndk):
    import subprocess
    import sys

    tree = tf_tree("1.1")
    before = tree_digest(tree)
    # Another process holds the tree's lock (what a running `mobilebuild android` does).
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from mobilebuild.tf.patching import tree_lock\n"
         "with tree_lock(Path(sys.argv[1])):\n    print('locked', flush=True); time.sleep(30)\n", str(tree)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        r = cli("workspace", "--tf-src", tree, "--sdk", sdk, "--ndk", ndk)
        one_line_error(r)
        assert f"(pid {holder.pid})" in r.stderr
        assert tree_digest(tree) == before
    finally:
        holder.kill()
        holder.wait()
    assert cli("workspace", "--tf-src", tree, "--sdk", sdk, "--ndk", ndk).code == 0


@pytest.mark.skipif(shutil.which("g++") is None, reason="no g++")
def test_cpp_declarations_of_the_controller_compile_and_keep_the_exact_strings(tmp_path):
    """The C++ constants of CameraExampleViewController.mm (std::string, float, int, bool) with
    names needing escapes compile with the real g++ and hold the exact values."""
    p = load_profile("1.3")
    tricky = 'in"put\\layer ü?'
    decls = declarations_for(
        p.require("ios.constants"),
        {"memory_mapped": False, "input_size": 224, "channels": 3, "mean": 117.5, "std": 1,
         "input_name": tricky, "output_name": "final_result"},
        literal_template=p.require("ios.literal_template"), file_label="CameraExampleViewController.mm",
    )
    from helpers.tftrees import tree_files

    old = tree_files("1.3")[ios_controller("1.3")].decode()
    new = set_declarations(old, decls, pattern=p.require("ios.declaration"), file_label="c.mm", expected="x")
    cpp_lines = [ln for ln in new.splitlines() if ln.startswith("const ")]
    assert len(cpp_lines) == 8
    src = "#include <iostream>\n#include <string>\n" + "\n".join(cpp_lines) + (
        '\nint main() { std::cout << wanted_input_width << "|" << input_mean << "|" << input_std << "|"'
        ' << model_uses_memory_mapping << "|" << input_layer_name << "|" << output_layer_name; }\n'
    )
    (tmp_path / "c.cc").write_text(src, encoding="ascii")  # c_string escapes non-ASCII
    subprocess.run(["g++", "-Wall", "-Werror", "-o", "c", "c.cc"], cwd=tmp_path, check=True, capture_output=True)
    out = subprocess.run([str(tmp_path / "c")], check=True, capture_output=True).stdout.decode("utf-8")
    assert out == f"224|117.5|1|0|{tricky}|final_result"
