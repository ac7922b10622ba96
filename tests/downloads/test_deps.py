"""`mobilebuild deps`: workspace.bzl parsing, selection, verified download, extraction, patches,
idempotence — against a generated TF tree whose workspace.bzl is in the real v1.1 / v1.4 format
and whose URLs point at the local HTTP server serving archives built here.

googletest is not in workspace.bzl: the profile pins it (the real release tarball's sha256).
The test profile is the shipped TOML with only googletest's URL/sha256 pointed at a test
archive (the real one cannot be fetched here); everything else is the shipped data.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from helpers.archive_builders import make_tar_gz, make_zip, sha256, tree_snapshot
from helpers.httpserver import Fault
from mobilebuild.tf.deps import fetch_deps, parse_workspace_bzl, plan_deps
from mobilebuild.errors import ChecksumError, DownloadError, PatchError
from mobilebuild.paths import TOOLCHAINS_DIR
from mobilebuild.profiles import load_profile

REAL_GTEST_SHA = "58a6f4277ca2bc8565222b3bbd58a177609e9c488e8a72649359ba51450db7d8"
COMPLEX_H = """// Eigen NEON complex packets (test copy)
namespace Eigen { namespace internal {
static uint32x4_t p4ui_CONJ_XOR = vld1q_u32( conj_XOR_DATA );
static uint32x2_t p2ui_CONJ_XOR = vld1_u32( conj_XOR_DATA );
static uint64x2_t p2ul_CONJ_XOR = vld1q_u64( p2ul_conj_XOR_DATA );
} }
"""
AUTOGEN = """#!/bin/sh
# Check that gmock is present.
if test ! -e gmock; then
  curl $curlopts -O https://googlemock.googlecode.com/files/gmock-1.7.0.zip
fi
"""


def dep_archives(version: str) -> dict[str, tuple[str, bytes]]:
    """name -> (file name, archive bytes) with a top dir, BUILD files and the patch targets."""
    eigen = make_tar_gz({
        "eigen-eigen-f3a22f35b044/Eigen/src/Core/arch/NEON/Complex.h": COMPLEX_H,
        "eigen-eigen-f3a22f35b044/Eigen/Core": "// core\n",
        "eigen-eigen-f3a22f35b044/BUILD": "cc_library()\n",
        "eigen-eigen-f3a22f35b044/unsupported/eigen.BUILD": "x\n",
        "eigen-eigen-f3a22f35b044/BUILD.md": "kept: does not end in BUILD\n",
    })
    gem_files = {"gemmlowp-a6f29d8/public/gemmlowp.h": "// gemmlowp\n", "gemmlowp-a6f29d8/BUILD": "x\n"}
    gemmlowp = ("gemmlowp.zip", make_zip(gem_files)) if version == "1.4" else ("a6f29d8.tar.gz", make_tar_gz(gem_files))
    out = {
        "eigen": ("f3a22f35b044.tar.gz", eigen),
        "gemmlowp": gemmlowp,
        "protobuf": ("2b7430d9.tar.gz", make_tar_gz({"protobuf-2b7430d9/autogen.sh": AUTOGEN, "protobuf-2b7430d9/src/google/protobuf/message.h": "//\n", "protobuf-2b7430d9/BUILD": "x\n"})),
        "re2": ("b94b7cd.tar.gz", make_tar_gz({"re2-b94b7cd/re2/re2.h": "//\n", "re2-b94b7cd/BUILD": "x\n"})),
        "googletest": ("release-1.8.0.tar.gz", make_tar_gz({"googletest-release-1.8.0/googletest/include/gtest/gtest.h": "//\n"})),
    }
    if version == "1.4":
        out["nsync"] = ("839fcc53.tar.gz", make_tar_gz({"nsync-839fcc53/public/nsync.h": "//\n", "nsync-839fcc53/BUILD": "x\n"}))
        out["fft2d"] = ("fft.tgz", make_tar_gz({"fft/fftsg.c": "/* ooura */\n", "fft/readme.txt": "fft\n"}))
    return out


def bzl_call(rule: str, name: str, urls: list[str], sha: str, strip_prefix: str | None = None, build_file: str | None = None, patch_file: str | None = None) -> str:
    """One archive call as TensorFlow's workspace.bzl writes it (6-space keyword indent, one
    URL per line; a URL starting with '#' is a commented-out line inside the list)."""
    lines = [f"  {rule}(", f'      name = "{name}",', "      urls = ["]
    lines += [f"          {u}," if u.startswith("#") else f'          "{u}",' for u in urls]
    lines += ["      ],", f'      sha256 = "{sha}",']
    if strip_prefix:
        lines.append(f'      strip_prefix = "{strip_prefix}",')
    if build_file:
        lines.append(f'      build_file = str(Label("{build_file}")),')
    if patch_file:
        lines.append(f'      patch_file = str(Label("{patch_file}")),')
    return "\n".join(lines + ["  )", ""])


def workspace_bzl_v11(base: str, sums: dict[str, str]) -> str:
    """The shape of v1.1.0's tensorflow/workspace.bzl (2-space indent inside tf_workspace):
    each archive lists its bazel-mirror URL, then the original."""

    def urls(path: str) -> list[str]:
        return [f"{base}/bazel-mirror/{path}", f"{base}/{path}"]

    calls = [
        bzl_call("native.new_http_archive", "eigen_archive", urls("bitbucket.org/eigen/eigen/get/f3a22f35b044.tar.gz"), sums["eigen"], "eigen-eigen-f3a22f35b044", "//third_party:eigen.BUILD"),
        bzl_call("native.http_archive", "gemmlowp", urls("github.com/google/gemmlowp/archive/a6f29d8.tar.gz"), sums["gemmlowp"], "gemmlowp-a6f29d8"),
        bzl_call("native.new_http_archive", "farmhash_archive", ["http://bazel-mirror.storage.googleapis.com/github.com/google/farmhash/archive/92e897b.zip"], "0" * 64, "farmhash-92e897b", "//third_party:farmhash.BUILD"),
        bzl_call("native.http_archive", "com_googlesource_code_re2", urls("github.com/google/re2/archive/b94b7cd.tar.gz"), sums["re2"], "re2-b94b7cd"),
        bzl_call("native.http_archive", "protobuf", urls("github.com/google/protobuf/archive/2b7430d9.tar.gz"), sums["protobuf"], "protobuf-2b7430d9"),
    ]
    return """# TensorFlow external dependencies that can be loaded in WORKSPACE files.

load("//third_party/gpus:cuda_configure.bzl", "cuda_configure")
load("//third_party/sycl:sycl_configure.bzl", "sycl_configure")
load("@io_bazel_rules_closure//closure/private:java_import_external.bzl", "java_import_external")

# If TensorFlow is linked as a submodule.
# path_prefix and tf_repo_name are no longer used.
def tf_workspace(path_prefix = "", tf_repo_name = ""):
  cuda_configure(name="local_config_cuda")
  sycl_configure(name="local_config_sycl")
  if path_prefix:
    print("path_prefix was specified to tf_workspace but is no longer used and will be removed in the future.")

""" + "\n".join(calls) + """
  native.bind(
      name = "protobuf_clib",
      actual = "@protobuf//:protoc_lib",
  )
"""


def workspace_bzl_v14(base: str, sums: dict[str, str]) -> str:
    """The shape of v1.4.0's: mirror.bazel.build URLs only (originals commented out inside the
    list), gemmlowp as .zip, protobuf via patched_http_archive, nsync and fft2d."""
    m = f"{base}/mirror.bazel.build"
    calls = [
        bzl_call("native.new_http_archive", "eigen_archive", [f"{m}/bitbucket.org/eigen/eigen/get/f3a22f35b044.tar.gz", '# "https://bitbucket.org/eigen/eigen/get/f3a22f35b044.tar.gz"'], sums["eigen"], "eigen-eigen-f3a22f35b044", "//third_party:eigen.BUILD"),
        bzl_call("native.http_archive", "gemmlowp", [f"{m}/github.com/google/gemmlowp/archive/gemmlowp.zip", '# "https://github.com/google/gemmlowp/archive/gemmlowp.zip"'], sums["gemmlowp"], "gemmlowp-a6f29d8"),
        bzl_call("native.new_http_archive", "fft2d", [f"{m}/www.kurims.kyoto-u.ac.jp/~ooura/fft.tgz", '# "http://www.kurims.kyoto-u.ac.jp/~ooura/fft.tgz"'], sums["fft2d"], build_file="//third_party/fft2d:fft2d.BUILD"),
        bzl_call("native.http_archive", "com_googlesource_code_re2", [f"{m}/github.com/google/re2/archive/b94b7cd.tar.gz"], sums["re2"], "re2-b94b7cd"),
        bzl_call("patched_http_archive", "protobuf_archive", [f"{m}/github.com/google/protobuf/archive/2b7430d9.tar.gz"], sums["protobuf"], "protobuf-2b7430d9", patch_file="//third_party/protobuf:add_noinlines.patch"),
        bzl_call("native.http_archive", "nsync", [f"{m}/github.com/google/nsync/archive/839fcc53.tar.gz"], sums["nsync"], "nsync-839fcc53"),
    ]
    return """# TensorFlow external dependencies that can be loaded in WORKSPACE files.

load("//third_party:repo.bzl", "tf_http_archive")

def tf_workspace(path_prefix="", tf_repo_name=""):
""" + "\n".join(calls)


@pytest.fixture
def tf_tree(tmp_path, server):
    """make_tree("1.1") -> (tree, profile): a TF tree + test profile, archives on the server."""

    def make(version: str = "1.1", dead_host: str | None = None) -> tuple[Path, object]:
        """``dead_host``: workspace.bzl names http://<dead_host>/... (unreachable) and the
        server holds the archives under /mirror/<dead_host>/... (Bazel mirror layout)."""
        arcs = dep_archives(version)
        base = f"http://{dead_host}" if dead_host else server.base
        route_prefix = f"/mirror/{dead_host}" if dead_host else ""
        sums = {}
        for name, (fname, data) in arcs.items():
            sums[name] = sha256(data)
        paths = {
            "eigen": ["/bazel-mirror/bitbucket.org/eigen/eigen/get/", "/mirror.bazel.build/bitbucket.org/eigen/eigen/get/"],
            "gemmlowp": ["/bazel-mirror/github.com/google/gemmlowp/archive/", "/mirror.bazel.build/github.com/google/gemmlowp/archive/"],
            "protobuf": ["/bazel-mirror/github.com/google/protobuf/archive/", "/mirror.bazel.build/github.com/google/protobuf/archive/"],
            "re2": ["/bazel-mirror/github.com/google/re2/archive/", "/mirror.bazel.build/github.com/google/re2/archive/"],
            "nsync": ["/mirror.bazel.build/github.com/google/nsync/archive/"],
            "fft2d": ["/mirror.bazel.build/www.kurims.kyoto-u.ac.jp/~ooura/"],
            "googletest": ["/gtest/"],
        }
        for name, (fname, data) in arcs.items():
            for p in paths[name]:
                server.add((route_prefix if name != "googletest" else "") + p + fname, data)
        tree = tmp_path / f"tensorflow-{version}"
        (tree / "tensorflow/core/public").mkdir(parents=True)
        major, minor = version.split(".")
        (tree / "tensorflow/core/public/version.h").write_text(
            f"#define TF_MAJOR_VERSION {major}\n#define TF_MINOR_VERSION {minor}\n#define TF_PATCH_VERSION 0\n"
        )
        bzl = workspace_bzl_v14(base, sums) if version == "1.4" else workspace_bzl_v11(base, sums)
        (tree / "tensorflow/workspace.bzl").write_text(bzl)
        (tree / "tensorflow/contrib/makefile").mkdir(parents=True)
        prof_dir = tmp_path / f"toolchains-{version}"
        prof_dir.mkdir()
        text = (TOOLCHAINS_DIR / "tf-mobile-1.x.toml").read_text()
        assert text.count(REAL_GTEST_SHA) >= 1
        text = text.replace(REAL_GTEST_SHA, sums["googletest"]).replace(
            "https://github.com/google/googletest/archive/release-1.8.0.tar.gz", server.url("/gtest/release-1.8.0.tar.gz")
        )
        (prof_dir / "tf-mobile-1.x.toml").write_text(text)
        return tree, load_profile(version, directory=prof_dir)

    return make


def test_parse_real_format_and_select_like_the_script(tf_tree, server):
    tree, profile = tf_tree("1.1")
    archives = parse_workspace_bzl((tree / "tensorflow/workspace.bzl").read_text())
    names = [a.name for a in archives]
    assert names == ["eigen_archive", "gemmlowp", "farmhash_archive", "com_googlesource_code_re2", "protobuf"]
    eigen = archives[0]
    assert eigen.rule == "new_http_archive" and eigen.strip_prefix == "eigen-eigen-f3a22f35b044" and len(eigen.urls) == 2
    plans = {p.name: p for p in plan_deps(tree, profile)}
    # The script's URL skips bazel-mirror; the download uses every URL + the sha256.
    assert plans["eigen"].script_url == server.url("/bitbucket.org/eigen/eigen/get/f3a22f35b044.tar.gz")
    assert plans["eigen"].artifact.urls == tuple(eigen.urls)
    assert plans["eigen"].artifact.sha256 == eigen.sha256
    assert plans["googletest"].origin == "profile"


def test_parse_constants_and_maybe_wrapper():
    text = '''
PROTOBUF_URLS = [
    "https://mirror.bazel.build/github.com/google/protobuf/archive/v3.6.0.tar.gz",
]
PROTOBUF_SHA256 = "50a5753995b3142627ac55cfd496cebc418a2e575ca0236e29033c67bd5665f4"
def ws():
    _maybe(native.new_http_archive,
        name = "org_tuxfamily_eigen",
        url = "https://bitbucket.org/eigen/eigen/get/f3a22f35b044.tar.gz",
        sha256 = "ca7beac153d4059c02c8fc59816c82d54ea47fe58365e8aded4082ded0b820c4",
    )
    tf_http_archive(name = "protobuf_archive", urls = PROTOBUF_URLS, sha256 = PROTOBUF_SHA256, strip_prefix = "protobuf-" + "3.6.0")
'''
    a, b = parse_workspace_bzl(text)
    assert a.name == "org_tuxfamily_eigen" and a.urls == ["https://bitbucket.org/eigen/eigen/get/f3a22f35b044.tar.gz"]
    assert b.rule == "tf_http_archive" and b.urls[0].endswith("v3.6.0.tar.gz") and b.strip_prefix == "protobuf-3.6.0"
    assert b.sha256.startswith("50a5")


def test_unparsable_workspace_bzl_is_a_clear_error(tmp_path):
    with pytest.raises(PatchError, match=r"cannot parse .*line 1"):
        parse_workspace_bzl("def (:\n")


@pytest.mark.parametrize("version", ["1.1", "1.4"])
def test_fetch_deps_full_then_idempotent(tf_tree, server, version):
    tree, profile = tf_tree(version)
    report = fetch_deps(tree, profile)
    dl = tree / "tensorflow/contrib/makefile/downloads"
    expected = {"eigen", "gemmlowp", "googletest", "protobuf", "re2"} | ({"nsync", "fft2d"} if version == "1.4" else set())
    assert {d.name for d in report.deps} == expected
    assert all(d.status == "installed" and d.downloaded for d in report.deps)
    # Extracted with the top dir stripped; every *BUILD file gone (BUILD.md kept).
    assert (dl / "eigen/Eigen/Core").is_file()
    assert not (dl / "eigen/BUILD").exists() and not (dl / "eigen/unsupported/eigen.BUILD").exists()
    assert (dl / "eigen/BUILD.md").exists()
    assert not list(dl.rglob("*BUILD"))
    assert (dl / "gemmlowp/public/gemmlowp.h").is_file() and (dl / "googletest/googletest/include/gtest/gtest.h").is_file()
    # The script's patches, each applied exactly once.
    complex_h = (dl / "eigen/Eigen/src/Core/arch/NEON/Complex.h").read_text()
    assert "static uint32x4_t p4ui_CONJ_XOR; // = vld1q_u32( conj_XOR_DATA ); - Removed by script" in complex_h
    assert "static uint32x2_t p2ui_CONJ_XOR;// = vld1_u32( conj_XOR_DATA ); - Removed by scripts" in complex_h
    assert "static uint64x2_t p2ul_CONJ_XOR;// = vld1q_u64( p2ul_conj_XOR_DATA ); - Removed by script" in complex_h
    assert complex_h.count("Removed by script") == 3
    autogen = (dl / "protobuf/autogen.sh").read_text()
    assert "http://download.tensorflow.org/deps/gmock-1.7.0.zip" in autogen and "googlecode" not in autogen
    if version == "1.4":
        assert (dl / "fft2d/fftsg.c").is_file()  # fft.tgz: one component stripped, no strip_prefix
        assert (dl / "nsync/public/nsync.h").is_file()
        protobuf = next(d for d in report.deps if d.name == "protobuf")
        assert "patched_http_archive protobuf_archive" in protobuf.origin
    stamp = json.loads((dl / "eigen/.mobilebuild-deps.json").read_text())
    assert stamp["sha256"] == next(d.sha256 for d in report.deps if d.name == "eigen")
    # Second run: no request, no file rewritten.
    before_requests = len(server.requests)
    snap = tree_snapshot(dl)
    again = fetch_deps(tree, profile)
    assert not again.changed and all(d.status == "up-to-date" for d in again.deps)
    assert len(server.requests) == before_requests
    assert tree_snapshot(dl) == snap


def test_damaged_dep_is_redone_from_the_cache(tf_tree, server):
    tree, profile = tf_tree("1.1")
    fetch_deps(tree, profile)
    dl = tree / "tensorflow/contrib/makefile/downloads"
    (dl / "re2/re2/re2.h").unlink()  # incomplete now
    n = len(server.requests)
    report = fetch_deps(tree, profile)
    status = {d.name: d.status for d in report.deps}
    assert status["re2"] == "installed" and status["eigen"] == "up-to-date"
    assert (dl / "re2/re2/re2.h").is_file()
    assert len(server.requests) == n  # from the content-addressed cache


def test_offline_names_exactly_what_is_missing(tf_tree, server):
    tree, profile = tf_tree("1.1")
    with pytest.raises(DownloadError) as exc:
        fetch_deps(tree, profile, offline=True)
    msg = exc.value.message
    assert "5 of 5 downloads failed" in msg
    for fname in ("f3a22f35b044.tar.gz", "a6f29d8.tar.gz", "release-1.8.0.tar.gz", "2b7430d9.tar.gz", "b94b7cd.tar.gz"):
        assert fname in msg
    assert server.requests == []
    assert not (tree / "tensorflow/contrib/makefile/downloads/eigen").exists()
    # With the cache filled, offline works and touches no network.
    fetch_deps(tree, profile)
    shutil.rmtree(tree / "tensorflow/contrib/makefile/downloads")
    n = len(server.requests)
    report = fetch_deps(tree, profile, offline=True)
    assert all(d.status == "installed" and not d.downloaded for d in report.deps)
    assert len(server.requests) == n


def test_tampered_archive_fails_and_leaves_no_dir(tf_tree, server):
    tree, profile = tf_tree("1.1")
    for p in list(server.routes):
        if p.endswith("b94b7cd.tar.gz"):
            server.fault(p, Fault.wrong_body(make_tar_gz({"re2-x/evil.h": "//"})))
    with pytest.raises(ChecksumError) as exc:
        fetch_deps(tree, profile)
    assert "b94b7cd.tar.gz" in exc.value.message
    assert not (tree / "tensorflow/contrib/makefile/downloads/re2").exists()


def serve_other_eigen(tree: Path, profile, server, archive: bytes) -> None:
    """Replace the eigen archive: the server sends ``archive``, workspace.bzl pins its sha256."""
    bzl = tree / "tensorflow/workspace.bzl"
    old_sum = next(p.artifact.sha256 for p in plan_deps(tree, profile) if p.name == "eigen")
    bzl.write_text(bzl.read_text().replace(old_sum, sha256(archive)))
    for p in list(server.routes):
        if p.endswith("f3a22f35b044.tar.gz"):
            server.add(p, archive)


def test_patch_that_does_not_apply_exactly_once_fails_cleanly(tf_tree, server):
    tree, profile = tf_tree("1.1")
    bad = make_tar_gz({
        "eigen-x/Eigen/src/Core/arch/NEON/Complex.h": COMPLEX_H + COMPLEX_H,  # twice
    })
    serve_other_eigen(tree, profile, server, bad)
    with pytest.raises(PatchError, match="exactly once.*occurs 2 times"):
        fetch_deps(tree, profile)
    dl = tree / "tensorflow/contrib/makefile/downloads"
    assert not (dl / "eigen").exists()
    assert not [p for p in dl.iterdir() if p.name.startswith(".eigen")]  # no staging left


def test_cli_deps_offline_with_the_shipped_profile(cli, tf_tree, server):
    """The real profile pins the real googletest sha256: offline, the CLI lists it missing."""
    tree, _ = tf_tree("1.1")
    r = cli("deps", "--tf-src", tree, "--offline")
    assert r.code == 1
    assert "offline" in r.stderr and REAL_GTEST_SHA in r.stderr.replace("\n", "")
    assert "Traceback" not in r.stderr


def test_cli_deps_offline_reports_only_what_the_cache_lacks(cli, tf_tree, server):
    """After a full run the cache has every archive of workspace.bzl; with the shipped profile
    only googletest (real sha256, not fetchable here) is reported missing."""
    tree, profile = tf_tree("1.1")
    fetch_deps(tree, profile)
    shutil.rmtree(tree / "tensorflow/contrib/makefile/downloads")
    r = cli("deps", "--tf-src", tree, "--offline", "--json")
    assert r.code == 1 and "release-1.8.0.tar.gz" in r.stderr
    assert "f3a22f35b044" not in r.stderr
    failure = json.loads(r.stdout)  # --json: the failure is one object on stdout
    assert "release-1.8.0.tar.gz" in failure["error"] and failure["hint"]


def test_cli_deps_succeeds_with_every_archive_cached(cli, tf_tree, server, tmp_path):
    """The CLI on a v1.4 tree whose workspace.bzl deps are installed and stamped: they are
    skipped without a request; only googletest, pinned by the shipped profile to the real
    release's sha256 (not fetchable here), is reported missing."""
    tree, profile = tf_tree("1.4")
    fetch_deps(tree, profile)
    n = len(server.requests)
    r = cli("deps", "--tf-src", tree, "--offline")
    # Everything but googletest is up to date: they are stamped; the real googletest pin fails.
    assert r.code == 1 and "release-1.8.0.tar.gz" in r.stderr
    assert len(server.requests) == n


def test_not_a_tree(cli, tmp_path):
    # The same resolver as every other command: the same refusal.
    r = cli("deps", "--tf-src", tmp_path)
    assert r.code == 1 and "is not a TensorFlow source tree" in r.stderr


def test_optional_patch_absent_is_fine_but_required_one_is_not(tf_tree, server):
    """Eigen revisions differ in which NEON initialisers they spell as the script expects:
    the optional ones may be absent; p2ul (required by the profile) may not."""
    tree, profile = tf_tree("1.1")
    only_p2ul = "static uint64x2_t p2ul_CONJ_XOR = vld1q_u64( p2ul_conj_XOR_DATA );\n"
    arc = make_tar_gz({"eigen-x/Eigen/src/Core/arch/NEON/Complex.h": only_p2ul, "eigen-x/Eigen/Core": "//\n"})
    serve_other_eigen(tree, profile, server, arc)
    report = fetch_deps(tree, profile)
    eigen = next(d for d in report.deps if d.name == "eigen")
    assert [p.split(": ", 1)[1] for p in eigen.patches] == ["static uint64x2_t p2ul_CONJ_XOR = vld1q_u64( p2ul_conj_XOR_DATA );"]
    assert not fetch_deps(tree, profile).changed
    # Without the required line the dep is refused.
    arc2 = make_tar_gz({"eigen-y/Eigen/src/Core/arch/NEON/Complex.h": "// nothing\n"})
    serve_other_eigen(tree, profile, server, arc2)
    with pytest.raises(PatchError, match="occurs 0 times"):
        fetch_deps(tree, profile)
    # The previous good copy is still in place.
    assert (tree / "tensorflow/contrib/makefile/downloads/eigen/Eigen/Core").is_file()


def test_dead_hosts_fall_back_to_the_mirror(tf_tree, server):
    """Every workspace.bzl host is gone; --mirror BASE serves BASE/host/path; sha256 verified."""
    tree, profile = tf_tree("1.1", dead_host="gone.invalid")
    report = fetch_deps(tree, profile, mirrors=[server.url("/mirror")])
    assert all(d.status == "installed" for d in report.deps)
    eigen_hits = [r for r in server.requests if r.path.startswith("/mirror/gone.invalid/") and "eigen" in r.path]
    assert eigen_hits and eigen_hits[0].status == 200


def test_with_original_urls_adds_the_host_behind_each_bazel_mirror():
    from mobilebuild.tf.deps import with_original_urls

    listed = (
        "http://mirror.bazel.build/github.com/google/re2/archive/b94b7cd.tar.gz",
        "https://mirror.bazel.build/bitbucket.org/eigen/eigen/get/429aa5254200.tar.gz",
        "http://bazel-mirror.storage.googleapis.com/github.com/google/gemmlowp/archive/a6f29d8.tar.gz",
        "https://github.com/google/gemmlowp/archive/a6f29d8.tar.gz",  # already listed: not repeated
        "https://example.com/other.tar.gz",  # not a Bazel mirror: nothing added for it
    )
    assert with_original_urls(listed) == listed + (
        "https://github.com/google/re2/archive/b94b7cd.tar.gz",
        "https://bitbucket.org/eigen/eigen/get/429aa5254200.tar.gz",
    )
    assert with_original_urls(["https://example.com/a.tgz"]) == ("https://example.com/a.tgz",)


def _v14_with_real_mirror_urls(tree: Path, server) -> None:
    """Make the v1.4 tree's workspace.bzl list the real https://mirror.bazel.build/... URLs
    (the only ones the real v1.4 file lists for several archives)."""
    bzl = tree / "tensorflow/workspace.bzl"
    bzl.write_text(bzl.read_text().replace(f"{server.base}/mirror.bazel.build/", "https://mirror.bazel.build/"))


def test_v14_plan_tries_the_original_host_after_the_mirror(tf_tree, server):
    tree, profile = tf_tree("1.4")
    _v14_with_real_mirror_urls(tree, server)
    plans = {p.name: p for p in plan_deps(tree, profile)}
    assert plans["eigen"].artifact.urls == (
        "https://mirror.bazel.build/bitbucket.org/eigen/eigen/get/f3a22f35b044.tar.gz",
        "https://bitbucket.org/eigen/eigen/get/f3a22f35b044.tar.gz",
    )
    assert plans["fft2d"].artifact.urls[-1] == "https://www.kurims.kyoto-u.ac.jp/~ooura/fft.tgz"
    assert plans["protobuf"].artifact.urls[-1] == "https://github.com/google/protobuf/archive/2b7430d9.tar.gz"


def test_v14_offline_from_a_mirror_of_the_original_hosts(tf_tree, server, tmp_path):
    """A local mirror laid out by original host (BASE/github.com/..., as a mirror of GitHub
    is) serves a v1.4 tree that lists only mirror.bazel.build URLs: the de-mirrored original
    is mapped onto it. Offline, so not one request goes out."""
    tree, profile = tf_tree("1.4")
    _v14_with_real_mirror_urls(tree, server)
    mirror = tmp_path / "github-mirror"
    for path, route in server.routes.items():
        if path.startswith("/mirror.bazel.build/"):
            rel = path[len("/mirror.bazel.build/"):]
        elif path.startswith("/gtest/"):
            rel = f"127.0.0.1:{server.port}{path}"
        else:
            continue
        (mirror / rel).parent.mkdir(parents=True, exist_ok=True)
        (mirror / rel).write_bytes(route.data)
    report = fetch_deps(tree, profile, mirrors=[str(mirror)], offline=True)
    assert {d.name for d in report.deps} == {"eigen", "gemmlowp", "googletest", "protobuf", "re2", "nsync", "fft2d"}
    assert all(d.status == "installed" for d in report.deps)
    assert server.requests == []


def _stamp_googletest(tree: Path) -> None:
    """The state an earlier run leaves: googletest installed from the real release tarball
    (the shipped profile's sha256), which cannot be fetched here."""
    d = tree / "tensorflow/contrib/makefile/downloads/googletest"
    (d / "googletest/include/gtest").mkdir(parents=True)
    (d / "googletest/include/gtest/gtest.h").write_text("//\n")
    stamp = {"sha256": REAL_GTEST_SHA, "url": "https://github.com/google/googletest/archive/release-1.8.0.tar.gz", "patches": [], "applied": [], "files": 2}
    (d / ".mobilebuild-deps.json").write_text(json.dumps(stamp))


def test_cli_deps_plain_progress_then_pure_json(cli, tf_tree, server):
    """Not at a terminal: one plain line per downloaded archive on stderr (no bar, no escape
    codes). Then --json: stdout holds only the JSON report, and nothing changed."""
    tree, _ = tf_tree("1.4")
    _stamp_googletest(tree)
    r = cli("deps", "--tf-src", tree)
    assert r.code == 0, r.stderr
    # the result (one line per dependency) on stdout, progress on stderr
    assert [line.split()[:2] for line in r.stdout.splitlines()][0] == ["eigen", "installed"]
    assert "\r" not in r.stdout + r.stderr and "\x1b" not in r.stdout + r.stderr
    downloaded = [line for line in r.stderr.splitlines() if line.startswith("downloaded ")]
    assert len(downloaded) == 6 and all(f"from 127.0.0.1:{server.port}" in line for line in downloaded)
    assert "dependencies ready in" in r.stderr
    n = len(server.requests)
    again = cli("deps", "--tf-src", tree, "--json")
    assert again.code == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["changed"] is False and len(report["deps"]) == 7
    assert {d["status"] for d in report["deps"]} == {"up-to-date"}
    assert "downloaded" not in again.stderr and len(server.requests) == n
    plain = cli("deps", "--tf-src", tree)
    assert "all 7 dependencies already up to date; nothing changed" in plain.stderr


@pytest.mark.slow
def test_ctrl_c_during_hung_downloads_stops_at_once(tf_tree, server):
    """Every archive's server hangs for a minute; Ctrl-C ends the command well before that, says
    `interrupted` and what was kept, exit 130 (the workers do not hold the process)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    tree, _ = tf_tree("1.1")
    for path in list(server.routes):
        server.fault(path, Fault.slow(60))
    env = dict(os.environ, MOBILEBUILD_HTTP_TIMEOUT="120", NO_COLOR="1", PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen(
        [sys.executable, "-m", "mobilebuild", "deps", "--tf-src", str(tree)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env,
    )
    try:
        deadline = time.monotonic() + 120
        while len(server.requests) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert proc.poll() is None and len(server.requests) >= 2, "the downloads never started"
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=90)
        waited = time.monotonic() - start
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert err.count("error: interrupted") == 1, err
    assert "resumes them" in err and "Traceback" not in err
    assert waited < 20, f"took {waited:.1f} s to stop; the server would answer after 60 s"
