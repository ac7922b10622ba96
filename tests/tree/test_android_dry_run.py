"""`mobilebuild android --dry-run` on a machine that has none of the build tools (no Bazel, adb,
SDK or NDK): the whole plan is shown, each missing prerequisite marked where it is needed,
every problem listed at the end with its fix, exit 1, and nothing written."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from helpers.tftrees import ANDROID_ASSETS, tree_digest

STEPS = ["source", "files", "toolchain", "bazel", "device", "model", "patch", "build", "apk", "install", "launch"]


@pytest.fixture
def bare_machine(tmp_path, monkeypatch):
    """PATH with git only (the tree is a git checkout), a HOME with no ~/Android/Sdk."""
    bin_dir = tmp_path / "bare-bin"
    bin_dir.mkdir()
    os.symlink(shutil.which("git"), bin_dir / "git")
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("HOME", str(tmp_path / "bare-home"))
    monkeypatch.chdir(tmp_path)  # no mobilebuild.toml above


def test_dry_run_on_a_bare_machine_shows_the_whole_plan_and_every_problem(cli, tf_tree, bare_machine):
    tree = tf_tree("1.4")
    before = tree_digest(tree)
    r = cli("android", "--tf-src", tree, "--dry-run")
    assert r.code == 1, r.stderr
    out = r.stdout
    # Every step, in order, even those after a missing prerequisite.
    positions = [out.index(f"# {step}: ") for step in STEPS]
    assert positions == sorted(positions)
    # Each missing prerequisite marked at the step that needs it.
    toolchain = out[out.index("# toolchain: "):out.index("# bazel: ")]
    assert "[missing] no Android SDK found" in toolchain and "[missing] no Android NDK found" in toolchain
    assert "[missing] no Bazel found" in out[out.index("# bazel: "):out.index("# device: ")]
    assert "[missing] adb not found" in out[out.index("# device: "):out.index("# model: ")]
    # The commands it would run, with placeholders for what is missing.
    # The Bazel of the tree's era, by name (TF 1.4 pins 0.5.4).
    assert "$ bazel-0.5.4 build --color=no --curses=no -c opt" in out and "//tensorflow/examples/android:tensorflow_demo" in out
    assert "$ adb -s <device> install -r -g " in out and "$ adb -s <device> shell am start -n org.tensorflow.demo/" in out
    # What can be planned without them still is: the model copy and the activity diff.
    assert f"-> {ANDROID_ASSETS}/digits.pb (" in out and "+++ b/tensorflow/examples/android/src/" in out
    assert "[missing] the SDK/NDK settings of the tree" in out and "+++ b/WORKSPACE" not in out
    # All problems at the end, each with its fix; one error line naming them.
    tail = out[out.index("problems (4):"):]
    assert tail.count("    fix: ") == 4
    assert "error: the plan cannot run here: missing Android SDK, Android NDK, Bazel, adb" in r.stderr
    assert "hint: " in r.stderr and "Traceback" not in r.stderr
    assert tree_digest(tree) == before  # nothing written


def test_dry_run_problems_in_json(cli, tf_tree, bare_machine):
    tree = tf_tree("1.4")
    r = cli("--json", "android", "--tf-src", tree, "--dry-run")
    assert r.code == 1
    data = json.loads(r.stdout)  # one object: the plan's result, its problems, the error
    assert [p["what"] for p in data["problems"]] == ["Android SDK", "Android NDK", "Bazel", "adb"]
    assert all(p["hint"] for p in data["problems"]) and data["steps"] == STEPS
    assert data["error"].startswith("the plan cannot run here") and data["bazel"]["via"] == "not installed"
