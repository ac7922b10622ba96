"""Every `mobilebuild ...` a message or help text tells people to run exists: the command and
each flag are parsed by the click app itself (following our own advice never ends in a usage error)."""

from __future__ import annotations

import ast
import itertools
import re
import shlex
from pathlib import Path

import pytest
import typer

import mobilebuild
from mobilebuild.cli import app

PACKAGE = Path(mobilebuild.__file__).resolve().parent
BACKTICKED = re.compile(r"`mobilebuild ([^`]*)`")


def _strings(tree: ast.AST):
    """Every string literal; f-strings with each placeholder as the word VALUE."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value
        elif isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "VALUE" for v in node.values)
            yield node.lineno, text


def hints() -> list[tuple[str, str]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        seen_in_fstrings = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr):
                for v in node.values:
                    if isinstance(v, ast.Constant):
                        seen_in_fstrings.add(id(v))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in seen_in_fstrings:
                text, line = node.value, node.lineno
            elif isinstance(node, ast.JoinedStr):
                text = "".join(v.value if isinstance(v, ast.Constant) else "VALUE" for v in node.values)
                line = node.lineno
            else:
                continue
            for m in BACKTICKED.finditer(text):
                found.append((f"{path.relative_to(PACKAGE.parent)}:{line}", m.group(1)))
    return found


def _root():
    return typer.main.get_command(app)


ALTERNATIVES = re.compile(r"^[a-z-]+(?:[/|][a-z-]+)+$")


def _variants(words: list[str]) -> list[list[str]]:
    """'android/ios/workspace' or 'info|clean' names several commands: one variant each."""
    choices = [re.split(r"[/|]", w) if ALTERNATIVES.match(w) else [w] for w in words]
    return [list(v) for v in itertools.product(*choices)]


def problems_of(command_line: str) -> list[str]:
    words = [w for w in shlex.split(command_line.replace("...", " ")) if w]
    out = []
    for variant in _variants(words):
        cmd = _root()
        globals_ = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
        path = []
        rest = list(variant)
        # A group (typer's own click) has .commands; a command's words after it are arguments.
        while rest and hasattr(cmd, "commands") and not rest[0].startswith("-"):
            sub = cmd.commands.get(rest[0])
            if sub is None:
                out.append(f"no command {' '.join([*path, rest[0]])!r}")
                break
            path.append(rest.pop(0))
            cmd = sub
        known = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)} | globals_ | {"--help", "-h"}
        for word in rest:
            if word.startswith("--"):
                flag = word.split("=", 1)[0]
                if flag not in known:
                    out.append(f"`mobilebuild {' '.join(path)}` has no {flag}")
    return out


def test_hints_are_found():
    found = hints()
    assert len(found) > 20  # the collector sees f-strings, help texts and messages
    assert any("setup" in text for _, text in found)


def test_every_hinted_command_and_flag_exists():
    bad = [f"{where}: `mobilebuild {text}`: {', '.join(p)}" for where, text in hints() if (p := problems_of(text))]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("line,ok", [
    ("setup --accept-licenses --tf-ref vVALUE", True),
    ("setup --android", False),
    ("model optimize MODEL -o OUT --tf-version 1.1", True),
    ("modle inspect", False),
])
def test_the_checker_can_fail(line, ok):
    assert (problems_of(line) == []) is ok
