"""`mobilebuild cache info|clean`: a cache filled by the real code paths (a verified download, a
worktree cloned from a git repo, a log), sizes and ages reported on stdout or as JSON, cleaning
by age, and entries a running command holds left alone."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time

import pytest

from mobilebuild.paths import cache_dir, new_log_path

DAY = 86400


def _git(cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env=dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@e", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@e"))


@pytest.fixture
def filled_cache(tmp_path):
    from mobilebuild.net.downloads import fetch
    from mobilebuild.tf.tree import clone_at_ref, mirror_dir

    blob = os.urandom(5000)
    src = tmp_path / "mirror" / "archive.tar.gz"
    src.parent.mkdir()
    src.write_bytes(blob)
    download = fetch(str(src), sha256=hashlib.sha256(blob).hexdigest())
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "README").write_text("tensorflow-ish\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "one")
    _git(repo, "tag", "v1.0.0")
    work = clone_at_ref(str(repo), "v1.0.0")
    log = new_log_path("bazel-build")
    log.write_text("INFO: Build completed successfully\n")
    prepared = cache_dir() / "prepared" / ("ab" * 16)
    prepared.mkdir(parents=True)
    (prepared / "retrained_graph.pb").write_bytes(b"\0" * 3000)
    return {"download": download, "work": work, "mirror": mirror_dir(str(repo)), "log": log,
            "prepared": prepared, "repo": repo}


def _age(path, days):
    t = time.time() - days * DAY
    os.utime(path, (t, t))


def test_info_lists_every_kind_on_stdout_and_as_json(cli, filled_cache):
    r = cli("--json", "cache", "info")
    assert r.code == 0, r.stderr
    info = json.loads(r.stdout)
    kinds = info["kinds"]
    assert kinds["downloads"]["entries"] == 1 and kinds["downloads"]["bytes"] >= 5000
    assert kinds["prepared"] == {"path": str(cache_dir() / "prepared"), "entries": 1, "bytes": 3000, "oldest_days": 0.0}
    assert kinds["logs"]["entries"] == 1
    assert kinds["worktrees"]["entries"] == 2  # the checkout and the clone it came from
    assert info["total_bytes"] == sum(k["bytes"] for k in kinds.values())
    r = cli("cache", "info")
    assert r.code == 0 and "downloads" in r.stdout and "worktrees" in r.stdout and "3.0 kB" in r.stdout


def test_clean_older_than_removes_only_what_was_not_used(cli, filled_cache):
    f = filled_cache
    _age(f["log"], 40)
    _age(f["prepared"], 40)
    _age(f["download"].parent, 10)
    log_bytes = f["log"].stat().st_size
    r = cli("--json", "cache", "clean", "--older-than", "30d")
    assert r.code == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["removed"]["logs"] == [str(f["log"])] and res["removed"]["prepared"] == [str(f["prepared"])]
    assert res["removed"]["downloads"] == [] and res["removed"]["worktrees"] == []
    assert res["total_freed_bytes"] == log_bytes + 3000
    assert not f["log"].exists() and not f["prepared"].exists() and f["download"].is_file()
    # Using a download marks it: an old entry that is reused is not old any more.
    from mobilebuild.net.downloads import fetch

    _age(f["download"].parent, 40)
    fetch(str(f["download"]), sha256=hashlib.sha256(f["download"].read_bytes()).hexdigest())
    r = cli("--json", "cache", "clean", "downloads", "--older-than", "30d")
    assert json.loads(r.stdout)["removed"]["downloads"] == [] and f["download"].is_file()
    # A clean that was cut short left a renamed directory: the next clean takes it.
    leftover = cache_dir() / "prepared" / ".removing-cd-123"
    (leftover / "sub").mkdir(parents=True)
    _age(leftover, 40)
    r = cli("--json", "cache", "clean", "prepared", "--older-than", "30d")
    assert json.loads(r.stdout)["removed"]["prepared"] == [str(leftover)] and not leftover.exists()
    # Idempotent: nothing left that old, nothing removed.
    again = json.loads(cli("--json", "cache", "clean", "--older-than", "30d").stdout)
    assert again["total_freed_bytes"] == 0


def test_clean_worktrees_keeps_one_in_use_and_prunes_git_records(cli, filled_cache):
    from mobilebuild.fsutil import exclusive_lock
    from mobilebuild.tf.patching import tree_lock_path

    f = filled_cache
    with exclusive_lock(tree_lock_path(f["work"]), wait=False):  # `android` patching that tree
        r = cli("cache", "clean", "worktrees")
        assert r.code == 0, r.stderr
        assert f"kept {f['work']}: a running mobilebuild command uses it" in r.stderr
        assert f["work"].is_dir() and not f["mirror"].exists()
    assert f"removed {f['mirror']}" in r.stdout and "worktrees: removed 1 entry" in r.stdout
    r = cli("cache", "clean", "worktrees", "--dry-run")
    assert f"would remove {f['work']}" in r.stdout and f["work"].is_dir()
    r = cli("cache", "clean", "worktrees")
    assert r.code == 0 and not f["work"].exists()
    assert not list((cache_dir() / "tf-src").glob("*"))  # the repo's folder went with its last ref
    # The next run clones again as if nothing had been there.
    from mobilebuild.tf.tree import clone_at_ref

    assert (clone_at_ref(str(f["repo"]), "v1.0.0") / "README").is_file()


def test_clean_refuses_bad_input(cli, filled_cache):
    r = cli("cache", "clean", "--older-than", "soon")
    assert r.code == 1 and "is not a duration" in r.stderr and "hint:" in r.stderr
    r = cli("cache", "clean", "bazel")
    assert r.code == 1 and "unknown cache kind bazel" in r.stderr
    assert filled_cache["log"].exists() and filled_cache["download"].exists()
