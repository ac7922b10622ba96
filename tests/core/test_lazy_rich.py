"""rich's Markdown and Traceback stand in until used (cli/_lazy_rich.py): help and usage errors
render exactly as with the real modules, without importing markdown-it or pygments, and any use
of the stand-ins reaches the real classes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

_RENDER = r"""
import contextlib, io, json, sys
if sys.argv[1] == "real":
    import rich.markdown, rich.traceback  # loaded first: the CLI leaves them as they are
from mobilebuild.cli import run
out = {}
for args in (["--help"], ["model", "--help"], ["model", "quantize", "--help"], ["model", "inspect", "--bogus"],
             ["android", "--tf-version"], ["nosuchcommand"]):
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = run(args)
    out[" ".join(args)] = [code, stdout.getvalue(), stderr.getvalue()]
print(json.dumps({"out": out, "loaded": [m for m in ("markdown_it", "pygments") if m in sys.modules]}))
"""


def _render(mode: str) -> dict:
    env = dict(os.environ, COLUMNS="100", NO_COLOR="1", TERM="dumb")
    r = subprocess.run([sys.executable, "-c", _RENDER, mode], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_help_and_usage_errors_render_as_with_the_real_modules():
    deferred, real = _render("deferred"), _render("real")
    assert deferred["out"] == real["out"]
    assert real["loaded"] == ["markdown_it", "pygments"]  # the real ones really were there
    assert deferred["loaded"] == []
    assert "Usage: mobilebuild model inspect" in deferred["out"]["model inspect --bogus"][2]


def test_the_stand_ins_reach_the_real_classes():
    code = r"""
import io, sys
from rich.console import Console
from mobilebuild.cli import _lazy_rich
assert _lazy_rich.is_stand_in(sys.modules["rich.markdown"])
from rich.markdown import Markdown
from rich.traceback import Traceback
md = Markdown("# Title\n\n*x*")
assert type(md).__module__ == "rich.markdown" and isinstance(md, Markdown)
assert not _lazy_rich.is_stand_in(sys.modules["rich.markdown"])
buf = io.StringIO()
Console(file=buf, width=40).print(md)
try:
    1 / 0
except ZeroDivisionError as exc:
    tb = Traceback.from_exception(type(exc), exc, exc.__traceback__)
assert isinstance(tb, Traceback)
import rich.traceback
assert rich.traceback.install is not None
print(buf.getvalue().strip().splitlines()[0].strip())
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "Title"
