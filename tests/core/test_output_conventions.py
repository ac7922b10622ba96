"""Results on stdout (tables a pipe can grep), chatter on stderr; colour only at a terminal and
never under NO_COLOR; --quiet; help that names what to type; typer's shell completion."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys

import pytest

from helpers.cli import run_subprocess


def test_doctor_table_on_stdout_chatter_on_stderr(cli):
    r = cli("doctor", "--target", "model")
    assert r.code == 0, r.stderr
    rows = {line.split()[2]: line for line in r.stdout.splitlines() if line[:1] in "✓!✗-" and len(line.split()) > 2}
    assert rows["python"].startswith("✓ ok")
    assert "ready for model" in r.stderr and "ready for model" not in r.stdout
    assert "\x1b" not in r.stdout  # not a terminal: plain


def test_doctor_grep_missing_in_a_pipe():
    """`mobilebuild doctor | grep MISSING` finds the missing checks (and only those rows)."""
    r = run_subprocess("doctor", "--target", "android", env={"PATH": "/nonexistent"})
    missing = [line for line in r.stdout.splitlines() if "MISSING" in line]
    assert missing and all(line.startswith("✗ MISSING") for line in missing)
    assert any(line.split()[2] == "jdk" for line in missing)
    assert r.code == 1 and "error: not ready for android" in r.stderr


def _at_terminal(args, env):
    """Run with stdout on a pseudo-terminal; -> (exit code, bytes written to it)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "mobilebuild", *args], stdout=slave, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env=env)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            break
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=60), b"".join(chunks)


def test_colour_at_a_terminal_and_none_under_no_color():
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env.update(TERM="xterm-256color", PYTHONPATH=os.pathsep.join(sys.path))
    code, shown = _at_terminal(["doctor", "--target", "model"], env)
    assert code == 0 and b"\x1b[" in shown and "✓".encode() in shown
    code, shown = _at_terminal(["doctor", "--target", "model"], dict(env, NO_COLOR="1"))
    assert code == 0 and b"\x1b[" not in shown and "✓ ok".encode() in shown


def test_quiet_keeps_results_and_errors_only(cli):
    r = cli("-q", "doctor", "--target", "model")
    assert r.code == 0 and "python" in r.stdout
    assert r.stderr == ""
    r = cli("doctor", "--target", "model", "--quiet")  # after the command too
    assert r.code == 0 and r.stderr == ""


def test_help_names_what_to_type_not_python_types(cli):
    for args in (("--help",), ("model", "tflite", "--help"), ("android", "--help"), ("devices", "--help")):
        r = cli(*args)
        assert r.code == 0
        text = r.stdout
        for python_type in ("<bool>", "<str>", "<int>", "<float>", "<list[", "<path>"):
            assert python_type not in text, (args, python_type)
    assert "PATH" in cli("model", "tflite", "--help").stdout


def test_shell_completion_is_typers():
    # the script `--install-completion` installs (asked for bash by name: no shell to detect here)
    r = run_subprocess(env={"_MOBILEBUILD_COMPLETE": "source_bash"})
    assert r.code == 0 and "_mobilebuild_completion" in r.stdout
    proc = subprocess.run(
        [sys.executable, "-m", "mobilebuild"], capture_output=True, text=True,
        env=dict(os.environ, _MOBILEBUILD_COMPLETE="complete_bash", COMP_WORDS="mobilebuild mod", COMP_CWORD="1"),
    )
    assert proc.stdout.split() == ["model"]


def test_help_shows_choices_env_vars_and_groups(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # help lines unwrapped
    android = cli("android", "--help").stdout
    assert "[armeabi-v7a|arm64-v8a|x86|x86_64]" in android and "[opt|dbg|fastbuild]" in android
    assert "env var: ANDROID_SERIAL" in android and "-s,-d" in android
    for panel in ("Tree", "Android SDK/NDK", "Model", "Bazel", "Device", "Remote cache"):
        assert f"─ {panel}" in android, panel
    assert "[weights_rounded|weights|eightbit]" in cli("model", "quantize", "--help").stdout
    assert "[none|dynamic|int8" in cli("model", "tflite", "--help").stdout
    assert "[android|ios|pi|model]" in cli("doctor", "--help").stdout
    assert "env var: MOBILEBUILD_PINS" in cli("setup", "--help").stdout
    assert "env var: ANDROID_SERIAL" in cli("devices", "install", "--help").stdout


def test_choices_complete_in_the_shell():
    proc = subprocess.run(
        [sys.executable, "-m", "mobilebuild"], capture_output=True, text=True,
        env=dict(os.environ, _MOBILEBUILD_COMPLETE="complete_bash", COMP_WORDS="mobilebuild doctor --target i", COMP_CWORD="3"),
    )
    assert proc.stdout.split() == ["ios"]


def test_a_bad_choice_is_still_one_error_with_the_valid_values(cli):
    r = cli("doctor", "--target", "windows-phone")
    assert r.code == 1 and "android, ios, pi, model" in r.stderr and "hint:" in r.stderr


def _stderr_at_terminal(args):
    """stdin and stderr on a pseudo-terminal (interactive), stdout a pipe; -> (code, out, err)."""
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env.update(TERM="xterm-256color", PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen([sys.executable, "-m", "mobilebuild", *args], stdin=slave, stdout=subprocess.PIPE,
                            stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 300)
        if not ready:
            break
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    out = proc.stdout.read().decode()
    return proc.wait(timeout=60), out, b"".join(chunks).decode("utf-8", "replace")



@pytest.mark.slow
def test_spinners_for_the_tensorflow_import_and_the_model_work(tmp_path):
    # quantizing runs without TensorFlow: the work is shown, no import is
    code, out, err = _stderr_at_terminal(["model", "quantize", "-o", str(tmp_path / "q.pb"), "--mode", "weights_rounded"])
    assert code == 0, err
    assert "quantizing" in err and "loading TensorFlow" not in err
    assert out == ""  # the spinner never leaks into stdout
    # compare executes both graphs: TensorFlow's import gets its spinner, then a bar per model
    code, out, err = _stderr_at_terminal(["model", "compare"])
    assert code == 0, err
    assert "loading TensorFlow" in err
    assert "model A: images" in err and "30/30" in err  # a bar per model, counting images
    assert out.startswith("30 images\n") and "\x1b" not in out
