"""Jinja rendering of every text we put into someone's files (templates/ and WORKSPACE.tmpl).

StrictUndefined: a missing value is a bug, never an empty string in generated source.
The filters escape values for the language they land in.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from mobilebuild.paths import TEMPLATES_DIR, WORKSPACE_TEMPLATE_DIRS


def java_string(value: str) -> str:
    """A Java (and Starlark/C++) double-quoted string literal, quotes included."""
    out = []
    for ch in str(value):
        code = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04x}")
        elif code > 0x7E:
            # Escape non-ASCII so the source file's encoding never matters.
            for unit in _utf16_units(ch):
                out.append(f"\\u{unit:04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def objc_string(value: str) -> str:
    """An Objective-C NSString literal: @"..." with C escapes (UTF-8 stays literal-safe)."""
    return "@" + c_string(value)


def c_string(value: str) -> str:
    """A C/C++ string literal; non-ASCII as octal UTF-8 bytes so any compiler reads it."""
    out = []
    for byte in str(value).encode("utf-8"):
        ch = chr(byte)
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "?":
            out.append("\\?")  # no trigraphs
        elif byte < 0x20 or byte >= 0x7F:
            out.append(f"\\{byte:03o}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def starlark_string(value: str) -> str:
    """A Starlark string literal (JSON escapes are a valid subset)."""
    return json.dumps(str(value), ensure_ascii=True)


def _utf16_units(ch: str) -> list[int]:
    data = ch.encode("utf-16-be")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


@lru_cache(maxsize=1)
def environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(TEMPLATES_DIR), *(str(d) for d in WORKSPACE_TEMPLATE_DIRS)]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["java_string"] = java_string
    env.filters["objc_string"] = objc_string
    env.filters["c_string"] = c_string
    env.filters["starlark_string"] = starlark_string
    return env


def render(template_name: str, **values: Any) -> str:
    return environment().get_template(template_name).render(**values)
