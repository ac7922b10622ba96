"""The commonest real write failures end as one `error:` line naming the path, a `hint:`, exit 1,
and leave nothing behind: a full disk, a read-only file system, a directory without write
permission, a kernel file system. Real file systems: a small tmpfs (needs mount rights, else
skipped) and a non-root writer made with setpriv."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from mobilebuild import defaults


def _mount_tmpfs(path, *options):
    path.mkdir(parents=True, exist_ok=True)
    opts = ",".join(("size=40k",) + options)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")


@pytest.fixture
def small_disk(tmp_path):
    """A 40 KiB file system holding an earlier output (`q.pb`) that a failed write must keep."""
    mnt = tmp_path / "small"
    _mount_tmpfs(mnt)
    (mnt / "q.pb").write_bytes(b"earlier result")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=False)


@pytest.fixture
def read_only(tmp_path):
    mnt = tmp_path / "ro"
    _mount_tmpfs(mnt, "ro")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=False)


def _one_error(result, *words):
    """Exactly one error line (with every word), a hint, no traceback."""
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for word in words:
        assert word in errors[0], result.stderr
    assert "hint:" in result.stderr
    assert "Traceback" not in result.output and "internal error" not in result.output
    return errors[0]


def test_disk_full_is_one_error_and_keeps_the_old_file(cli, small_disk):
    out = small_disk / "q.pb"
    r = cli("model", "quantize", "-o", out, "--mode", "weights_rounded")
    assert r.code == 1
    line = _one_error(r, str(out), "no space left")
    assert "df -h" in r.stderr
    assert out.read_bytes() == b"earlier result"  # not truncated, not replaced
    assert sorted(p.name for p in small_disk.iterdir()) == ["q.pb"]  # no temp file left
    print(line)


def test_disk_full_with_json_prints_one_object(cli, small_disk):
    r = cli("--json", "model", "optimize", "-o", small_disk / "opt.pb", "--input-names", "Mul",
            "--output-names", "final_result", defaults.default_model())
    assert r.code == 1
    obj = json.loads(r.stdout)  # one object, nothing else on stdout
    assert "no space left" in obj["error"] and "df -h" in obj["hint"]
    assert sorted(p.name for p in small_disk.iterdir()) == ["q.pb"]


def test_read_only_file_system(cli, read_only):
    r = cli("model", "quantize", "-o", read_only / "q.pb", "--mode", "weights_rounded")
    assert r.code == 1
    _one_error(r, str(read_only / "q.pb"), "read-only file system")
    assert list(read_only.iterdir()) == []


def test_output_under_proc(cli):
    r = cli("model", "quantize", "-o", "/proc/q.pb", "--mode", "weights_rounded")
    assert r.code == 1
    _one_error(r, "/proc/q.pb", "kernel file system")
    assert not os.path.exists("/proc/q.pb")


def _setpriv_prefix() -> list[str]:
    """Run as root without CAP_DAC_OVERRIDE: directory permissions apply as to any user."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv not installed")
    if os.geteuid() != 0:
        return []  # already a normal user: permissions apply anyway
    prefix = [setpriv, "--inh-caps=-dac_override", "--bounding-set=-dac_override", "--"]
    probe = subprocess.run(prefix + ["true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("setpriv cannot drop capabilities here")
    return prefix


@pytest.mark.slow
def test_permission_denied_for_a_non_root_writer(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "q.pb").write_bytes(b"earlier result")
    locked.chmod(0o555)
    prefix = _setpriv_prefix()
    env = dict(os.environ, NO_COLOR="1", PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run(
        prefix + [sys.executable, "-m", "mobilebuild", "--json", "model", "quantize", "-o", str(locked / "q.pb"), "--mode", "weights_rounded"],
        capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=600,
    )
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "permission denied" in errors[0] and str(locked) in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    obj = json.loads(proc.stdout)
    assert "ls -ld" in obj["hint"]
    assert sorted(p.name for p in locked.iterdir()) == ["q.pb"]
    assert (locked / "q.pb").read_bytes() == b"earlier result"


def test_two_writers_of_one_output_do_not_both_succeed(cli, tmp_path):
    """While another mobilebuild writes -o OUT, a second command for the same OUT is refused at
    once (only one can report success; the file is the first one's)."""
    out = tmp_path / "q.pb"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from mobilebuild import fsutil; fsutil.claim_output(sys.argv[1]); print('held', flush=True); time.sleep(60)",
         str(out)],
        stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)),
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        r = cli("model", "quantize", "-o", out, "--mode", "weights_rounded")
        assert r.code == 1
        _one_error(r, f"pid {holder.pid}", str(out))
        assert not out.exists()
    finally:
        holder.kill()
        holder.wait()
    r = cli("model", "quantize", "-o", out, "--mode", "weights_rounded")  # released: works
    assert r.code == 0, r.stderr
    assert out.is_file()
