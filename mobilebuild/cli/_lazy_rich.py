"""rich's Markdown and Traceback, imported when first used rather than when typer's help
renderer is.

typer's help and usage-error renderer (typer.rich_utils) imports both at its top, and with them
markdown-it, pygments and rich's syntax highlighter: about 0.15 s, more than the rest of
`mobilebuild --help` together. It renders Markdown only in the "markdown" markup mode (this CLI
keeps typer's default, "rich") and Traceback only for pretty exceptions (turned off). Until one
of them is used, ``rich.markdown`` and ``rich.traceback`` are stand-in modules whose classes
forward every use (a call, a class attribute, isinstance) to the real class, importing its
module then; any other attribute of a stand-in module imports the real module as well. Nothing
rendered changes: the real classes do all the work.
"""

from __future__ import annotations

import importlib
import sys
import types

# module -> the names typer imports from it
DEFERRED = {"rich.markdown": ("Markdown",), "rich.traceback": ("Traceback",)}


class _StandIn(types.ModuleType):
    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(_load(self.__name__), name)


def _load(module_name: str):
    """The real module (imported now if the stand-in is still in its place)."""
    if isinstance(sys.modules.get(module_name), _StandIn):
        del sys.modules[module_name]
    return importlib.import_module(module_name)


class _Forward(type):
    """Metaclass of a stand-in class: every use goes to the real class."""

    def _real(cls):
        return getattr(_load(cls._module), cls.__name__)

    def __getattr__(cls, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(cls._real(), name)

    def __call__(cls, *args, **kwargs):
        return cls._real()(*args, **kwargs)

    def __instancecheck__(cls, obj) -> bool:
        return isinstance(obj, cls._real())

    def __subclasscheck__(cls, sub) -> bool:
        return issubclass(sub, cls._real())


def defer() -> None:
    """Put the stand-ins in place of the modules not imported yet."""
    for module_name, class_names in DEFERRED.items():
        if module_name in sys.modules:
            continue
        stand_in = _StandIn(module_name)
        for name in class_names:
            setattr(stand_in, name, _Forward(name, (), {"_module": module_name, "__module__": module_name}))
        sys.modules[module_name] = stand_in


def is_stand_in(module) -> bool:
    return isinstance(module, _StandIn)
