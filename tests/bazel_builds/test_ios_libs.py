"""`mobilebuild ios-libs`: real make on a test Makefile (Mach-O archives via llvm-mc/llvm-ar),
llvm-lipo-14 as the lipo; resumable per arch; refusal on non-macOS hosts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mobilebuild.apps import ios_libs as ios_build
from mobilebuild.profiles import load_profile

ALL = ["ARMV7", "ARMV7S", "ARM64", "I386", "X86_64"]
FAT = "tensorflow/contrib/makefile/gen/lib/libtensorflow-core.a"


def _archs(tools, path) -> list[str]:
    out = subprocess.run([tools.LIPO, "-archs", str(path)], capture_output=True, text=True, check=True).stdout
    return out.split()


def _ios(cli, tree, tools, *extra):
    return cli("ios-libs", "--tf-src", tree, "--force-host", "--skip-deps", "--lipo", tools.LIPO, "-j", "2", "--json", *extra)


@pytest.mark.skipif(sys.platform == "darwin", reason="the refusal is for non-macOS hosts")
def test_refuses_off_macos_with_one_line(cli, make_tree, monkeypatch):
    monkeypatch.delenv(ios_build.FORCE_HOST_ENV, raising=False)
    r = cli("ios-libs", "--tf-src", make_tree)
    assert r.code == 1
    assert r.stderr.splitlines()[0] == f"error: building the iOS libraries needs macOS with Xcode (this machine is {sys.platform})"
    assert "Traceback" not in r.stderr
    assert not (make_tree / "tensorflow/contrib/makefile/gen").exists()


def test_builds_every_arch_then_fat_library_then_resumes(cli, make_tree, ios_tools):
    r = _ios(cli, make_tree, ios_tools)
    assert r.code == 0, r.stderr
    res = json.loads(r.stdout)
    assert [a["arch"] for a in res["archs"]] == ALL and {a["status"] for a in res["archs"]} == {"built"}
    assert res["protobuf"] == "built" and res["lipo"] == "created"
    fat = make_tree / FAT
    assert res["library"] == str(fat)
    assert sorted(_archs(ios_tools, fat)) == sorted(["armv7", "armv7s", "arm64", "i386", "x86_64"])
    assert ios_tools.make_calls(make_tree) == [f"IOS {a}" for a in ALL]
    # The exact make command of compile_ios_tensorflow.sh, per arch.
    lib = make_tree / "tensorflow/contrib/makefile/gen/lib/ios_ARM64/libtensorflow-core-arm64.a"
    assert lib.is_file()

    # Second run: nothing rebuilt, nothing rewritten.
    mtime = fat.stat().st_mtime_ns
    r2 = _ios(cli, make_tree, ios_tools)
    assert r2.code == 0, r2.stderr
    res2 = json.loads(r2.stdout)
    assert {a["status"] for a in res2["archs"]} == {"up-to-date"}
    assert res2["lipo"] == "up-to-date" and res2["protobuf"] == "present"
    assert ios_tools.make_calls(make_tree) == [f"IOS {a}" for a in ALL]
    assert fat.stat().st_mtime_ns == mtime

    # One arch library lost: only that arch is rebuilt, then lipo again.
    (make_tree / "tensorflow/contrib/makefile/gen/lib/ios_I386/libtensorflow-core-i386.a").unlink()
    res3 = json.loads(_ios(cli, make_tree, ios_tools).stdout)
    assert [a["arch"] for a in res3["archs"] if a["status"] == "built"] == ["I386"]
    assert res3["lipo"] == "created"
    assert ios_tools.make_calls(make_tree)[-1] == "IOS I386" and len(ios_tools.make_calls(make_tree)) == 6

    # A source newer than the libraries: every arch is rebuilt.
    src = make_tree / "tensorflow/core/kernels/softmax_op.cc"
    future = fat.stat().st_mtime_ns + 5 * 10**9
    os.utime(src, ns=(future, future))
    res4 = json.loads(_ios(cli, make_tree, ios_tools).stdout)
    assert {a["status"] for a in res4["archs"]} == {"built"}


def test_archs_subset_and_changed_flags(cli, make_tree, ios_tools):
    r = _ios(cli, make_tree, ios_tools, "--archs", "arm64,x86_64")
    assert r.code == 0, r.stderr
    res = json.loads(r.stdout)
    assert [a["arch"] for a in res["archs"]] == ["ARM64", "X86_64"]
    assert sorted(_archs(ios_tools, make_tree / FAT)) == ["arm64", "x86_64"]
    assert not (make_tree / "tensorflow/contrib/makefile/gen/lib/ios_ARMV7").exists()
    # Other OPTFLAGS: the same arch is built again (its command line changed).
    res2 = json.loads(_ios(cli, make_tree, ios_tools, "--archs", "ARM64", "--optflags", "-Os").stdout)
    assert res2["archs"] == [{**res2["archs"][0], "arch": "ARM64", "status": "built"}]
    assert _archs(ios_tools, make_tree / FAT) == ["arm64"]


def test_unknown_arch(cli, make_tree, ios_tools):
    r = _ios(cli, make_tree, ios_tools, "--archs", "ARM64,PPC")
    assert r.code == 1
    assert "unknown iOS arch 'PPC'" in r.stderr and "ARMV7, ARMV7S, ARM64, I386, X86_64" in r.stderr
    assert not (make_tree / "tensorflow/contrib/makefile/gen").exists()


def test_make_failure_reported_briefly_and_no_fat_library(cli, make_tree, ios_tools):
    listing = make_tree / "tensorflow/contrib/makefile/tf_op_files.txt"
    listing.write_text(listing.read_text() + "tensorflow/core/kernels/missing_op.cc\n")
    r = _ios(cli, make_tree, ios_tools, "--archs", "ARMV7")
    assert r.code == 1
    assert "error: make for ARMV7 failed (exit 2)" in r.stderr
    assert "missing_op.cc" in r.stderr and "full log:" in r.stderr
    assert not (make_tree / FAT).exists()


def test_make_command_line_matches_compile_ios_tensorflow():
    p = load_profile("1.2")
    assert ios_build.make_argv(p, "ARMV7S", jobs=4) == [
        "make", "-j4", "-f", "tensorflow/contrib/makefile/Makefile", "TARGET=IOS", "IOS_ARCH=ARMV7S",
        "LIB_NAME=libtensorflow-core-armv7s.a", "OPTFLAGS=-O3",
    ]


def test_deps_come_from_the_verified_downloader(cli, make_tree, ios_tools):
    """Without --skip-deps the makefile deps go through `mobilebuild deps` (sha256-checked);
    this test tree has no workspace.bzl, so that is a one-line error before any make runs."""
    r = cli("ios-libs", "--tf-src", make_tree, "--force-host", "--lipo", ios_tools.LIPO)
    assert r.code == 1
    assert "workspace.bzl" in r.stderr and "Traceback" not in r.stderr
    assert ios_tools.make_calls(make_tree) == []


def test_failing_lipo_leaves_no_fat_library(cli, make_tree, ios_tools, tmp_path):
    bad = tmp_path / "lipo"
    bad.write_text("#!/bin/sh\nfor a; do last=$a; done\necho partial > \"$last\"\necho 'lipo: bad archive' >&2\nexit 1\n")
    bad.chmod(0o755)
    r = cli("ios-libs", "--tf-src", make_tree, "--force-host", "--skip-deps", "--lipo", bad, "--archs", "ARM64")
    assert r.code == 1
    assert "error: lipo failed (exit 1)" in r.stderr and "lipo: bad archive" in r.stderr
    lib_dir = make_tree / FAT.rsplit("/", 1)[0]
    assert not (make_tree / FAT).exists()
    assert not [p.name for p in lib_dir.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("option", ["--make", "--lipo"])
def test_missing_make_or_lipo_fails_before_any_work(cli, make_tree, ios_tools, tmp_path, option):
    r = cli("ios-libs", "--tf-src", make_tree, "--force-host", "--skip-deps", "--lipo", ios_tools.LIPO,
            option, str(tmp_path / "missing"), "--archs", "ARM64")
    assert r.code == 1 and "Traceback" not in r.stderr
    assert r.stderr.splitlines()[0] == f"error: {option} {tmp_path / 'missing'}: no such program"
    assert ios_tools.make_calls(make_tree) == []
    assert not (make_tree / "tensorflow/contrib/makefile/gen").exists()  # not even protobuf ran
