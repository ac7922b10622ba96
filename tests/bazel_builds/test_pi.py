"""`mobilebuild pi`: the command lines per Pi model, a real make run of the test Makefile, and a
real ssh/scp round trip to a private sshd on 127.0.0.1."""

from __future__ import annotations

import json
import shlex
import subprocess

import pytest

from mobilebuild.apps import pi
from mobilebuild.errors import UserError
from mobilebuild.profiles import load_profile

P = load_profile("1.1.0")
MAKEFILE = "tensorflow/contrib/makefile/Makefile"
NEON = "-Os -mfpu=neon-vfpv4 -funsafe-math-optimizations -ftree-vectorize"
DATA = "tensorflow/contrib/pi_examples/label_image/data"


@pytest.mark.parametrize(
    "model, flags",
    [("1", "-Os"), ("zero", "-Os"), ("2", NEON), ("3", NEON)],
)
def test_make_command_per_pi_model(model, flags):
    assert pi.make_argv(P, model) == [
        "make", "-f", MAKEFILE, "HOST_OS=PI", "TARGET=PI", f"OPTFLAGS={flags}", "CXX=g++-4.8",
    ]


def test_make_command_options_and_unknown_model():
    assert pi.make_argv(P, "3", cxx="g++", jobs=2)[:2] == ["make", "-j2"]
    assert pi.make_argv(P, "3", cxx="g++")[-1] == "CXX=g++"
    with pytest.raises(UserError) as exc:
        pi.make_argv(P, "5")
    assert "unknown --pi-model '5'" in exc.value.message and "1, zero, 2, 3" in exc.value.hint


def test_plan_steps_and_remote_quoting():
    steps = pi.plan(P, "2", cxx="g++", install_packages=True)
    assert [s.name for s in steps] == ["deps", "packages", "protobuf", "make"]
    assert steps[1].argv == ["sudo", "apt-get", "install", "-y", "autoconf", "automake", "libtool"]
    assert steps[2].cwd == "tensorflow/contrib/makefile/downloads/protobuf"
    cmd = pi.remote_command(steps[3], "src/tf")
    # The remote shell sees the OPTFLAGS value as one word.
    assert f"cd src/tf && make -f {MAKEFILE} HOST_OS=PI TARGET=PI 'OPTFLAGS={NEON}' CXX=g++" in cmd
    assert "command -v g++" in cmd
    deps = pi.remote_command(steps[0], "src/tf")
    assert deps.startswith("if [ -e src/tf/tensorflow/contrib/makefile/downloads/protobuf/autogen.sh ]; then")
    words = shlex.split(pi.remote_command(steps[2], "tf"))
    assert "/usr/local/bin/protoc" in words


@pytest.mark.parametrize("host", ["-oProxyCommand=evil", "user@host;rm -rf ~", ""])
def test_bad_host_rejected(host):
    with pytest.raises(UserError):
        pi.check_host(host)


def test_remote_dir_rejected_when_unsafe():
    with pytest.raises(UserError, match="--remote-dir"):
        pi.check_remote_path("tf; rm -rf ~")


def test_not_a_pi_needs_host_or_local(cli, make_tree):
    if pi.is_raspberry_pi():
        pytest.skip("this machine is a Raspberry Pi")
    r = cli("pi", "--tf-src", make_tree, "--cxx", "g++")
    assert r.code == 1
    assert "error: this machine is not a Raspberry Pi" in r.stderr and "--host user@pi" in r.stderr


def test_is_raspberry_pi_reads_device_tree_model(tmp_path):
    f = tmp_path / "model"
    f.write_bytes(b"Raspberry Pi 3 Model B Rev 1.2\x00")
    assert pi.is_raspberry_pi(f)
    f.write_bytes(b"QEMU Virtual Machine\x00")
    assert not pi.is_raspberry_pi(f)
    assert not pi.is_raspberry_pi(tmp_path / "missing")


def test_local_build_with_real_make_pi1_then_pi2(cli, make_tree, tmp_path):
    model = tmp_path / "graph.pb"
    model.write_bytes(b"\x0a\x03abc")
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\n")
    args = ("pi", "--tf-src", make_tree, "--local", "--cxx", "g++", "--skip-deps", "--skip-protobuf",
            "--model", model, "--labels", labels)
    r = cli(*args, "--pi-model", "1", "--json")
    assert r.code == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["mode"] == "local" and res["optflags"] == "-Os"
    assert [s["name"] for s in res["steps"]] == ["make"]
    gen = make_tree / "tensorflow/contrib/makefile/gen"
    assert (gen / "pi-build.txt").read_text().strip() == "HOST_OS=PI TARGET=PI CXX=g++ OPTFLAGS=-Os"
    out = subprocess.run([str(gen / "bin/pi_demo")], capture_output=True, text=True).stdout
    assert out.strip() == "tensorflow pi demo"
    assert (make_tree / DATA / "graph.pb").read_bytes() == model.read_bytes()
    assert (make_tree / DATA / "labels.txt").read_text() == "a\nb\n"
    assert "g++ -Os -o tensorflow/contrib/makefile/gen/bin/pi_demo" in r.stderr  # make's output streamed

    # Again for a Pi 3: model unchanged, make with the NEON set.
    (make_tree / "tensorflow/contrib/makefile/Makefile").touch()
    r2 = cli(*args, "--pi-model", "3", "--json")
    assert r2.code == 0, r2.stderr
    assert json.loads(r2.stdout)["steps"][0]["status"] == "ran"
    assert f"OPTFLAGS={NEON}" in (gen / "pi-build.txt").read_text()
    assert "unchanged" in r2.stderr


def test_local_deps_use_the_verified_downloader(cli, make_tree):
    """Locally the deps come from mobilebuild's downloader (sha256-checked), not the tree's
    script: on this test tree (no workspace.bzl) that is a clear error, and the script never ran."""
    r = cli("pi", "--tf-src", make_tree, "--local", "--cxx", "g++", "--skip-protobuf")
    assert r.code == 1
    assert "workspace.bzl" in r.stderr and "Traceback" not in r.stderr
    assert not (make_tree / "tensorflow/contrib/makefile/downloads").exists()


def test_local_missing_compiler(cli, make_tree):
    r = cli("pi", "--tf-src", make_tree, "--local", "--cxx", "g++-4.8-not-here", "--skip-deps", "--skip-protobuf")
    assert r.code == 1
    assert "the C++ compiler g++-4.8-not-here is not installed" in r.stderr and "--cxx" in r.stderr


def test_dry_run_changes_nothing(cli, make_tree, tmp_path):
    model = tmp_path / "m.pb"
    model.write_bytes(b"x")
    r = cli("pi", "--tf-src", make_tree, "--local", "--dry-run", "--model", model, "--install-packages", "--json")
    assert r.code == 0, r.stderr
    res = json.loads(r.stdout)  # stdout holds only the JSON; the plan is on stderr
    assert res["dry_run"] and res["log"] is None
    assert [s["status"] for s in res["steps"]] == ["planned"] * len(res["steps"])
    assert "would run" in r.stderr and "HOST_OS=PI TARGET=PI" in r.stderr and "sudo apt-get install" in r.stderr
    assert "verified downloader" in r.stderr
    assert not (make_tree / "tensorflow/contrib/makefile/gen").exists()
    assert not (make_tree / DATA).exists()


# ---- over ssh ----------------------------------------------------------------------------------


def _ssh_args(server):
    args = ["--host", server.host, "--port", str(server.port), "-i", str(server.client_key)]
    for opt in server.client_options()[2:]:
        if opt != "-o":
            args += ["--ssh-option", opt]
    return args


@pytest.mark.slow
def test_ssh_round_trip_copies_and_builds(cli, make_tree, ssh_server, tmp_path):
    model = tmp_path / "retrained_graph.pb"
    model.write_bytes(b"\x0a\x05model" * 100)
    labels = tmp_path / "retrained_labels.txt"
    labels.write_text("cat\ndog\n")
    # The "Pi" is this machine: its checkout is make_tree (absolute --remote-dir).
    args = ["pi", *_ssh_args(ssh_server), "--remote-dir", str(make_tree), "--cxx", "g++", "--pi-model", "2"]
    args += ["--skip-protobuf", "--model", str(model), "--labels", str(labels), "--json"]
    r = cli(*args)
    assert r.code == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["mode"] == "ssh" and res["optflags"] == NEON
    assert [s["name"] for s in res["steps"]] == ["copy", "deps", "make"]
    assert res["steps"][0]["argv"][0] == "scp"
    assert (make_tree / DATA / "retrained_graph.pb").read_bytes() == model.read_bytes()
    assert (make_tree / DATA / "retrained_labels.txt").read_text() == "cat\ndog\n"
    gen = make_tree / "tensorflow/contrib/makefile/gen"
    assert f"OPTFLAGS={NEON}" in (gen / "pi-build.txt").read_text()
    assert "downloaded dependencies into" in r.stderr  # remote output streamed back
    assert "checks no sha256" in r.stderr
    log = res["log"]
    assert "downloaded dependencies into" in open(log).read()

    # Second run: nothing copied (same sha256 on the Pi), the deps step answers "already done"
    # on the Pi, make has nothing to do.
    copied_mtime = (make_tree / DATA / "retrained_graph.pb").stat().st_mtime_ns
    r2 = cli(*args)
    assert r2.code == 0, r2.stderr
    assert json.loads(r2.stdout)["steps"][0] == {"name": "copy", "status": "skipped"}
    assert (make_tree / DATA / "retrained_graph.pb").stat().st_mtime_ns == copied_mtime
    assert "mobilebuild: deps already done" in r2.stderr
    assert (gen / "make-calls.log").read_text().splitlines() == ["PI PI"]


@pytest.mark.slow
def test_ssh_version_read_from_the_pi_and_bad_port(cli, make_tree, ssh_server, tmp_path):
    r = cli("pi", *_ssh_args(ssh_server), "--remote-dir", str(make_tree), "--dry-run", "--json")
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["steps"][-1]["argv"][0] == "ssh"  # planned; version 1.1 read over ssh

    r = cli("pi", *_ssh_args(ssh_server), "--remote-dir", str(tmp_path / "no-tree"))
    assert r.code == 1 and "cannot read" in r.stderr and "--tf-version" in r.stderr

    closed = ["--host", ssh_server.host, "--port", "1", "-i", str(ssh_server.client_key)]
    r = cli("pi", *closed, "--tf-version", "1.1", "--remote-dir", "tf", "--skip-deps", "--skip-protobuf")
    assert r.code == 1
    assert "error: ssh to the Pi failed" in r.stderr and "ssh-copy-id" in r.stderr


def test_a_model_the_pis_makefile_build_cannot_run_is_named_before_the_build(cli, make_tree, tmp_path):
    """The Pi examples link the tree's makefile build: a TF 2.x graph (AddV2, new attrs) would
    fail there at run time. Said before the build, with the rewrite that fixes it; the
    downgraded copy passes."""
    from helpers.graphs import build_keras3_bn_graph

    # The stand-in tf_op_files.txt of this tree names a few test sources, not TF's kernels:
    # without it the check uses the bundled makefile set of the tree's tag (v1.1.0).
    (make_tree / "tensorflow/contrib/makefile/tf_op_files.txt").unlink()
    g = build_keras3_bn_graph(tmp_path, size=16, classes=3, name="k3")
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\n")
    args = ("pi", "--tf-src", make_tree, "--local", "--dry-run", "--labels", labels)
    r = cli(*args, "--model", g.path)
    assert r.code == 0, r.stderr
    said = " ".join(r.stderr.split())
    assert "would not load in the Pi's TF v1.1.0 (makefile build)" in said and "AddV2" in said
    assert "--runtime makefile" in said
    fixed = tmp_path / "k3_v11.pb"
    assert cli("model", "downgrade", g.path, "-o", fixed, "--tf-version", "1.1", "--runtime", "makefile").code == 0
    r = cli(*args, "--model", fixed)
    assert r.code == 0 and "would not load" not in r.stderr
