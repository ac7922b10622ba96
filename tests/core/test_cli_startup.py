"""Start-up: `mobilebuild --help` loads neither TensorFlow nor the libraries only commands need,
and the option choices it shows (kept light in mobilebuild.choices) are the ones the core checks.
The timing itself is a figure printed by benchmarks/bench_startup.py, not a unit-test limit."""

from __future__ import annotations

import json
import subprocess
import sys

from mobilebuild import choices

HEAVY = ("tensorflow", "numpy", "git", "jinja2", "requests", "tomlkit", "google.protobuf", "PIL", "pydantic", "markdown_it", "pygments")


def _loaded_after(code: str) -> list[str]:
    probe = code + f"\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_importing_the_cli_leaves_tensorflow_and_command_libraries_out():
    assert _loaded_after("import mobilebuild.cli") == []


def test_help_loads_nothing_heavy():
    code = (
        "import contextlib, io\n"
        "from mobilebuild.cli import run\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert run(['--help']) == 0\n"
        "    assert run(['android', '--help']) == 0\n"
        "    assert run(['model', 'quantize', '--help']) == 0\n"
    )
    assert _loaded_after(code) == []


def test_choices_are_the_ones_the_core_checks():
    from mobilebuild.apps import doctor
    from mobilebuild.graphs import freeze, quantize, tflite
    from mobilebuild.profiles import families

    assert quantize.MODES == choices.GRAPH_QUANTIZE_MODES
    assert tflite.QUANTIZE_MODES == choices.TFLITE_QUANTIZE_MODES
    assert doctor.TARGETS == choices.DOCTOR_TARGETS
    assert freeze.DEFAULT_SIGNATURE == choices.DEFAULT_SIGNATURE
    from mobilebuild.graphs import runtime_ops

    assert runtime_ops.RUNTIMES == choices.OPSET_RUNTIMES
    runtimes = set()
    for _path, data in families():
        runtimes |= set(data.get("runtime_ops") or {})
    assert runtimes == set(choices.OPSET_RUNTIMES)
    cpus = set()
    for _path, data in families():
        for table in (data, *(data.get("versions") or {}).values()):
            cpus |= set(((table.get("android") or {}).get("cpu_flags") or {}))
    assert set(choices.ANDROID_CPUS) == cpus
