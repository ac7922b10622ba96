"""Resolving Bazel, its flags, the remote bazelrc fragment and Bazel's summary lines.

Real binaries where they exist (Debian's bazel 4.2.3 reporting 'no_version', the Bazel 2.1.0
release binary); bazelisk cannot run offline, so it is a stand-in executable on PATH.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from helpers import bazelws
from mobilebuild.toolchain import bazel
from mobilebuild.errors import CommandError, ToolchainError, UserError
from mobilebuild.profiles import load_profile

P11 = load_profile("1.1.0")


def _bazel2_or_skip() -> str:
    path = bazelws.bazel2_path()
    if not path:
        pytest.skip("Bazel 2.1.0 binary not present (MOBILEBUILD_TEST_BAZEL2)")
    return path


def _exe(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def _only_path(monkeypatch, *dirs: Path) -> None:
    monkeypatch.setenv("PATH", os.pathsep.join([*(str(d) for d in dirs), "/usr/bin", "/bin"]))


# ---- resolve_bazel ------------------------------------------------------------------------------


def test_flag_pointing_nowhere_is_a_clear_error(tmp_path):
    with pytest.raises(ToolchainError, match="not an executable file"):
        bazel.resolve_bazel(P11, bazel_path=tmp_path / "nope")


def test_debian_bazel_without_version_needs_the_override(capsys):
    if not os.access("/usr/bin/bazel", os.X_OK):
        pytest.skip("no /usr/bin/bazel")
    with pytest.raises(ToolchainError) as exc:
        bazel.resolve_bazel(P11, bazel_path="/usr/bin/bazel")
    assert "cannot tell which Bazel" in exc.value.message
    assert "--ignore-bazel-version" in exc.value.hint
    bz = bazel.resolve_bazel(P11, bazel_path="/usr/bin/bazel", allow_any_version=True)
    assert bz.via == "flag" and bz.version is None
    assert bz.warnings and "version check was overridden" in bz.warnings[0]
    assert "warning:" in capsys.readouterr().err


def test_bazel_outside_profile_range_is_refused_then_overridden(capsys):
    path = _bazel2_or_skip()
    with pytest.raises(ToolchainError) as exc:
        bazel.resolve_bazel(P11, bazel_path=path)
    assert "Bazel 2.1.0" in exc.value.message and "0.4.2 - 0.5.4" in exc.value.message
    assert "0.4.5" in exc.value.hint  # the profile's pin is what to install
    bz = bazel.resolve_bazel(P11, bazel_path=path, allow_any_version=True)
    assert bz.version == (2, 1, 0) and bz.via == "flag"
    assert "outside the range" in capsys.readouterr().err


def test_bazel_on_path_is_checked(tmp_path, monkeypatch):
    path = _bazel2_or_skip()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "bazel").symlink_to(path)
    _only_path(monkeypatch, bindir)
    monkeypatch.setenv("PATH", str(bindir))  # no bazelisk, no /usr/bin/bazel
    with pytest.raises(ToolchainError, match="outside the range"):
        bazel.resolve_bazel(P11)
    bz = bazel.resolve_bazel(P11, allow_any_version=True)
    assert bz.via == "path" and bz.version == (2, 1, 0)


def test_no_bazel_anywhere(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolchainError) as exc:
        bazel.resolve_bazel(P11)
    assert "no Bazel found" in exc.value.message
    assert "mobilebuild setup" in exc.value.hint and "0.4.5" in exc.value.hint


def test_managed_bazel_preferred_over_path(tmp_path, monkeypatch):
    path = _bazel2_or_skip()
    managed = bazel.managed_bazel_path("0.4.5")
    managed.parent.mkdir(parents=True)
    managed.symlink_to(path)
    monkeypatch.setenv("PATH", str(tmp_path))
    bz = bazel.resolve_bazel(P11, allow_any_version=True)
    assert bz.via == "managed" and bz.path == str(managed)


def test_bazelisk_gets_the_version_from_env_then_bazelversion_then_profile(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    _exe(bindir / "bazelisk", "#!/bin/sh\necho \"bazel $USE_BAZEL_VERSION\"\n")
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    monkeypatch.delenv("USE_BAZEL_VERSION", raising=False)
    tree = tmp_path / "tree"
    tree.mkdir()

    bz = bazel.resolve_bazel(P11, tree=tree)
    assert (bz.via, bz.env, bz.version) == ("bazelisk", {"USE_BAZEL_VERSION": "0.4.5"}, (0, 4, 5))

    (tree / ".bazelversion").write_text("0.5.4\n")
    assert bazel.resolve_bazel(P11, tree=tree).env == {"USE_BAZEL_VERSION": "0.5.4"}

    monkeypatch.setenv("USE_BAZEL_VERSION", "0.4.2")
    assert bazel.resolve_bazel(P11, tree=tree).env == {"USE_BAZEL_VERSION": "0.4.2"}

    monkeypatch.setenv("USE_BAZEL_VERSION", "3.1.0")
    with pytest.raises(ToolchainError, match="outside the range"):
        bazel.resolve_bazel(P11, tree=tree)


def test_bazelisk_env_reaches_the_build(tmp_path, monkeypatch):
    """The pinned version travels in the env of the real process the runner starts."""
    bindir = tmp_path / "bin"
    _exe(
        bindir / "bazelisk",
        "#!/bin/sh\necho \"[1 / 1] pretend build with $USE_BAZEL_VERSION\"\n"
        "echo 'INFO: 0 processes.'\necho 'INFO: Build completed successfully, 1 total action'\n",
    )
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    monkeypatch.delenv("USE_BAZEL_VERSION", raising=False)
    bz = bazel.resolve_bazel(P11, tree=tmp_path)
    res = bazel.build(bz, tmp_path, "//x:y", log_path=tmp_path / "b.log")
    assert "pretend build with 0.4.5" in (tmp_path / "b.log").read_text()
    assert res.no_op and res.actions == 1


# ---- flags and APK -----------------------------------------------------------------------------


def test_cpu_flags_from_profile():
    assert bazel.cpu_flags(P11, "arm64-v8a") == ["--fat_apk_cpu=arm64-v8a"]
    assert bazel.cpu_flags(P11, None) == ["--fat_apk_cpu=armeabi-v7a"]
    with pytest.raises(UserError) as exc:
        bazel.cpu_flags(P11, "mips")
    assert "unknown --cpu 'mips'" in exc.value.message
    assert exc.value.hint == "use one of: armeabi-v7a, arm64-v8a, x86, x86_64"


def test_locate_apk(tmp_path):
    with pytest.raises(UserError) as exc:
        bazel.locate_apk(tmp_path, P11)
    assert "bazel-bin/tensorflow/examples/android/tensorflow_demo.apk" in exc.value.message
    apk = tmp_path / "bazel-bin/tensorflow/examples/android/tensorflow_demo.apk"
    apk.parent.mkdir(parents=True)
    apk.write_bytes(b"PK")
    assert bazel.locate_apk(tmp_path, P11) == apk


def test_build_argv_puts_bazelrc_before_the_command():
    bz = bazel.Bazel("/x/bazel", (0, 5, 4), "flag", startup_options=("--output_user_root=/r",))
    argv = bazel.build_argv(bz, "//t:t", flags=["-c", "opt"], bazelrc="/w/mobilebuild.bazelrc")
    assert argv[:4] == ["/x/bazel", "--output_user_root=/r", "--bazelrc=/w/mobilebuild.bazelrc", "build"]
    assert argv[-3:] == ["-c", "opt", "//t:t"]


# ---- remote bazelrc fragment -------------------------------------------------------------------


def test_fragment_content_and_no_rewrite(tmp_path):
    (tmp_path / ".bazelrc").write_text("build --jobs=2\n")
    path = bazel.write_bazelrc_fragment(tmp_path, remote_cache="http://127.0.0.1:9090", upload_local_results=False)
    assert path == tmp_path / "mobilebuild.bazelrc"
    lines = [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]
    assert lines == ["build --remote_cache=http://127.0.0.1:9090", "build --remote_upload_local_results=false"]
    before = path.stat().st_mtime_ns
    os.utime(path, ns=(before - 10**9, before - 10**9))  # make a rewrite visible
    bazel.write_bazelrc_fragment(tmp_path, remote_cache="http://127.0.0.1:9090", upload_local_results=False)
    assert path.stat().st_mtime_ns == before - 10**9
    assert (tmp_path / ".bazelrc").read_text() == "build --jobs=2\n"  # the user's file untouched


def test_fragment_executor_and_headers_quoted_private(tmp_path):
    path = bazel.write_bazelrc_fragment(
        tmp_path,
        remote_cache="grpcs://cache.example.com",
        remote_executor="grpcs://exec.example.com:443",
        remote_headers=["Authorization=Bearer a b", 'x-note=say "hi"'],
    )
    text = path.read_text()
    assert "build --remote_executor=grpcs://exec.example.com:443\n" in text
    assert 'build --remote_header="Authorization=Bearer a b"\n' in text
    assert 'build --remote_header="x-note=say \\"hi\\""\n' in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # tokens: owner only


def test_fragment_none_without_remote(tmp_path):
    assert bazel.write_bazelrc_fragment(tmp_path) is None
    assert not (tmp_path / "mobilebuild.bazelrc").exists()


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"remote_cache": "ftp://x"}, "--remote-cache"),
        ({"remote_cache": "http://a b"}, "--remote-cache"),
        ({"remote_executor": "http://exec"}, "--remote-executor"),
        ({"remote_cache": "http://c", "remote_headers": ["novalue"]}, "NAME=VALUE"),
        ({"remote_cache": "http://c", "remote_headers": ["k=v\nbuild --evil"]}, "NAME=VALUE"),
        ({"remote_headers": ["k=v"]}, "without --remote-cache"),
    ],
)
def test_fragment_bad_input(tmp_path, kwargs, needle):
    with pytest.raises(UserError) as exc:
        bazel.write_bazelrc_fragment(tmp_path, **kwargs)
    assert needle in exc.value.message and exc.value.hint
    assert not (tmp_path / "mobilebuild.bazelrc").exists()


# ---- Bazel's summary ----------------------------------------------------------------------------


def test_summary_lines_of_bazel4_and_bazel2():
    b4 = ["INFO: 3 processes: 2 remote cache hit, 1 internal.", "INFO: Build completed successfully, 3 total actions"]
    s = bazel.parse_summary(b4)
    assert s["remote_cache_hits"] == 2 and s["actions"] == 3 and not s["no_op"]
    assert s["remote_cache_hit_ratio"] == 1.0  # the internal process is never looked up
    s = bazel.parse_summary(["INFO: 12 processes: 9 remote cache hit, 3 linux-sandbox."])
    assert s["remote_cache_hit_ratio"] == 0.75 and s["remote_cache_hits"] == 9
    assert bazel.parse_summary(["INFO: 0 processes."])["remote_cache_hit_ratio"] is None
    assert bazel.parse_summary(["INFO: 1 process: 1 internal.", "INFO: Build completed successfully, 1 total action"])["no_op"]
    assert bazel.parse_summary(["INFO: 0 processes.", "INFO: Build completed successfully, 1 total action"])["no_op"]
    s = bazel.parse_summary(["INFO: 2 processes: 2 linux-sandbox."])
    assert s["processes"] == {"linux-sandbox": 2} and not s["no_op"]
    # Bazel 0.4/0.5 print no process line: nothing is claimed.
    s = bazel.parse_summary(["INFO: Elapsed time: 0.5s, Critical Path: 0.00s"])
    assert s == {"actions": None, "processes": {}, "remote_cache_hits": 0, "remote_cache_hit_ratio": None, "no_op": False}


def test_first_error_lines_skip_noise():
    lines = ["INFO: Analyzed", *[f"noise {i}" for i in range(50)], "ERROR: /w/BUILD:1:8: boom", "detail"]
    lines += [f"more {i}" for i in range(40)]
    out = bazel.first_error_lines(lines)
    assert out[0] == "ERROR: /w/BUILD:1:8: boom" and len(out) == 12


_FAKE_BAZEL = """#!/bin/sh
# Stand-in for a Bazel of TF 1.x's era (none runs on this machine): answers --version, then
# prints what a failing C++ build prints.
if [ "$1" = "--version" ]; then echo "bazel 0.5.4"; exit 0; fi
echo "Loading: "
echo "[1 / 3] Compiling tensorflow/core/kernels/demo.cc"
echo "ERROR: /w/tensorflow/core/BUILD:3:1: C++ compilation of rule '//tensorflow/core:demo' failed (Exit 1)"
echo "tensorflow/core/kernels/demo.cc:1:1: error: expected ';'"
echo "INFO: Elapsed time: 1.000s, Critical Path: 0.50s"
echo "FAILED: Build did NOT complete successfully"
exit 1
"""


def test_in_range_bazel_verbose_output_and_short_failure(tmp_path, capsys):
    fake = _exe(tmp_path / "bazel-0.5.4", _FAKE_BAZEL)
    bz = bazel.resolve_bazel(P11, bazel_path=fake)
    assert (bz.version, bz.via, bz.warnings) == ((0, 5, 4), "flag", ())
    with pytest.raises(CommandError) as exc:
        bazel.build(bz, tmp_path, "//tensorflow/core:demo", log_path=tmp_path / "b.log", verbose=True)
    err = capsys.readouterr().err
    assert "[1 / 3] Compiling tensorflow/core/kernels/demo.cc" in err  # raw output with --verbose
    e = exc.value
    assert e.message == (
        "bazel build //tensorflow/core:demo failed (exit 1): /w/tensorflow/core/BUILD:3:1: "
        "C++ compilation of rule '//tensorflow/core:demo' failed (Exit 1)"
    )
    assert e.output.splitlines() == [
        "ERROR: /w/tensorflow/core/BUILD:3:1: C++ compilation of rule '//tensorflow/core:demo' failed (Exit 1)",
        "tensorflow/core/kernels/demo.cc:1:1: error: expected ';'",
    ]
    assert "FAILED: Build did NOT complete" in (tmp_path / "b.log").read_text()


def test_remote_cache_warning_of_newer_bazels(tmp_path, capsys):
    fake = _exe(
        tmp_path / "bazel",
        "#!/bin/sh\nif [ \"$1\" = \"--version\" ]; then echo 'bazel 0.5.2'; exit 0; fi\n"
        "echo 'WARNING: Remote Cache: UNAVAILABLE: io exception'\n"
        "echo 'INFO: 2 processes: 1 internal, 1 linux-sandbox.'\n"
        "echo 'INFO: Build completed successfully, 2 total actions'\n",
    )
    res = bazel.build(bazel.resolve_bazel(P11, bazel_path=fake), tmp_path, "//a:b", log_path=tmp_path / "l")
    assert res.warnings == ["remote cache problem (Remote Cache: UNAVAILABLE: io exception); building locally"]
    assert "warning: remote cache problem" in capsys.readouterr().err
    assert res.processes == {"internal": 1, "linux-sandbox": 1} and not res.no_op


def test_status_line_at_a_terminal(tmp_path):
    """At a TTY the current action shows in one live status line (not Bazel's raw output)."""
    import pty
    import subprocess
    import sys

    fake = _exe(
        tmp_path / "bazel",
        "#!/bin/sh\nif [ \"$1\" = \"--version\" ]; then echo 'bazel 0.5.4'; exit 0; fi\n"
        "echo 'INFO: From Executing genrule //a:b:'\necho 'raw genrule chatter'\n"
        "echo '[7 / 9] Compiling tensorflow/core/kernels/conv_ops.cc'\nsleep 1\n"
        "echo 'INFO: 0 processes.'\n",
    )
    script = (
        "from mobilebuild.toolchain import bazel\nfrom mobilebuild.profiles import load_profile\n"
        f"bz = bazel.resolve_bazel(load_profile('1.1'), bazel_path={str(fake)!r})\n"
        f"r = bazel.build(bz, {str(tmp_path)!r}, '//a:b', log_path={str(tmp_path / 'l')!r})\n"
        "print('NOOP', r.no_op)\n"
    )
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(master)
    out = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0, out
    assert "bazel: [7 / 9] Compiling tensorflow/core/kernels/conv_ops.cc" in out
    assert "raw genrule chatter" not in out  # only in the log
    assert "NOOP True" in out
    assert "raw genrule chatter" in (tmp_path / "l").read_text()


def test_fragment_flag_names_follow_the_bazel_version(tmp_path):
    def lines(**kw):
        path = bazel.write_bazelrc_fragment(tmp_path, **kw)
        return [ln for ln in path.read_text().splitlines() if ln.startswith("build ")]

    url = "http://127.0.0.1:8080"
    assert lines(remote_cache=url, bazel_version=(2, 1, 0))[0] == f"build --remote_cache={url}"
    assert lines(remote_cache=url, bazel_version=None)[0] == f"build --remote_cache={url}"
    assert lines(remote_cache=url, bazel_version=(0, 20, 0))[0] == f"build --remote_http_cache={url}"
    old = lines(remote_cache=url, bazel_version=(0, 12, 0))
    assert old[:3] == [f"build --remote_http_cache={url}", "build --spawn_strategy=remote", "build --genrule_strategy=remote"]
    assert lines(remote_cache="grpc://c:9092", bazel_version=(0, 25, 0))[0] == "build --remote_cache=grpc://c:9092"
    with pytest.raises(UserError, match="does not take a grpc:// URL"):
        bazel.write_bazelrc_fragment(tmp_path / "x", remote_cache="grpc://c:9092", bazel_version=(0, 20, 0))
    with pytest.raises(UserError, match="only experimental remote-cache flags"):
        bazel.write_bazelrc_fragment(tmp_path / "x", remote_cache="https://c", bazel_version=(0, 9, 1))
    with pytest.raises(UserError, match="only experimental remote-cache flags"):
        bazel.write_bazelrc_fragment(tmp_path / "x", remote_cache=url, bazel_version=(0, 5, 4))
    with pytest.raises(UserError, match="--remote-executor needs Bazel 0.25.0"):
        bazel.write_bazelrc_fragment(tmp_path / "x", remote_executor="grpc://e:1", bazel_version=(0, 20, 0))


def test_flag_pointing_at_something_that_is_not_bazel(tmp_path):
    fake = _exe(tmp_path / "notbazel", "#!/bin/sh\necho hello\n")
    with pytest.raises(ToolchainError) as exc:
        bazel.resolve_bazel(P11, bazel_path=fake)
    assert "does not answer like Bazel" in exc.value.message


def test_version_probe_is_remembered_per_binary(tmp_path):
    """Bazel 0.4/0.5 answer only `--batch version` (a JVM start): asked once per binary."""
    calls = tmp_path / "calls"
    text = (
        "#!/bin/sh\n"
        f"echo \"$@\" >> {calls}\n"
        "if [ \"$1\" = \"--version\" ]; then echo 'Unknown startup option' >&2; exit 2; fi\n"
        "echo 'Build label: 0.5.4'\n"
    )
    fake = _exe(tmp_path / "bazel-0.5.4", text)
    assert bazel.resolve_bazel(P11, bazel_path=fake).version == (0, 5, 4)
    assert calls.read_text().splitlines() == ["--version", "--batch version"]
    assert bazel.resolve_bazel(P11, bazel_path=fake).version == (0, 5, 4)
    assert calls.read_text().splitlines()[2:] == ["--version"]  # no second JVM: remembered
    # Another binary at the same path (upgraded in place) is asked again.
    _exe(fake, text.replace("0.5.4", "0.5.2") + "# upgraded\n")
    assert bazel.resolve_bazel(P11, bazel_path=fake).version == (0, 5, 2)
    assert calls.read_text().splitlines()[3:] == ["--version", "--batch version"]


def test_version_is_asked_in_the_tree(tmp_path, monkeypatch):
    """A bazelisk installed as `bazel` answers --version for the tree's .bazelversion."""
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / ".bazelversion").write_text("0.5.2\n")
    fake = _exe(tmp_path / "bin/bazel", "#!/bin/sh\necho \"bazel $(cat .bazelversion 2>/dev/null || echo 9.9.9)\"\n")
    _only_path(monkeypatch, fake.parent)
    assert bazel.resolve_bazel(P11, tree=tree).version == (0, 5, 2)


def test_remote_options_and_masked_headers():
    opts = bazel.remote_options("http://c:8080", None, ["x-api-key=SECRET"], bazel_version=(2, 1, 0))
    assert opts == ["--remote_cache=http://c:8080", "--remote_header=x-api-key=SECRET", "--remote_upload_local_results=true"]
    assert [bazel.masked_option(o) for o in opts][1] == "--remote_header=x-api-key=***"
    assert bazel.masked_option('--remote_header="Authorization=Bearer a b"') == "--remote_header=Authorization=***"
    assert bazel.fragment_mode(opts) == 0o600 and bazel.fragment_mode(opts[:1]) == 0o644
    assert bazel.remote_options() == []


def test_reported_outputs_decide_where_the_apk_is(tmp_path):
    lines = [
        "INFO: Found 1 target...",
        "Target //tensorflow/examples/android:tensorflow_demo up-to-date:",
        "  out-bin/tensorflow/examples/android/tensorflow_demo_deploy.jar",
        "  out-bin/tensorflow/examples/android/tensorflow_demo.apk",
        "INFO: Elapsed time: 0.4s",
    ]
    reported = bazel.reported_outputs(lines)
    assert reported == [
        "out-bin/tensorflow/examples/android/tensorflow_demo_deploy.jar",
        "out-bin/tensorflow/examples/android/tensorflow_demo.apk",
    ]
    # A --symlink_prefix moved bazel-bin: the APK Bazel reported wins over a stale bazel-bin copy.
    stale = tmp_path / "bazel-bin/tensorflow/examples/android/tensorflow_demo.apk"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"PK old")
    with pytest.raises(UserError) as exc:
        bazel.locate_apk(tmp_path / "elsewhere", P11, reported)
    assert "Bazel reported: out-bin/" in exc.value.message and "--symlink_prefix" in exc.value.hint
    assert bazel.locate_apk(tmp_path, P11, reported) == stale  # reported file missing: the profile's path
    moved = tmp_path / reported[1]
    moved.parent.mkdir(parents=True)
    moved.write_bytes(b"PK new")
    assert bazel.locate_apk(tmp_path, P11, reported) == moved


def test_android_refuses_a_remote_setting_the_bazel_cannot_use_before_patching(cli, tmp_path):
    """The resolved Bazel decides the remote flags; one it lacks fails before the tree changes,
    and --dry-run shows the fragment (header values hidden), then 'unchanged' once written."""
    from helpers.tftrees import make_ndk, make_sdk, make_tf_tree, tree_digest

    tree = make_tf_tree(tmp_path / "tf", "1.1", with_git=False)
    sdk, ndk = make_sdk(tmp_path / "sdk"), make_ndk(tmp_path / "ndk")
    old = _exe(tmp_path / "old/bazel", "#!/bin/sh\n[ \"$1\" = \"--version\" ] && exit 2\necho 'Build label: 0.5.4'\n")
    before = tree_digest(tree)
    base = ["android", "--tf-src", tree, "--sdk", sdk, "--ndk", ndk, "--no-install"]
    r = cli(*base, "--bazel", old, "--remote-cache", "http://127.0.0.1:9/c")
    assert r.code == 1 and "Bazel 0.5.4 has only experimental remote-cache flags" in r.stderr
    assert "Traceback" not in r.stderr and tree_digest(tree) == before
    r = cli(*base, "--bazel", old, "--remote-executor", "grpc://127.0.0.1:9")
    assert r.code == 1 and "--remote-executor needs Bazel 0.25.0" in r.stderr

    new = _exe(tmp_path / "new/bazel", "#!/bin/sh\necho 'bazel 2.1.0'\n")
    remote = ["--bazel", new, "--ignore-bazel-version", "--remote-cache", "grpcs://c.example.com",
              "--remote-header", "x-api-key=SECRET"]
    r = cli(*base, *remote, "--dry-run", "--json")
    assert r.code == 0, r.stderr
    assert "build --remote_cache=grpcs://c.example.com" in r.stderr and "x-api-key=***" in r.stderr
    assert "SECRET" not in r.stdout + r.stderr
    assert tree_digest(tree) == before and not (tree / "mobilebuild.bazelrc").exists()
    import json

    data = json.loads(r.stdout)
    assert data["bazel"]["version"] == "2.1.0" and "version check was overridden" in data["bazel"]["warnings"][0]
    bazel.write_bazelrc_fragment(tree, "grpcs://c.example.com", None, ["x-api-key=SECRET"], bazel_version=(2, 1, 0))
    r = cli(*base, *remote, "--dry-run")
    assert "unchanged mobilebuild.bazelrc" in r.stdout


def test_bazel_recorded_by_setup_in_mobilebuild_toml_is_used(tmp_path, monkeypatch):
    """setup writes `bazel = ...` into mobilebuild.toml; the build must run that binary."""
    from mobilebuild.toolchain import bazel
    from mobilebuild.profiles import load_profile

    fake = tmp_path / "tools" / "bazel-recorded"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'bazel 0.5.4'\n")
    fake.chmod(0o755)
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "mobilebuild.toml").write_text(f'bazel = "{fake}"\n')
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # /usr/bin/bazel (Debian) must lose to the record
    bz = bazel.resolve_bazel(load_profile("1.4.0"), tree=tree)
    assert bz.path == str(fake) and bz.via == "mobilebuild.toml"


def test_managed_bazel_of_the_trees_bazelversion_is_found(tmp_path, monkeypatch):
    from mobilebuild.toolchain import bazel
    from mobilebuild.toolchain import machine
    from mobilebuild.profiles import load_profile

    managed = machine.managed_bazel("0.5.2")
    assert managed == bazel.managed_bazel_path("0.5.2")  # one layout for setup and build
    managed.parent.mkdir(parents=True)
    managed.write_text("#!/bin/sh\necho 'bazel 0.5.2'\n")
    managed.chmod(0o755)
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / ".bazelversion").write_text("0.5.2\n")
    monkeypatch.setenv("PATH", "/nonexistent")
    bz = bazel.resolve_bazel(load_profile("1.3.0"), tree=tree)
    assert bz.path == str(managed) and bz.via == "managed"


def test_managed_install_without_version_flag_is_known_by_its_version_file(tmp_path, monkeypatch):
    """Releases before 0.24 reject --version; setup writes PREFIX/VERSION beside bin/bazel, and
    both the build and doctor/setup (machine.find_bazel, same search) read it without a JVM."""
    from mobilebuild.toolchain import bazel
    from mobilebuild.toolchain import machine
    from mobilebuild.profiles import load_profile

    managed = bazel.managed_bazel_path("0.5.2")
    managed.parent.mkdir(parents=True)
    calls = tmp_path / "calls"
    managed.write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\necho 'Unknown startup option --version' >&2\nexit 2\n")
    managed.chmod(0o755)
    (managed.parent.parent / "VERSION").write_text("0.5.2\n")
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / ".bazelversion").write_text("0.5.2\n")
    monkeypatch.setenv("PATH", "/nonexistent")
    profile = load_profile("1.3.0")
    bz = bazel.resolve_bazel(profile, tree=tree)
    assert bz.path == str(managed) and bz.version == (0, 5, 2)
    found = machine.find_bazel(profile, {}, tree)
    assert found.path == str(managed) and found.version == "0.5.2" and found.source == "managed prefix"
    assert calls.read_text().split("\n").count("--version") == 2  # never `--batch version`


def test_find_bazel_notes_an_out_of_range_candidate_and_goes_on(tmp_path, monkeypatch):
    """doctor/setup walk the build's candidates: the recorded Bazel out of range is reported in
    'tried' and the managed install (in range) is found; the build itself refuses the record."""
    from mobilebuild.toolchain import bazel
    from mobilebuild.toolchain import machine
    from mobilebuild.profiles import load_profile

    recorded = tmp_path / "bin" / "bazel"
    recorded.parent.mkdir()
    recorded.write_text("#!/bin/sh\necho 'bazel 2.1.0'\n")
    recorded.chmod(0o755)
    managed = bazel.managed_bazel_path("0.5.4")
    managed.parent.mkdir(parents=True)
    managed.write_text("#!/bin/sh\necho 'bazel 0.5.4'\n")
    managed.chmod(0o755)
    monkeypatch.setenv("PATH", "/nonexistent")
    profile = load_profile("1.4.0")
    found = machine.find_bazel(profile, {"bazel": str(recorded)}, None)
    assert found.path == str(managed) and found.version == "0.5.4" and found.source == "managed prefix"
    assert found.extra.get("tried") is None
    # TF 1.1 pins 0.4.5, which is not installed: nothing usable, the record is named.
    missing = machine.find_bazel(load_profile("1.1.0"), {"bazel": str(recorded)}, None)
    assert missing.path is None and missing.extra["tried"] == [f"{recorded} (2.1.0, from mobilebuild.toml)"]
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "mobilebuild.toml").write_text(f'bazel = "{recorded}"\n')
    with pytest.raises(ToolchainError, match="outside the range"):
        bazel.resolve_bazel(profile, tree=tree)


def test_output_kept_in_memory_is_bounded_but_the_log_has_everything(tmp_path):
    """A build that prints far more than runner.TAIL_LINES lines: the result and the failure
    report come from a bounded tail plus the first error; the log file keeps every line."""
    from mobilebuild import runner

    n = runner.TAIL_LINES * 3
    fake = _exe(
        tmp_path / "bazel",
        "#!/bin/sh\nif [ \"$1\" = \"--version\" ]; then echo 'bazel 0.5.4'; exit 0; fi\n"
        "echo 'ERROR: /w/BUILD:1:1: first failure'\necho 'its detail'\n"
        f"i=0; while [ $i -lt {n} ]; do echo \"chatter $i\"; i=$((i+1)); done\nexit 1\n",
    )
    seen = []
    res = runner.run([str(fake), "build"], check=False, on_line=seen.append, log_path=tmp_path / "r.log")
    assert len(seen) == n + 2 and len((tmp_path / "r.log").read_text().splitlines()) == n + 2
    kept = res.stdout.splitlines()
    assert len(kept) == runner.TAIL_LINES and kept[-1] == f"chatter {n - 1}"
    with pytest.raises(CommandError) as exc:
        bazel.build(bazel.resolve_bazel(P11, bazel_path=fake), tmp_path, "//a:b", log_path=tmp_path / "b.log")
    assert exc.value.message.endswith(": /w/BUILD:1:1: first failure")
    assert exc.value.output.splitlines()[:2] == ["ERROR: /w/BUILD:1:1: first failure", "its detail"]
    assert len((tmp_path / "b.log").read_text().splitlines()) == n + 2
