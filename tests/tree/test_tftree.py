"""Source trees: version detection, unknown versions, --tf-repo clones, the user's git state."""

from __future__ import annotations

import subprocess

import git
import pytest

from helpers.tftrees import (
    VERSION_H,
    add_version_commit,
    make_tf_repo,
    one_line_error,
    tree_digest,
)
from mobilebuild.tf import tree as tftree


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2", "1.3", "1.4"])
def test_version_from_version_h_picks_the_profile(tf_tree, version):
    t = tftree.open_tree(str(tf_tree(version)))
    assert t.version == (1, int(version[-1]), 0) and t.version_source == "version.h"
    assert t.profile.family == "tf-mobile-1.x"
    camera = t.profile.get("ios.camera_dir")
    assert camera == ("tensorflow/examples/ios/camera" if version >= "1.3" else "tensorflow/contrib/ios_examples/camera")


def test_version_falls_back_to_the_tag(tf_tree):
    root = tf_tree("1.3", extra_files={VERSION_H: None})
    t = tftree.open_tree(str(root))
    assert t.version == (1, 3, 0) and t.version_source == "tag v1.3.0"


def test_unknown_version_is_refused(cli, tf_tree, sdk):
    h = "#define TF_MAJOR_VERSION 0\n#define TF_MINOR_VERSION 12\n#define TF_PATCH_VERSION 0\n"
    root = tf_tree("1.4", extra_files={VERSION_H: h})
    before = tree_digest(root)
    r = cli("workspace", "--tf-src", root, "--sdk", sdk)
    one_line_error(r)
    assert "TensorFlow 0.12.0 is not supported" in r.stderr and "1.0 <= TF < 1.5" in r.stderr
    assert tree_digest(root) == before


def test_tree_without_version_is_refused(cli, tf_tree, sdk):
    root = tf_tree("1.2", with_git=False, extra_files={VERSION_H: None})
    r = cli("workspace", "--tf-src", root, "--sdk", sdk)
    one_line_error(r)
    assert "cannot tell the TensorFlow version" in r.stderr


def test_not_a_tree(cli, tmp_path, sdk):
    one_line_error(cli("workspace", "--tf-src", tmp_path / "missing", "--sdk", sdk))
    (tmp_path / "empty").mkdir()
    r = cli("workspace", "--tf-src", tmp_path / "empty", "--sdk", sdk)
    one_line_error(r)
    assert "not a TensorFlow source tree" in r.stderr
    one_line_error(cli("workspace", "--sdk", sdk))  # no tree at all


def test_a_directory_inside_a_tree_names_the_root(cli, tf_tree, sdk):
    root = tf_tree("1.2")
    before = tree_digest(root)
    r = cli("workspace", "--tf-src", root / "tensorflow" / "examples", "--sdk", sdk)
    one_line_error(r)
    assert f"pass the root of the checkout: --tf-src {root.resolve()}" in r.stderr
    assert tree_digest(root) == before


def test_user_checkout_git_state_is_never_changed(cli, tf_tree, sdk, ndk):
    root = tf_tree("1.1")
    repo = git.Repo(root)
    head, index = repo.head.commit.hexsha, (root / ".git" / "index").read_bytes()
    (root / "WORKSPACE").write_text((root / "WORKSPACE").read_text() + "# my local note\n")
    r = cli("workspace", "--tf-src", root, "--sdk", sdk, "--ndk", ndk)
    assert r.code == 0, r.stderr
    assert "warning: WORKSPACE has uncommitted changes" in r.stderr
    assert "# my local note\n" in (root / "WORKSPACE").read_text()
    r = cli("workspace", "--tf-src", root, "--sdk", sdk, "--ndk", ndk)
    assert "uncommitted" not in r.stderr  # our own change is not reported as the user's
    assert repo.head.commit.hexsha == head and not repo.head.is_detached
    assert (root / ".git" / "index").read_bytes() == index
    assert repo.git.stash("list") == ""
    # our bookkeeping dir is invisible to git status; only the patched file shows
    assert repo.git.status("--porcelain") == " M WORKSPACE"
    assert cli("restore", "--tf-src", root).code == 0
    assert (root / "WORKSPACE").read_text().endswith("# my local note\n")


# ---- --tf-repo / --tf-ref -------------------------------------------------------------------------


@pytest.fixture
def origin(tmp_path):
    return make_tf_repo(tmp_path / "origin", versions=("1.0", "1.1", "1.2"))


def test_clone_from_a_local_path_once_and_reuse(cli, origin, sdk, ndk):
    from mobilebuild.tf.tree import mirror_dir, worktree_dir

    r = cli("workspace", "--tf-repo", origin, "--tf-ref", "v1.1.0", "--sdk", sdk, "--ndk", ndk)
    assert r.code == 0, r.stderr
    assert "cloning" in r.stderr and "TensorFlow 1.1.0" in r.stderr
    mirror = mirror_dir(str(origin))
    work = worktree_dir(str(origin), "v1.1.0")
    assert (mirror / "HEAD").is_file() and (work / "WORKSPACE").is_file()
    assert "android_sdk_repository(\n" in (work / "WORKSPACE").read_text()
    inode = mirror.stat().st_ino

    # Same repo, same ref: the clone and the worktree are reused, nothing cloned or fetched.
    r = cli("workspace", "--tf-repo", origin, "--tf-ref", "v1.1.0", "--sdk", sdk, "--ndk", ndk)
    assert r.code == 0, r.stderr
    assert "cloning" not in r.stderr and "fetching" not in r.stderr and "nothing rewritten" in r.stderr
    assert mirror.stat().st_ino == inode


def test_file_url_clone_reuse_and_fetch_only_when_missing(cli, origin, sdk, ndk):
    from mobilebuild.tf.tree import mirror_dir, worktree_dir

    url = origin.as_uri()
    assert url.startswith("file://")
    r = cli("workspace", "--tf-repo", url, "--tf-ref", "v1.2.0", "--sdk", sdk, "--ndk", ndk)
    assert r.code == 0, r.stderr
    mirror = mirror_dir(url)
    stamp = (mirror / "HEAD").stat().st_mtime_ns
    packs = sorted(p.name for p in (mirror / "objects" / "pack").iterdir())

    # Only the one ref was fetched (a TensorFlow clone must not bring every branch and tag).
    tags = subprocess.run(["git", "tag"], cwd=mirror, capture_output=True, text=True, check=True).stdout.split()
    assert tags == ["v1.2.0"]

    # Present ref: no network at all — works with the origin gone; the worktree is reused as
    # it is (already patched: nothing rewritten).
    away = origin.with_name("origin-away")
    origin.rename(away)
    r = cli("workspace", "--tf-repo", url, "--tf-ref", "v1.2.0", "--sdk", sdk, "--ndk", ndk)
    assert r.code == 0 and "nothing rewritten" in r.stderr
    assert "cloning" not in r.stderr and "fetching" not in r.stderr
    away.rename(origin)
    r = cli("workspace", "--tf-repo", url, "--tf-ref", "v1.0.0", "--sdk", sdk, "--ndk", ndk)
    assert r.code == 0, r.stderr
    assert "fetching" in r.stderr and (worktree_dir(url, "v1.0.0") / "WORKSPACE").is_file()

    # A ref the clone lacks: fetched, then used.
    add_version_commit(origin, "1.3")
    r = cli("workspace", "--tf-repo", url, "--tf-ref", "v1.3.0", "--sdk", sdk, "--ndk", ndk)
    assert r.code == 0, r.stderr
    assert "fetching" in r.stderr and "cloning" not in r.stderr and "TensorFlow 1.3.0" in r.stderr
    assert (mirror / "HEAD").stat().st_mtime_ns == stamp
    assert set(packs) <= {p.name for p in (mirror / "objects" / "pack").iterdir()}

    # restore works on the cached checkout too
    work = worktree_dir(url, "v1.3.0")
    assert cli("restore", "--tf-repo", url, "--tf-ref", "v1.3.0").code == 0
    assert git.Repo(work).git.status("--porcelain") == ""
    # a ref never checked out is not cloned or fetched just to restore it
    r = cli("restore", "--tf-repo", url, "--tf-ref", "v1.4.0")
    one_line_error(r)
    assert "no cached checkout" in r.stderr and "fetching" not in r.stderr
    assert not worktree_dir(url, "v1.4.0").exists()


def test_missing_ref_and_bad_repo(cli, origin, sdk, tmp_path):
    r = cli("workspace", "--tf-repo", origin.as_uri(), "--tf-ref", "v9.9.9", "--sdk", sdk)
    one_line_error(r)
    assert "ref v9.9.9 not found" in r.stderr and "ls-remote" in r.stderr
    r = cli("workspace", "--tf-repo", (tmp_path / "nothing-here").as_uri(), "--tf-ref", "v1.0.0", "--sdk", sdk)
    one_line_error(r)
    assert "could not clone" in r.stderr and "does not appear to be a git repository" in r.stderr
    one_line_error(cli("workspace", "--tf-repo", origin, "--sdk", sdk))  # no --tf-ref


def test_clone_waits_for_another_run_of_the_same_repo(origin):
    """A second run with the same --tf-repo waits on the repo lock instead of creating the same
    temporary clone beside the first (held here, as the first run would hold it)."""
    import threading

    from mobilebuild.fsutil import exclusive_lock
    from mobilebuild.paths import cache_dir
    from mobilebuild.tf.tree import _cache_key, _normalise_url, mirror_dir

    lock = cache_dir() / "locks" / f"repo-{_cache_key(_normalise_url(str(origin)))}.lock"
    results: list = []
    with exclusive_lock(lock):
        runner = threading.Thread(target=lambda: results.append(tftree.clone_at_ref(str(origin), "v1.1.0")))
        runner.start()
        runner.join(timeout=2)
        assert runner.is_alive() and not results  # blocked on the lock
        assert not mirror_dir(str(origin)).exists()
        assert not mirror_dir(str(origin)).with_name(mirror_dir(str(origin)).name + ".partial").exists()
    runner.join(timeout=120)
    assert results and (results[0] / "WORKSPACE").is_file()
