"""A command line naming one command builds only that command's part of the click tree: its
help, its usage errors and where global flags go are exactly what the whole tree gives."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from mobilebuild import cli

_RENDER = r"""
import contextlib, io, json, sys
import mobilebuild.cli as cli
if sys.argv[1] == "whole":
    cli._command_path = lambda argv: ()
out = {}
for args in json.loads(sys.argv[2]):
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = cli.run(cli.hoist_global_flags(args))
    out[" ".join(args)] = [code, stdout.getvalue(), stderr.getvalue()]
print(json.dumps(out))
"""


def _leaf_paths() -> list[list[str]]:
    paths = []

    def walk(command, path):
        subs = getattr(command, "commands", None) or {}
        if path and not subs:
            paths.append(path)
        for name, sub in subs.items():
            walk(sub, path + [name])

    walk(cli._click_root(), [])
    return paths


def test_each_command_alone_renders_as_in_the_whole_tree():
    lines = [p + ["--help"] for p in _leaf_paths()]
    lines += [
        ["model", "inspect", "--bogus"],
        ["model", "quantize", "--mode", "weights"],  # a required option missing
        ["--json", "model", "check", "a.pb", "b.pb"],
        ["model", "--quiet", "inspect", "--tf-version"],
        ["android", "--bazel-arg", "-v", "--nope"],
        ["model", "inspectt"],
        ["model"],
        ["--signature", "x", "cache", "info", "extra"],
    ]
    env = dict(os.environ, COLUMNS="100", NO_COLOR="1", TERM="dumb")
    got = {}
    for mode in ("pruned", "whole"):
        r = subprocess.run([sys.executable, "-c", _RENDER, mode, json.dumps(lines)], capture_output=True, text=True, env=env, timeout=300)
        assert r.returncode == 0, r.stderr
        got[mode] = json.loads(r.stdout.strip().splitlines()[-1])
    assert len(got["pruned"]) == len(lines) > 20
    assert got["pruned"] == got["whole"]


def test_command_paths():
    assert cli._command_path(["model", "inspect", "m.pb"]) == ("model", "inspect")
    assert cli._command_path(["--json", "-v", "--signature", "s", "model", "quantize"]) == ("model", "quantize")
    assert cli._command_path(["--signature=s", "android", "--tf-src", "x"]) == ("android",)
    assert cli._command_path(["model", "--json", "check"]) == ("model", "check")
    for whole in (["--help"], ["model"], ["model", "-h", "inspect"], ["model", "nosuch"], ["nosuch"], ["--version"], []):
        assert cli._command_path(whole) == (), whole
    full = cli._click_root()
    pruned = cli._click_root(["model", "inspect"])
    assert list(pruned.commands) == ["model"] and list(pruned.commands["model"].commands) == ["inspect"]
    assert len(full.commands) > 10
    for argv in (["model", "inspect", "m.pb", "--json"], ["android", "--bazel-arg", "-v", "-q"], ["model", "check", "x", "--signature", "s"]):
        whole = cli._command_path
        try:
            cli._command_path = lambda argv: ()
            expected = cli.hoist_global_flags(argv)
        finally:
            cli._command_path = whole
        assert cli.hoist_global_flags(argv) == expected
