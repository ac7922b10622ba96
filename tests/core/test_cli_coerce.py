"""The quick converter of command-line values (cli/_coerce.py) gives what typer's own converter
gives, for every parameter of the command tree: the same value, or the same error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mobilebuild.cli import _click_root
from mobilebuild.cli._coerce import QuickParam

try:  # typer >= 0.20 vendors click
    from typer import _click as click
except ImportError:  # pragma: no cover
    import click


def _params():
    found = []

    def walk(command, path):
        for param in command.params:
            found.append((path, command, param))
        for name, sub in (getattr(command, "commands", None) or {}).items():
            walk(sub, f"{path} {name}".strip())

    walk(_click_root(), "")
    return found


def _samples(annotation, tmp_path: Path) -> list:
    unreadable = tmp_path / "unreadable"
    unreadable.write_text("x")
    unreadable.chmod(0)
    existing = tmp_path / "model.pb"
    existing.write_bytes(b"x")
    by_type = {
        bool: [True, False, "true", "0", 1],
        str: ["", "abc", " spaced ", "-v", "ünï", 7],
        int: [0, 8, -3, "8", "007", "-12", "+5", " 4 ", "1_000", "4.0", "x", "", "1e3", 2.5, True, "99999999999999999999"],
        float: [0.5, 2, "1", "-0.25", ".5", "1e-3", "nan", " 2 ", "x", "", True],
        Path: ["", "a", "a//b/", ".", "-", "~/x", str(existing), str(tmp_path), str(unreadable), existing, 5],
    }
    if getattr(annotation, "__origin__", None) is list:
        items = by_type[annotation.__args__[0]]
        return [(), (items[1],), tuple(items[:3]), list(items[1:4]), items[1]]
    return by_type[annotation]


def _outcome(converter, value, param, ctx):
    try:
        return "ok", converter.coerce(value, param=param, ctx=ctx)
    except Exception as exc:  # noqa: BLE001 - whatever typer raises, the quick path must too
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        return "error", f"{type(exc).__name__}: {message}"


def test_every_parameter_gets_the_quick_converter():
    if not hasattr(_params()[0][2], "type_descriptor"):
        pytest.skip("this typer converts without pydantic; nothing to speed up")
    slow = [f"{path} {p.name}" for path, _, p in _params() if not isinstance(getattr(p, "_runtime_param", None), QuickParam)]
    assert not slow, f"of a type cli/_coerce.py leaves to typer (pydantic imported at every run): {slow}"


def test_quick_conversion_equals_typers(tmp_path):
    params = [(path, cmd, p) for path, cmd, p in _params() if isinstance(getattr(p, "_runtime_param", None), QuickParam)]
    if not params:
        pytest.skip("this typer converts without pydantic")
    checked = 0
    for path, command, param in params:
        quick = param._runtime_param
        ctx = click.Context(command)
        for value in [None, *_samples(param.type_descriptor.annotation, tmp_path)]:
            if os.geteuid() == 0 and "unreadable" in str(value):
                continue  # root reads everything: nothing to compare
            got = _outcome(quick, value, param, ctx)
            want = _outcome(quick.full(), value, param, ctx)
            assert repr(got) == repr(want), f"{path} {param.name} {value!r}"  # repr: nan == nan
            assert type(got[1]) is type(want[1]), f"{path} {param.name} {value!r}"
            checked += 1
    assert checked > 200


def test_a_command_converts_without_pydantic(tmp_path):
    """The values of a graph command (a path, options left at their defaults) are plain."""
    model = Path(__file__).resolve().parents[2] / "mobilebuild/data/default/digits.pb"
    code = (
        "import sys, contextlib, io\n"
        "from mobilebuild.cli import run\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert run(['model', 'inspect', {str(model)!r}]) == 0\n"
        f"    assert run(['model', 'quantize', {str(model)!r}, '-o', {str(tmp_path / 'w.pb')!r}, '--mode', 'weights', '--bitdepth', '8']) == 0\n"
        "print('pydantic' in sys.modules)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "False"


def test_unusual_values_still_get_typers_word(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "mobilebuild", "model", "quantize", "-o", str(tmp_path / "w.pb"), "--mode", "weights", "--bitdepth", "eight"],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 2
    assert "Invalid value for '--bitdepth'" in r.stderr and "valid integer" in r.stderr
