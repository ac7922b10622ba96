"""Ctrl-C says `interrupted` and exits 130; global flags are hoisted only when they are not an
option's value; TensorFlow's captured start-up noise is not replayed when Ctrl-C stops the import."""

from __future__ import annotations

import importlib.util
import os
import select
import signal
import subprocess
import sys
import time

import pytest

from mobilebuild.cli import hoist_global_flags


def test_a_flag_that_is_an_options_value_stays_with_it():
    argv = ["android", "--bazel-arg", "-v", "--generate-only"]
    assert hoist_global_flags(argv) == argv
    assert hoist_global_flags(["android", "--bazel-arg=-v", "-v"]) == ["-v", "android", "--bazel-arg=-v"]
    assert hoist_global_flags(["android", "--bazel-arg", "--json", "--json"]) == ["--json", "android", "--bazel-arg", "--json"]
    # options of sub-commands are known too: -i of `pi` takes a value
    assert hoist_global_flags(["pi", "-i", "--verbose", "--json"]) == ["--json", "pi", "-i", "--verbose"]


def test_global_flags_after_the_command_still_move_to_the_front():
    assert hoist_global_flags(["model", "label", "--top-k", "1", "--json", "-v"]) == ["--json", "-v", "model", "label", "--top-k", "1"]
    assert hoist_global_flags(["devices", "--sdk", "/x", "logcat", "--no-color"]) == ["--no-color", "devices", "--sdk", "/x", "logcat"]


@pytest.mark.slow
def test_ctrl_c_during_model_work_says_interrupted_and_exits_130():
    env = dict(os.environ, NO_COLOR="1", PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen(
        [sys.executable, "-m", "mobilebuild", "model", "label"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env,
    )
    try:
        # The command has started (its first line is out): the TensorFlow import or the model
        # work is under way, and both must end the same way.
        seen = b""
        deadline = time.monotonic() + 120
        while b"no model given" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stderr], [], [], 1)
            if ready:
                seen += os.read(proc.stderr.fileno(), 4096)
        assert b"no model given" in seen, seen
        proc.send_signal(signal.SIGINT)
        out, rest = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = (seen + rest).decode()
    assert proc.returncode == 130, err
    assert err.count("error: interrupted") == 1, err
    assert "Traceback" not in err and out == b""


def _quiet_import(tmp_path, name: str, body: str):
    """Import a module through the loader that hides TensorFlow's native start-up noise."""
    from mobilebuild.graphs import _QuietLoader

    path = tmp_path / f"{name}.py"
    path.write_text(body)
    spec = importlib.util.spec_from_file_location(name, path)
    spec.loader = _QuietLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)


NOISY = "import os\nos.write(2, b'NATIVE START-UP NOISE\\n')\n"


def test_start_up_noise_is_replayed_when_the_import_fails(tmp_path, capfd):
    with pytest.raises(ImportError):
        _quiet_import(tmp_path, "noisy_broken", NOISY + "raise ImportError('libcudart missing')\n")
    assert "NATIVE START-UP NOISE" in capfd.readouterr().err


def test_start_up_noise_stays_hidden_on_ctrl_c(tmp_path, capfd):
    with pytest.raises(KeyboardInterrupt):
        _quiet_import(tmp_path, "noisy_interrupted", NOISY + "raise KeyboardInterrupt\n")
    assert "NATIVE START-UP NOISE" not in capfd.readouterr().err
