import subprocess
import sys

from helpers.cli import run_subprocess


def test_version_is_fast_and_does_not_import_tensorflow():
    code = (
        "import sys; from mobilebuild.cli import run; rc = run(['--version']);"
        "print('TF' if 'tensorflow' in sys.modules else 'noTF'); sys.exit(rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0
    assert "mobilebuild 0.1.0" in proc.stdout
    assert "noTF" in proc.stdout


def test_help_does_not_import_tensorflow():
    code = (
        "import sys; from mobilebuild.cli import run; rc = run(['--help']);"
        "print('TF' if 'tensorflow' in sys.modules else 'noTF', file=sys.stderr); sys.exit(rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "noTF" in proc.stderr


def test_unknown_option_is_usage_error(cli):
    r = cli("--no-such-flag")
    assert r.code == 2


def test_global_flags_after_command_are_hoisted():
    from mobilebuild.cli import hoist_global_flags

    assert hoist_global_flags(["model", "inspect", "m.pb", "--json"]) == ["--json", "model", "inspect", "m.pb"]
    assert hoist_global_flags(["x", "--", "--json"]) == ["x", "--", "--json"]


def test_version_subprocess():
    import importlib.metadata
    import tomllib
    from pathlib import Path

    r = run_subprocess("--version")
    # The installed distribution's metadata, which pyproject.toml's version fills.
    declared = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]["version"]
    assert importlib.metadata.version("mobilebuild") == declared
    assert r.code == 0 and r.stdout.strip() == f"mobilebuild {declared}"
