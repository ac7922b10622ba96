"""`workspace`, `android --generate-only`, `android --dry-run`, `ios` and `restore` on trees
shaped like the tags v1.5 - v2.5 (helpers.tftrees): the 1.x demo constants, the SDK/NDK given
the tree's own way (the commented WORKSPACE block up to 1.9, the --action_env values of
android_configure in mobilebuild.bazelrc from 1.10), idempotent, restored byte-exact."""

from __future__ import annotations

import json

import pytest

from helpers.tftrees import ACTIVITY, ANDROID_ASSETS, ios_controller, one_line_error, tree_digest, tree_mtimes

SPAN = ["1.5", "1.9", "1.10", "1.13", "1.15", "2.0", "2.3"]
ACTION_ENV = ("ANDROID_NDK_HOME", "ANDROID_NDK_API_LEVEL", "ANDROID_BUILD_TOOLS_VERSION", "ANDROID_SDK_API_LEVEL", "ANDROID_SDK_HOME")


def _action_env(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if line.startswith("build --action_env "):
            name, _, value = line[len("build --action_env "):].partition("=")
            out[name] = value
    return out


@pytest.mark.parametrize("version", SPAN)
def test_android_ios_restore_on_each_era(cli, tf_tree, sdk, ndk, version):
    tree = tf_tree(version)
    before = tree_digest(tree)
    workspace = (tree / "WORKSPACE").read_bytes()
    r = cli("--json", "android", "--generate-only", "--tf-src", tree, "--sdk", sdk, "--ndk", ndk)
    assert r.code == 0, r.stderr
    data = json.loads(r.stdout)
    text = (tree / ACTIVITY).read_text()
    # the built-in model (32x32 digits) in the demo of 1.4, unchanged up to 2.3
    assert "  private static final int INPUT_SIZE = 32;\n" in text
    assert '  private static final String MODEL_FILE = "file:///android_asset/digits.pb";\n' in text
    assert (tree / ANDROID_ASSETS / "digits.pb").is_file() and (tree / ANDROID_ASSETS / "labels.txt").is_file()
    rc = tree / "mobilebuild.bazelrc"
    if version in ("1.5", "1.9"):
        ws = (tree / "WORKSPACE").read_text()
        assert "android_sdk_repository(" in ws and "#android_sdk_repository(" not in ws
        assert f'path = "{ndk}"' in ws and not rc.exists()
        assert data["workspace"]["mechanism"] == "block"
    else:
        # the tree's own mechanism: WORKSPACE untouched, the five values in the bazelrc
        assert (tree / "WORKSPACE").read_bytes() == workspace
        env = _action_env(rc.read_text())
        assert tuple(env) == ACTION_ENV
        assert env["ANDROID_SDK_HOME"] == str(sdk) and env["ANDROID_NDK_HOME"] == str(ndk)
        assert env["ANDROID_SDK_API_LEVEL"] == "23" and env["ANDROID_BUILD_TOOLS_VERSION"] == "26.0.1"
        assert env["ANDROID_NDK_API_LEVEL"] == "21"  # a platform level, not the NDK revision (12)
        assert data["workspace"]["mechanism"] == "action_env" and data["workspace"]["file"] == "mobilebuild.bazelrc"
        assert "mobilebuild.bazelrc" in data["patch"]["changed"] and "WORKSPACE" not in data["patch"]["changed"]
        # the printed next step passes it
        assert f"--bazelrc={rc}" in r.stderr
    # the model was checked against the Android library's op set of this tag
    assert data["model"]["default_model"] is True

    mtimes = tree_mtimes(tree)
    r = cli("android", "--generate-only", "--tf-src", tree, "--sdk", sdk, "--ndk", ndk)
    assert r.code == 0 and "nothing rewritten" in r.stderr, r.stderr
    assert tree_mtimes(tree) == mtimes

    r = cli("ios", "--tf-src", tree)
    assert r.code == 0, r.stderr
    controller = (tree / ios_controller(version)).read_text()
    assert 'static NSString* model_file_name = @"digits";' in controller
    assert "const int wanted_input_width = 32;" in controller

    assert cli("restore", "--tf-src", tree).code == 0
    assert tree_digest(tree) == before


@pytest.mark.parametrize("version", ["1.10", "2.3"])
def test_workspace_says_what_and_where(cli, tf_tree, sdk, ndk, version):
    tree = tf_tree(version)
    before = tree_digest(tree)
    r = cli("workspace", "--tf-src", tree, "--sdk", sdk, "--ndk", ndk, "--dry-run")
    assert r.code == 0, r.stderr
    assert "--- /dev/null\n+++ b/mobilebuild.bazelrc\n" in r.stdout
    assert f'+build --action_env ANDROID_SDK_HOME={sdk}\n' in r.stdout
    assert tree_digest(tree) == before
    r = cli("workspace", "--tf-src", tree, "--sdk", sdk, "--ndk", ndk)
    assert r.code == 0, r.stderr
    said = " ".join(r.stderr.split())
    assert str(tree / "mobilebuild.bazelrc") in said and "WORKSPACE is unchanged" in said
    assert "android_configure()" in said and f"--bazelrc={tree / 'mobilebuild.bazelrc'}" in said
    r = cli("workspace", "--tf-src", tree, "--sdk", sdk, "--ndk", ndk)
    assert r.code == 0 and "nothing rewritten" in r.stderr
    # without an NDK only the SDK values are written (android_configure then makes no NDK rule)
    r = cli("restore", "--tf-src", tree)
    assert r.code == 0 and "remove mobilebuild.bazelrc" in r.stderr
    assert tree_digest(tree) == before


def test_workspace_block_era_says_where(cli, tf_tree, sdk, ndk):
    tree = tf_tree("1.9")
    r = cli("workspace", "--tf-src", tree, "--sdk", sdk, "--ndk", ndk)
    assert r.code == 0, r.stderr
    assert f"{tree / 'WORKSPACE'}: replaced the commented block" in " ".join(r.stderr.split())


def test_action_env_tree_without_android_configure_is_refused(cli, tf_tree, sdk, ndk):
    from helpers.tftrees import workspace_text

    ws = workspace_text("1.13").replace("android_workspace()\n", "")
    tree = tf_tree("1.13", extra_files={"WORKSPACE": ws})
    before = tree_digest(tree)
    r = cli("workspace", "--tf-src", tree, "--sdk", sdk, "--ndk", ndk)
    one_line_error(r)
    assert "android_workspace()" in r.stderr
    assert tree_digest(tree) == before


def test_action_env_tree_with_a_hand_written_rule_is_refused(cli, tf_tree, sdk, ndk):
    from helpers.tftrees import workspace_text

    ws = workspace_text("1.15") + '\nandroid_sdk_repository(name = "androidsdk", path = "/x")\n'
    tree = tf_tree("1.15", extra_files={"WORKSPACE": ws})
    r = cli("workspace", "--tf-src", tree, "--sdk", sdk)
    one_line_error(r)
    assert "beside android_workspace()" in r.stderr


def _installed_bazel(base, version: str):
    """Bazel as `mobilebuild setup` installs it (PREFIX/bin/bazel + PREFIX/VERSION), standing in
    at the PATH boundary: the dry run only asks it for its version."""
    exe = base / f"bazel-{version}" / "bin" / "bazel"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\nexit 2\n")  # releases before 0.24 have no --version
    exe.chmod(0o755)
    (exe.parent.parent / "VERSION").write_text(version + "\n")
    return exe


@pytest.mark.parametrize("version,bazel", [("1.15", "0.26.1"), ("2.3", "3.1.0"), ("1.9", "0.10.0")])
def test_dry_run_prints_the_bazel_of_the_era_and_the_bazelrc(cli, tf_tree, sdk, ndk, tmp_path, version, bazel):
    tree = tf_tree(version)
    before = tree_digest(tree)
    exe = _installed_bazel(tmp_path, bazel)
    r = cli("android", "--dry-run", "--no-install", "--tf-src", tree, "--sdk", sdk, "--ndk", ndk, "--bazel", exe)
    assert r.code == 0, r.stderr
    assert f"bazel {bazel} ({exe}, via flag); TensorFlow {version}.0 builds with Bazel " in r.stdout
    argv = [ln for ln in r.stdout.splitlines() if ln.startswith("$ ") and " build " in ln]
    assert len(argv) == 1 and "//tensorflow/examples/android:tensorflow_demo" in argv[0] and argv[0].startswith(f"$ {exe}")
    if version == "1.9":
        assert "--bazelrc" not in argv[0]
    else:
        rc = tree / "mobilebuild.bazelrc"
        assert f"bazelrc {rc} (--action_env ANDROID_NDK_HOME, " in r.stdout
        assert f"--bazelrc={rc}" in argv[0] and argv[0].index("--bazelrc") < argv[0].index(" build ")
    assert tree_digest(tree) == before


def test_dry_run_without_the_eras_bazel_names_it(cli, tf_tree, sdk, ndk):
    """No Bazel of the era here (only a newer one may be on PATH): the plan is still shown with
    the era's Bazel, and the missing Bazel is one of the problems (exit 1)."""
    tree = tf_tree("2.3")
    r = cli("android", "--dry-run", "--no-install", "--tf-src", tree, "--sdk", sdk, "--ndk", ndk,
            "--bazel-startup-arg=--max_idle_secs=5")
    assert "the dry run shows the command with Bazel 3.1.0" in r.stdout + r.stderr
    argv = [ln for ln in r.stdout.splitlines() if ln.startswith("$ ") and " build " in ln]
    assert len(argv) == 1 and argv[0].startswith("$ bazel-3.1.0 ")
    assert r.code == 1 and "missing Bazel" in r.stderr


@pytest.mark.parametrize("version", ["2.4", "2.5"])
@pytest.mark.parametrize("command", ["android", "ios"])
def test_demos_removed_in_2_4(cli, tf_tree, sdk, ndk, version, command):
    tree = tf_tree(version)
    before = tree_digest(tree)
    args = ["--sdk", sdk, "--ndk", ndk, "--generate-only"] if command == "android" else []
    # --app tf-mobile: without --app such a tree gets the TFLite demo (see tests of --app tflite)
    r = cli(command, "--tf-src", tree, "--app", "tf-mobile", *args)
    one_line_error(r)
    assert "removed from TensorFlow in 2.4" in r.stderr and "--app tflite" in r.stderr
    assert "complete" not in r.stderr
    assert tree_digest(tree) == before


def test_values_from_an_earlier_configure_are_pointed_out(cli, tf_tree, sdk, ndk):
    rc = 'build --action_env ANDROID_NDK_HOME="/old/ndk"\nbuild --action_env ANDROID_SDK_HOME="/old/sdk"\nbuild --action_env PYTHON_BIN_PATH="/usr/bin/python3"\n'
    tree = tf_tree("1.13", extra_files={".tf_configure.bazelrc": rc})
    r = cli("workspace", "--tf-src", tree, "--sdk", sdk, "--ndk", ndk)
    assert r.code == 0, r.stderr
    said = " ".join(r.stderr.split())
    assert ".tf_configure.bazelrc (written by ./configure) also sets ANDROID_NDK_HOME, ANDROID_SDK_HOME" in said
    assert (tree / ".tf_configure.bazelrc").read_text() == rc  # never edited


def test_remote_cache_settings_join_the_action_env_bazelrc(cli, tf_tree, sdk, ndk, tmp_path):
    """One bazelrc carries everything the build passes: the five values and the remote cache
    settings (a dry run shows it with header values hidden)."""
    tree = tf_tree("1.15")
    exe = _installed_bazel(tmp_path, "0.26.1")
    r = cli("android", "--dry-run", "--no-install", "--tf-src", tree, "--sdk", sdk, "--ndk", ndk, "--bazel", exe,
            "--remote-cache", "http://127.0.0.1:9/cache", "--remote-header", "Authorization=Bearer s3cret")
    assert r.code == 0, r.stderr
    assert "+build --action_env ANDROID_SDK_HOME=" in r.stdout and "+build --remote_cache=http://127.0.0.1:9/cache\n" in r.stdout
    assert "Authorization=***" in r.stdout and "s3cret" not in r.stdout + r.stderr
    assert "(--action_env ANDROID_NDK_HOME, ANDROID_NDK_API_LEVEL, ANDROID_BUILD_TOOLS_VERSION, ANDROID_SDK_API_LEVEL, ANDROID_SDK_HOME + " in r.stdout
    assert not (tree / "mobilebuild.bazelrc").exists()
