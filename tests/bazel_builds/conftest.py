"""Fixtures for the build area: real Bazel on a TF-shaped workspace, nginx as its HTTP cache,
BuildGrid as its gRPC (REAPI) cache, a private sshd on loopback for the Raspberry Pi flow."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest

from helpers import bazelws

_HERE = Path(__file__).resolve().parent


def _load_local(name: str):
    # Loaded by path: a top-level module named "build" or "nginx" could shadow a pip package.
    spec = importlib.util.spec_from_file_location(f"_mb_build_tests_{name}", _HERE / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


nginx = _load_local("nginx")
buildgrid = _load_local("buildgrid")
sshd = _load_local("sshd")
mkfiles = _load_local("mkfiles")

SYSTEM_BAZEL = bazelws.SYSTEM_BAZEL
MODEL_BYTES = bazelws.MODEL_BYTES
LABELS = bazelws.LABELS


def system_bazel_or_skip() -> str:
    if not os.access(SYSTEM_BAZEL, os.X_OK):
        pytest.skip("Debian's bazel-bootstrap (/usr/bin/bazel) is not installed")
    missing = bazelws.missing_tools()
    if missing:
        pytest.skip("missing for the test APK: " + ", ".join(missing))
    return SYSTEM_BAZEL


@pytest.fixture(scope="module")
def profile_11():
    from mobilebuild.profiles import load_profile

    return load_profile("1.1.0")


@pytest.fixture(scope="module")
def apk_ws(tmp_path_factory):
    """A TF 1.1-shaped workspace with the model and labels in the demo's assets, plus two
    extra packages: one whose build fails, one that runs long (for Ctrl-C)."""
    system_bazel_or_skip()
    root = bazelws.make_bazel_workspace(tmp_path_factory.mktemp("tfws") / "tensorflow", "1.1")
    assets = root / "tensorflow/examples/android/assets"
    (assets / "retrained_graph.pb").write_bytes(MODEL_BYTES)
    (assets / "retrained_labels.txt").write_text(LABELS)
    (root / "broken").mkdir()
    (root / "broken/BUILD").write_text(
        'genrule(name = "fail", outs = ["f.txt"], '
        'cmd = "echo compiling; echo \\"error: demo.cc:3: expected ; before }\\" >&2; exit 1")\n'
    )
    (root / "slow").mkdir()
    (root / "slow/BUILD").write_text('genrule(name = "sleep", outs = ["s.txt"], cmd = "sleep 120; touch $@")\n')
    return root


@pytest.fixture(scope="module")
def system_bazel(apk_ws, profile_11, tmp_path_factory):
    """Debian's Bazel, resolved the way a user would (--bazel + the deliberate override), with a
    private output root; its server is shut down after the module."""
    from mobilebuild.toolchain import bazel as bz

    resolved = bz.resolve_bazel(profile_11, bazel_path=SYSTEM_BAZEL, tree=apk_ws, allow_any_version=True)
    startup = bazelws.bazel_startup(tmp_path_factory.mktemp("bazelroot"))
    resolved = dataclasses.replace(resolved, startup_options=startup)
    yield resolved
    bazelws.shutdown(SYSTEM_BAZEL, startup, apk_ws)


@pytest.fixture
def nginx_cache(tmp_path):
    if not nginx.nginx_path():
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    server = nginx.NginxCache(tmp_path / "nginx").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def buildgrid_cache(tmp_path_factory):
    """BuildGrid (a real REAPI server) as a gRPC remote cache, stopped after the module."""
    if not buildgrid.bgd_path():
        pytest.skip("BuildGrid's bgd is not installed (.ci/run installs it into /opt/mbci/bgd-venv)")
    server = buildgrid.BuildGridCache(tmp_path_factory.mktemp("bgd")).start()
    yield server
    server.stop()


@pytest.fixture
def make_tree(tmp_path):
    """A TF 1.1-shaped tree (tftrees) with the makefile build files of mkfiles.py."""
    from helpers.tftrees import make_tf_tree

    if not shutil.which("make"):
        pytest.skip("make is not installed")
    root = make_tf_tree(tmp_path / "tensorflow", "1.1", with_git=False)
    return mkfiles.write_makefile_tree(root)


@pytest.fixture
def ios_tools():
    if not (shutil.which(mkfiles.MC) and shutil.which(mkfiles.AR) and mkfiles.LIPO):
        pytest.skip("llvm-14 (llvm-mc, llvm-ar, llvm-lipo) is not installed")
    return mkfiles


@pytest.fixture(scope="module")
def ssh_server(tmp_path_factory):
    reason = sshd.unavailable_reason()
    if reason:
        pytest.skip(reason)
    server = sshd.PrivateSshd(tmp_path_factory.mktemp("sshd")).start()
    yield server
    server.stop()
