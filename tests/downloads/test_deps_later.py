"""`deps` on trees shaped like v1.5, v1.10 and v1.13: what each tree's own
download_dependencies.sh fetches (read from the script, not from a list per version), from a
local mirror holding real tarballs and a real git repository made here, verified by the
checksums the tree's workspace.bzl gives; 2.1+ trees get one line.

The mirror uses the original hosts' layout (BASE/github.com/...): the trees name
mirror.bazel.build (1.5 - 1.13) or mirror.tensorflow.org (1.14+) first, and mobilebuild also
tries the original host behind a known mirror, so one mirror serves every era.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from helpers.archive_builders import make_tar_gz, make_zip, sha256
from helpers.tftrees import DOWNLOAD_SCRIPT, FARMHASH_COMMIT, FLATBUFFERS_COMMIT, PROTOBUF_HARDCODED, make_tf_tree, one_line_error
from mobilebuild.paths import TOOLCHAINS_DIR
from mobilebuild.profiles import load_profile
from mobilebuild.tf.deps import fetch_deps, read_download_script

GTEST_URL = "https://github.com/google/googletest/archive/release-1.8.0.tar.gz"
COMPLEX_H = """namespace Eigen { namespace internal {
static uint32x4_t p4ui_CONJ_XOR = vld1q_u32( conj_XOR_DATA );
static uint64x2_t p2ul_CONJ_XOR = vld1q_u64( p2ul_conj_XOR_DATA );
} }
"""
AUTOGEN = "#!/bin/sh\ncurl -O https://googlemock.googlecode.com/files/gmock-1.7.0.zip\n"


def _archives(version: str) -> dict[str, tuple[str, bytes]]:
    """dir -> (original URL, archive bytes): each with a top dir, a BUILD file to delete."""
    def tgz(top, files):
        return make_tar_gz({f"{top}/{k}": v for k, v in {**files, "BUILD": "x\n"}.items()})

    out = {
        "eigen": ("https://bitbucket.org/eigen/eigen/get/fd6845384b86.tar.gz",
                  tgz("eigen-eigen-fd6845384b86", {"Eigen/src/Core/arch/NEON/Complex.h": COMPLEX_H, "Eigen/Core": "//\n"})),
        "gemmlowp": ("https://github.com/google/gemmlowp/archive/7c7c744640ddc3d0af18fb245b4d23228813a71b.zip",
                     make_zip({"gemmlowp-7c7c744/public/gemmlowp.h": "//\n", "gemmlowp-7c7c744/BUILD": "x\n"})),
        "googletest": (GTEST_URL, tgz("googletest-release-1.8.0", {"googletest/include/gtest/gtest.h": "//\n"})),
        "nsync": ("https://github.com/google/nsync/archive/1.20.0.tar.gz", tgz("nsync-1.20.0", {"public/nsync.h": "//\n"})),
        "re2": ("https://github.com/google/re2/archive/26cd968b735e227361c9703683266f01e5df7857.tar.gz",
                tgz("re2-26cd968", {"re2/re2.h": "//\n"})),
        "fft2d": ("http://www.kurims.kyoto-u.ac.jp/~ooura/fft.tgz", make_tar_gz({"fft/fftsg.c": "/* */\n"})),
        "absl": ("https://github.com/abseil/abseil-cpp/archive/f0f15c2778b0e4959244dd25e63f445a455870f5.tar.gz",
                 tgz("abseil-cpp-f0f15c2", {"absl/base/config.h": "//\n"})),
        "cub/external/cub_archive": ("https://github.com/NVlabs/cub/archive/1.8.0.zip",
                                     make_zip({"cub-1.8.0/cub/cub.cuh": "//\n", "cub-1.8.0/BUILD": "x\n"})),
    }
    if version >= (1, 9):
        out["double_conversion"] = ("https://github.com/google/double-conversion/archive/3992066a95b823efc8ccc1baf82a1cfc73f6e9b8.zip",
                                    make_zip({"double-conversion-3992066/double-conversion/utils.h": "//\n"}))
    if version < (1, 10):
        out["protobuf"] = ("https://github.com/google/protobuf/archive/396336eb961b75f03b25824fe86cf6490fb75e3a.tar.gz",
                           tgz("protobuf-396336e", {"autogen.sh": AUTOGEN, "src/google/protobuf/message.h": "//\n"}))
    elif version < (1, 13):
        out["protobuf"] = (PROTOBUF_HARDCODED.replace("mirror.bazel.build/", ""),
                           tgz("protobuf-3.6.0", {"autogen.sh": AUTOGEN, "src/google/protobuf/message.h": "//\n"}))
    else:
        out["farmhash"] = (f"https://github.com/google/farmhash/archive/{FARMHASH_COMMIT}.tar.gz",
                           tgz("farmhash-816a4ae", {"src/farmhash.h": "//\n"}))
        out["flatbuffers"] = (f"https://github.com/google/flatbuffers/archive/{FLATBUFFERS_COMMIT}.tar.gz",
                              tgz("flatbuffers-1f5eae5", {"include/flatbuffers/flatbuffers.h": "//\n"}))
    return out


def _mirror_of(url: str, mirror_host: str) -> str:
    return url.replace("https://", f"{mirror_host}/").replace("http://", f"{mirror_host}/")


def _bzl(version: tuple[int, int], archives: dict, mirror_host: str) -> tuple[str, str]:
    """(tensorflow/workspace.bzl, third_party/flatbuffers/workspace.bzl) in the tf_http_archive
    shape of 1.5+ (urls = [mirror, original], mirror first)."""
    def call(name, url, sha, mirror=True):
        urls = [_mirror_of(url, mirror_host), url] if mirror else [url]
        lines = "\n".join(f'            "{u}",' for u in urls)
        return f'    tf_http_archive(\n        name = "{name}",\n        urls = [\n{lines}\n        ],\n        sha256 = "{sha}",\n    )\n'

    names = {"eigen": "eigen_archive", "gemmlowp": "gemmlowp", "nsync": "nsync", "re2": "com_googlesource_code_re2",
             "fft2d": "fft2d", "absl": "com_google_absl", "cub/external/cub_archive": "cub_archive",
             "double_conversion": "double_conversion", "farmhash": "farmhash_archive"}
    body = []
    for d, (url, data) in archives.items():
        if d in names:
            body.append(call(names[d], url, sha256(data)))
    if version < (1, 10):
        url, data = archives["protobuf"]
        body.append(call("protobuf_archive", url, sha256(data)))
    elif version < (1, 13):
        url, data = archives["protobuf"]
        body.append(call("protobuf_archive", url, sha256(data)))  # the hard-coded URL's archive
    else:
        # The script clones protobuf at the tag of this URL; the archive's sha256 is the tarball's.
        body.append(call("protobuf_archive", "https://github.com/protocolbuffers/protobuf/archive/v3.6.1.2.tar.gz", "1" * 64))
    # a commented-out URL and a Bazel-only archive the script never asks for
    body.append('    tf_http_archive(\n        name = "grpc",\n        urls = [\n            # "https://github.com/grpc/grpc/archive/v1.13.0.tar.gz",\n'
                '            "https://example.invalid/grpc.tar.gz",\n        ],\n        sha256 = "' + "2" * 64 + '",\n    )\n')
    main = ('load("//third_party:repo.bzl", "tf_http_archive")\n\n'
            'def tf_workspace(path_prefix = "", tf_repo_name = ""):\n' + "\n".join(body))
    third = ""
    if version >= (1, 13):
        url, data = archives["flatbuffers"]
        third = 'load("//third_party:repo.bzl", "third_party_http_archive")\n\ndef repo():\n' + call("flatbuffers", url, sha256(data)).replace("tf_http_archive", "third_party_http_archive")
    return main, third


def _git(*args, cwd=None):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def _protobuf_repo(mirror: Path) -> str:
    """A real git repository at BASE/github.com/protocolbuffers/protobuf.git, tag v3.6.1.2."""
    work = mirror.parent / "protobuf-work"
    work.mkdir()
    _git("init", "-q", cwd=work)
    _git("config", "user.email", "t@example.invalid", cwd=work)
    _git("config", "user.name", "t", cwd=work)
    (work / "autogen.sh").write_text(AUTOGEN)
    (work / "src").mkdir()
    (work / "src" / "message.h").write_text("// v3.6.1.2\n")
    _git("add", ".", cwd=work)
    _git("commit", "-qm", "3.6.1.2", cwd=work)
    _git("tag", "v3.6.1.2", cwd=work)
    (work / "src" / "message.h").write_text("// later\n")
    _git("commit", "-qam", "later", cwd=work)
    bare = mirror / "github.com" / "protocolbuffers" / "protobuf.git"
    bare.parent.mkdir(parents=True)
    _git("clone", "-q", "--bare", str(work), str(bare))
    return subprocess.run(["git", "rev-parse", "v3.6.1.2^{commit}"], cwd=work, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def later_tree(tmp_path):
    def make(version: str):
        vt = tuple(int(x) for x in version.split("."))
        mirror_host = "https://mirror.bazel.build" if vt < (1, 14) else "https://storage.googleapis.com/mirror.tensorflow.org"
        archives = _archives(vt)
        main, third = _bzl(vt, archives, mirror_host)
        extra = {"tensorflow/workspace.bzl": main}
        if third:
            extra["third_party/flatbuffers/workspace.bzl"] = third
        tree = make_tf_tree(tmp_path / f"tf-{version}", version, with_git=False, extra_files=extra)
        mirror = tmp_path / "mirror"
        for url, data in archives.values():
            dest = mirror / url.split("://", 1)[1]
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
        commit = _protobuf_repo(mirror) if vt >= (1, 13) else None
        # The shipped profiles with only googletest's digest pointed at the test tarball (the
        # real release tarball cannot be fetched here).
        toolchains = tmp_path / "toolchains"
        shutil.copytree(TOOLCHAINS_DIR, toolchains, ignore=shutil.ignore_patterns("tf-mobile-ops"))
        f = toolchains / "tf-mobile-1.5.toml"
        f.write_text(f.read_text().replace("58a6f4277ca2bc8565222b3bbd58a177609e9c488e8a72649359ba51450db7d8", sha256(archives["googletest"][1])))
        return tree, load_profile(version, directory=toolchains), mirror, archives, commit

    return make


@pytest.mark.parametrize("version", ["1.5", "1.10", "1.13"])
def test_deps_fetch_exactly_what_the_trees_script_fetches(later_tree, version, monkeypatch, tmp_path):
    monkeypatch.setenv("MOBILEBUILD_CACHE", str(tmp_path / "cache"))
    tree, profile, mirror, archives, commit = later_tree(version)
    report = fetch_deps(tree, profile, mirrors=[str(mirror)], offline=True)
    downloads = tree / "tensorflow/contrib/makefile/downloads"
    got = {d.name: d for d in report.deps}
    expected = set(archives) | ({"protobuf"} if commit else set())
    assert set(got) == expected
    for name, (url, data) in archives.items():
        assert got[name].verified == "sha256" and got[name].sha256 == sha256(data), name
    # what the script's grep picks: the mirror URL where its pattern names the mirror
    if version == "1.5":
        assert got["gemmlowp"].url.startswith("https://mirror.bazel.build/github.com/google/gemmlowp/")
        assert got["eigen"].url == archives["eigen"][0]  # `grep -v mirror.bazel` skips the mirror
        assert "double_conversion" not in got
    if version == "1.10":
        assert got["protobuf"].url == PROTOBUF_HARDCODED and "hard-coded in the script" in got["protobuf"].origin
    assert (downloads / "cub/external/cub_archive/cub/cub.cuh").is_file()
    assert not list(downloads.rglob("BUILD"))
    complex_h = (downloads / "eigen/Eigen/src/Core/arch/NEON/Complex.h").read_text()
    assert "static uint64x2_t p2ul_CONJ_XOR;// = vld1q_u64( p2ul_conj_XOR_DATA ); - Removed by script" in complex_h
    autogen = (downloads / "protobuf/autogen.sh").read_text()
    assert "http://download.tensorflow.org/deps/gmock-1.7.0.zip" in autogen
    if commit:
        # a real clone at the tag workspace.bzl names, not the later commit
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=downloads / "protobuf", capture_output=True, text=True).stdout.strip()
        assert head == commit and got["protobuf"].verified == f"git commit {commit}"
        assert (downloads / "protobuf/src/message.h").read_text() == "// v3.6.1.2\n"
        assert (downloads / "flatbuffers/include/flatbuffers/flatbuffers.h").is_file()
    # second run: nothing changes
    snapshot = {p: p.stat().st_mtime_ns for p in downloads.rglob("*") if p.is_file()}
    again = fetch_deps(tree, profile, mirrors=[str(mirror)], offline=True)
    assert not again.changed
    assert {p: p.stat().st_mtime_ns for p in downloads.rglob("*") if p.is_file()} == snapshot


def test_a_tarball_that_does_not_match_the_trees_checksum_is_refused(later_tree, monkeypatch, tmp_path):
    from mobilebuild.errors import UserError

    monkeypatch.setenv("MOBILEBUILD_CACHE", str(tmp_path / "cache"))
    tree, profile, mirror, archives, _ = later_tree("1.10")
    (mirror / archives["re2"][0].split("://", 1)[1]).write_bytes(b"not the archive")
    with pytest.raises(UserError):
        fetch_deps(tree, profile, mirrors=[str(mirror)], offline=True)
    assert not (tree / "tensorflow/contrib/makefile/downloads/re2").exists()


def test_script_reader_follows_the_mirror_host_of_1_15():
    from helpers.tftrees import download_script

    bzl = ('    tf_http_archive(\n        name = "nsync",\n        urls = [\n'
           '            "https://storage.googleapis.com/mirror.tensorflow.org/github.com/google/nsync/archive/1.22.0.tar.gz",\n'
           '            "https://github.com/google/nsync/archive/1.22.0.tar.gz",\n        ],\n    )\n')
    script = download_script("1.15")
    with pytest.raises(Exception, match="EIGEN_URL finds nothing"):
        read_download_script(script, bzl)
    # the 1.15 script's own NSYNC line (it names the mirror host of 1.15) and its download line
    keep = [ln for ln in script.splitlines() if ln.startswith("NSYNC_URL=") or ln.endswith('"${DOWNLOADS_DIR}/nsync"')]
    assert "storage.googleapis.com/mirror.tensorflow.org" in keep[0]
    deps, _ = read_download_script("\n".join(keep), bzl)
    assert [(d.dir, d.url) for d in deps] == [
        ("nsync", "https://storage.googleapis.com/mirror.tensorflow.org/github.com/google/nsync/archive/1.22.0.tar.gz")]


@pytest.mark.parametrize("command", [["deps"], ["ios-libs", "--force-host"], ["pi", "--local", "--dry-run"]])
def test_makefile_commands_on_2_1_say_it_is_gone_in_one_line(cli, tmp_path, command):
    tree = make_tf_tree(tmp_path / "tf-2.1", "2.1", with_git=False)
    assert not (tree / DOWNLOAD_SCRIPT).exists()
    r = cli(*command, "--tf-src", tree)
    one_line_error(r)
    assert "no makefile build" in r.stderr and "removed from TensorFlow in 2.1" in r.stderr
