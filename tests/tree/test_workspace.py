"""`mobilebuild workspace` on the WORKSPACE of every tag v1.0.0 - v1.4.0."""

from __future__ import annotations

import json

import pytest
from helpers.tftrees import VERSIONS, make_ndk, make_sdk, one_line_error, tree_digest, tree_mtimes, workspace_block

BEGIN = "# BEGIN mobilebuild android repositories"
END = "# END mobilebuild android repositories"


def _split_around_block(text: str, block: str) -> tuple[str, str]:
    assert text.count(block) == 1
    head, tail = text.split(block)
    return head, tail


def _marked(text: str) -> str:
    a = text.index(BEGIN)
    b = text.index(END) + len(END) + 1
    return text[a:b]


@pytest.mark.parametrize("version", VERSIONS)
def test_replaces_each_tags_commented_block(cli, tf_tree, sdk, ndk, version):
    tree = tf_tree(version)
    before = (tree / "WORKSPACE").read_bytes().decode()
    head, tail = _split_around_block(before, workspace_block(version))
    r = cli("workspace", "--tf-src", tree, "--sdk", sdk, "--ndk", ndk)
    assert r.code == 0, r.stderr
    after = (tree / "WORKSPACE").read_bytes().decode()
    # Everything outside the block is byte-identical; the block is ours, uncommented.
    assert after.startswith(head) and after.endswith(tail)
    block = after[len(head) : len(after) - len(tail)]
    assert block.startswith(BEGIN) and block.rstrip("\n").endswith(END)
    assert "\nandroid_sdk_repository(\n" in block and "\nandroid_ndk_repository(\n" in block
    assert f'    path = "{sdk.resolve()}",' in block
    assert f'    path = "{ndk.resolve()}",' in block
    expected_bt = {"1.0": "23.0.1", "1.1": "25.0.1", "1.2": "25.0.2", "1.3": "25.0.2", "1.4": "26.0.1"}[version]
    assert f'build_tools_version = "{expected_bt}"' in block  # the profile's, installed in this SDK
    expected_api = 21 if version == "1.0" else 14
    assert f"    api_level = {expected_api},\n" in block
    assert "#android_sdk_repository(" not in after


@pytest.mark.parametrize("version", ["1.2", "1.4"])
def test_second_run_rewrites_nothing_and_other_sdk_updates_in_place(cli, tf_tree, sdk, ndk, tmp_path, version):
    tree = tf_tree(version)
    ws = tree / "WORKSPACE"
    assert cli("workspace", "--tf-src", tree, "--sdk", sdk, "--ndk", ndk).code == 0
    first = ws.read_bytes()
    mtime = ws.stat().st_mtime_ns
    r = cli("workspace", "--tf-src", tree, "--sdk", sdk, "--ndk", ndk)
    assert r.code == 0 and "nothing rewritten" in r.stderr
    assert ws.stat().st_mtime_ns == mtime and ws.read_bytes() == first

    other = make_sdk(tmp_path / "other sdk", platforms=(24,), build_tools=("25.0.3",))
    r = cli("workspace", "--tf-src", tree, "--sdk", other, "--ndk", ndk, "--ndk-api-level", "21")
    assert r.code == 0, r.stderr
    text = ws.read_text()
    assert text.count(BEGIN) == 1 and text.count("android_sdk_repository(") == 1
    block = _marked(text)
    assert f'path = "{other.resolve()}"' in block and "api_level = 24," in block
    assert 'build_tools_version = "25.0.3"' in block and "    api_level = 21,\n" in block
    # Outside the block nothing moved.
    assert text.replace(block, "") == first.decode().replace(_marked(first.decode()), "")


def test_tree_without_commented_block_gets_a_marked_block_found_again(cli, tf_tree, sdk, ndk, tmp_path):
    tree = tf_tree("1.4", workspace_block=False)
    original = (tree / "WORKSPACE").read_text()
    assert "android_sdk_repository" not in original
    assert cli("workspace", "--tf-src", tree, "--sdk", sdk, "--ndk", ndk).code == 0
    text = (tree / "WORKSPACE").read_text()
    block = _marked(text)
    assert text == original + "\n" + block  # appended after a blank line (no anchor comment)
    other_ndk = make_ndk(tmp_path / "ndk-r13b", "13.1.4529063")
    assert cli("workspace", "--tf-src", tree, "--sdk", sdk, "--ndk", other_ndk).code == 0
    text2 = (tree / "WORKSPACE").read_text()
    assert text2.count(BEGIN) == 1 and str(other_ndk.resolve()) in text2
    assert text2 == original + "\n" + _marked(text2)


def test_no_ndk_renders_only_the_sdk_repository_with_a_warning(cli, tf_tree, sdk):
    tree = tf_tree("1.1")
    r = cli("workspace", "--tf-src", tree, "--sdk", sdk)
    assert r.code == 0, r.stderr
    assert "warning: no Android NDK" in r.stderr and "r12b" in r.stderr
    text = (tree / "WORKSPACE").read_text()
    assert "android_sdk_repository(" in text and "\nandroid_ndk_repository(" not in text


def test_sdk_without_the_profiles_versions_or_adb_is_used_with_warnings(cli, tf_tree, ndk, tmp_path):
    s = make_sdk(tmp_path / "other-sdk", platforms=(21, 24), build_tools=("24.0.3", "25.0.3"), adb=False)
    tree = tf_tree("1.2")
    r = cli("workspace", "--tf-src", tree, "--sdk", s, "--ndk", ndk)
    assert r.code == 0, r.stderr
    assert "android-23 (what TensorFlow 1.2.0 names) is not installed; using android-24" in r.stderr
    assert "build-tools 25.0.2 (what TensorFlow 1.2.0 names) are not installed; using 25.0.3" in r.stderr
    assert "no platform-tools/adb" in r.stderr
    text = (tree / "WORKSPACE").read_text()
    assert "    api_level = 24,\n    build_tools_version = \"25.0.3\",\n" in text
    # asked for explicitly: used as asked, no warning
    r = cli("workspace", "--tf-src", tree, "--sdk", s, "--ndk", ndk, "--api-level", "21", "--build-tools", "24.0.3")
    assert r.code == 0 and "is not installed; using" not in r.stderr
    assert "    api_level = 21,\n    build_tools_version = \"24.0.3\",\n" in (tree / "WORKSPACE").read_text()


def test_ndk_found_next_to_the_sdk(cli, tf_tree, sdk):
    make_ndk(sdk / "ndk" / "12.1.2977051")
    make_ndk(sdk / "ndk" / "9.0.1", "9.0.1")
    tree = tf_tree("1.3")
    r = cli("workspace", "--tf-src", tree, "--sdk", sdk)
    assert r.code == 0, r.stderr
    assert str((sdk / "ndk" / "12.1.2977051").resolve()) in (tree / "WORKSPACE").read_text()


def test_dry_run_prints_a_diff_and_changes_nothing(cli, tf_tree, sdk, ndk):
    tree = tf_tree("1.2")
    before = tree_digest(tree)
    r = cli("workspace", "--tf-src", tree, "--sdk", sdk, "--ndk", ndk, "--dry-run")
    assert r.code == 0, r.stderr
    assert r.stdout.startswith("--- a/WORKSPACE\n+++ b/WORKSPACE\n")
    # the v1.2.0 line with its trailing space is removed by the diff
    assert "-#    # Ensure that you have the build_tools_version below installed in the \n" in r.stdout
    assert "+android_sdk_repository(\n" in r.stdout
    assert tree_digest(tree) == before


def test_json_result(cli, tf_tree, sdk, ndk):
    import json

    tree = tf_tree("1.1")
    r = cli("--json", "workspace", "--tf-src", tree, "--sdk", sdk, "--ndk", ndk)
    assert r.code == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["tree"]["version"] == "1.1.0"
    assert data["workspace"]["how"] == "replaced the commented block"
    assert data["workspace"]["ndk"]["revision"] == "r12b"
    assert data["patch"]["changed"] == ["WORKSPACE"]


def test_restore_puts_the_workspace_back_byte_exactly(cli, tf_tree, sdk, ndk):
    tree = tf_tree("1.2")
    before = tree_digest(tree)
    assert cli("workspace", "--tf-src", tree, "--sdk", sdk, "--ndk", ndk).code == 0
    patched = tree_digest(tree)
    assert patched != before
    r = cli("restore", "--tf-src", tree, "--dry-run")
    assert r.code == 0 and "would restore WORKSPACE" in r.stderr
    assert tree_digest(tree) == patched
    r = cli("restore", "--tf-src", tree)
    assert r.code == 0, r.stderr
    assert tree_digest(tree) == before
    # A second restore has nothing left to do: it succeeds and touches nothing.
    mtimes = tree_mtimes(tree)
    r = cli("--json", "restore", "--tf-src", tree)
    assert r.code == 0 and "nothing to restore" in r.stderr
    assert json.loads(r.stdout) == {"root": str(tree.resolve()), "dry_run": False, "restored": [], "removed": [], "unchanged": [], "edited": []}
    assert tree_digest(tree) == before and tree_mtimes(tree) == mtimes


def test_restore_refuses_a_directory_that_is_not_a_tree(cli, tmp_path):
    (tmp_path / "notes").mkdir()
    r = cli("restore", "--tf-src", tmp_path / "notes")
    one_line_error(r)
    assert "is not a TensorFlow tree" in r.stderr and "never patched it" in r.stderr
    one_line_error(cli("restore", "--tf-src", tmp_path / "nope"))


def test_hand_uncommented_rule_is_refused(cli, tf_tree, sdk, ndk):
    from helpers.tftrees import workspace_text

    text = workspace_text("1.1").replace("#android_sdk_repository(", "android_sdk_repository(", 1)
    tree = tf_tree("1.1", extra_files={"WORKSPACE": text})
    before = tree_digest(tree)
    r = cli("workspace", "--tf-src", tree, "--sdk", sdk, "--ndk", ndk)
    one_line_error(r)
    assert "android_sdk_repository" in r.stderr and "line" in r.stderr
    assert tree_digest(tree) == before


def test_crlf_workspace_keeps_its_line_endings(cli, tf_tree, sdk, ndk):
    from helpers.tftrees import workspace_text

    crlf = workspace_text("1.3").replace("\n", "\r\n")
    tree = tf_tree("1.3", extra_files={"WORKSPACE": crlf.encode()})
    assert cli("workspace", "--tf-src", tree, "--sdk", sdk, "--ndk", ndk).code == 0
    data = (tree / "WORKSPACE").read_bytes()
    assert b"android_sdk_repository(\r\n" in data
    assert data.count(b"\n") == data.count(b"\r\n")


def test_paths_needing_escapes_render_valid_starlark(cli, tf_tree, tmp_path):
    import ast

    odd = make_sdk(tmp_path / 'my "odd" sdk\\dir', platforms=(23,), build_tools=("25.0.2",))
    odd_ndk = make_ndk(tmp_path / "ndk ü")
    tree = tf_tree("1.2")
    assert cli("workspace", "--tf-src", tree, "--sdk", odd, "--ndk", odd_ndk).code == 0
    block = _marked((tree / "WORKSPACE").read_text())
    # Starlark call syntax is a subset of Python's: parse it and read the values back.
    calls = {c.value.func.id: {k.arg: ast.literal_eval(k.value) for k in c.value.keywords}
             for c in ast.parse(block).body}
    assert calls["android_sdk_repository"]["path"] == str(odd.resolve())
    assert calls["android_ndk_repository"]["path"] == str(odd_ndk.resolve())
    assert calls["android_ndk_repository"]["api_level"] == 14


def test_restore_does_not_silently_discard_later_hand_edits(cli, tf_tree, sdk, ndk):
    tree = tf_tree("1.3")
    before = tree_digest(tree)
    assert cli("workspace", "--tf-src", tree, "--sdk", sdk, "--ndk", ndk).code == 0
    ws = tree / "WORKSPACE"
    ws.write_text(ws.read_text() + "# my edit after mobilebuild\n")
    edited = tree_digest(tree)
    # A dry run lists what a restore would do, the hand-edited file marked, and changes nothing.
    r = cli("restore", "--tf-src", tree, "--dry-run")
    assert r.code == 0, r.stderr
    assert "would restore WORKSPACE  (edited by hand since mobilebuild wrote it)" in r.stderr
    assert "refuses without --force" in r.stderr
    assert tree_digest(tree) == edited
    r = cli("restore", "--tf-src", tree)
    one_line_error(r)
    assert "WORKSPACE changed after mobilebuild wrote it" in r.stderr and "--force" in r.stderr
    assert tree_digest(tree) == edited
    assert cli("restore", "--tf-src", tree, "--force").code == 0
    assert tree_digest(tree) == before
