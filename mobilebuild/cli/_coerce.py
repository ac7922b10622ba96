"""Command-line values converted without pydantic where the answer is plain.

typer >= 0.20 converts every parameter value (defaults included) with a pydantic TypeAdapter
built on first use; importing pydantic and building the adapters costs about a quarter of a
second in every command, more than most graph commands spend on their work. This module gives
the parameters of the command tree a converter that handles the plain cases itself, with the
very result the adapter gives (a str stays the str; ``8`` and ``"8"`` become 8 for an int; a
path string becomes ``Path(value)``, then typer's own path checks run), and hands every other
value to typer's adapter, so unusual input and every error message stay typer's own.

The converter is installed only where typer has this machinery (``_runtime_param`` on its
parameters); with an older typer nothing changes. A test converts sample values both ways for
every parameter of the tree.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, List, get_args, get_origin

_INT = re.compile(r"-?[0-9]+")
_FLOAT = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_NOT_PLAIN = object()  # a value the quick rules leave to typer


def install(command) -> int:
    """Give every parameter of ``command`` and its sub-commands the quick converter where its
    type is one of the plain ones; returns how many parameters got it."""
    count = sum(_install_param(param) for param in getattr(command, "params", []))
    original = getattr(command, "get_help_option", None)
    if original is not None:  # --help is made per context, not kept in params

        def get_help_option(ctx, original=original):
            option = original(ctx)
            if option is not None:
                _install_param(option)
            return option

        command.get_help_option = get_help_option
    for sub in (getattr(command, "commands", None) or {}).values():
        count += install(sub)
    return count


def _install_param(param) -> bool:
    if getattr(param, "_runtime_param", _NOT_PLAIN) is not None or not hasattr(param, "type_descriptor"):
        return False
    quick = QuickParam.for_descriptor(param.type_descriptor)
    if quick is None:
        return False
    param._runtime_param = quick
    return True


class QuickParam:
    """typer's RuntimeParam contract (``coerce(value, param, ctx)``) for one parameter."""

    def __init__(self, descriptor, item, is_list: bool):
        self.descriptor = descriptor
        self._item = item  # value -> converted value, or _NOT_PLAIN
        self._is_list = is_list
        self._full = None

    @classmethod
    def for_descriptor(cls, descriptor) -> QuickParam | None:
        annotation = descriptor.annotation
        info = descriptor.parameter_info
        if getattr(descriptor, "file_annotation", None) is not None or getattr(info, "parser", None) is not None:
            return None
        if getattr(info, "click_type", None) is not None:
            return None
        is_list = get_origin(annotation) in (list, List)
        if is_list:
            args = get_args(annotation)
            if len(args) != 1:
                return None
            annotation = args[0]
        item = _item_rule(annotation, info)
        return None if item is None else cls(descriptor, item, is_list)

    def coerce(self, value: Any, param, ctx) -> Any:
        # What typer's RuntimeParam.coerce does before it converts.
        multi = param.multiple or param.nargs == -1
        if value is None:
            return () if multi else None
        if not (multi and isinstance(value, str)):
            quick = self._quick(value, param, ctx)
            if quick is not _NOT_PLAIN:
                return quick
        return self.full().coerce(value, param=param, ctx=ctx)

    def _quick(self, value: Any, param, ctx) -> Any:
        if not self._is_list:
            return self._item(value, param, ctx)
        items = value if isinstance(value, (list, tuple)) else [value]
        out = [self._item(v, param, ctx) for v in items]
        return _NOT_PLAIN if any(v is _NOT_PLAIN for v in out) else out

    def full(self):
        """typer's own converter for this parameter (imports pydantic)."""
        if self._full is None:
            from typer._coercion import build_runtime_param

            self._full = build_runtime_param(self.descriptor)
        return self._full


def _item_rule(annotation, info):
    """The quick rule for one value of type ``annotation``, or None when there is none."""
    if annotation is bool:  # a flag's default is None for "not given" (None never reaches a rule)
        return lambda v, param, ctx: v if type(v) is bool else _NOT_PLAIN
    if annotation is str:
        return lambda v, param, ctx: v if type(v) is str else _NOT_PLAIN
    if annotation is int:
        if getattr(info, "clamp", False):
            return None
        low, high = getattr(info, "min", None), getattr(info, "max", None)

        def to_int(v, param, ctx):
            if type(v) is str and _INT.fullmatch(v):
                v = int(v)
            if type(v) is not int or (low is not None and v < low) or (high is not None and v > high):
                return _NOT_PLAIN  # out of range: typer words the error
            return v

        return to_int
    if annotation is float:
        if getattr(info, "min", None) is not None or getattr(info, "max", None) is not None:
            return None

        def to_float(v, param, ctx):
            if type(v) is float:
                return v
            if type(v) is int or (type(v) is str and _FLOAT.fullmatch(v)):
                return float(v)
            return _NOT_PLAIN

        return to_float
    if annotation is Path and getattr(info, "path_type", None) is None:
        try:
            from typer._param_types import coerce_cli_path
        except ImportError:  # a typer without this helper: leave paths to typer
            return None

        def to_path(v, param, ctx):
            if type(v) is not str and not isinstance(v, Path):
                return _NOT_PLAIN
            try:
                # With a Path in hand typer's helper runs only its checks (exists, readable, ...).
                return coerce_cli_path(Path(v), info, path_type=Path, param=param, ctx=ctx)
            except Exception:  # a check failed: typer's adapter words the error
                return _NOT_PLAIN

        return to_path
    return None
