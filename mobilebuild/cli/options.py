"""Option helpers shared by the command modules: choices shown in help and completed by the
shell, while the value is still checked by the core function (one `error:` line + hint, exit 1,
naming the valid values) rather than by click's usage error."""

from __future__ import annotations

import functools
from typing import Any, Callable, Iterable

import typer

from mobilebuild import console


def choice_option(default: Any, *decls: str, choices: Iterable[str], help: str, **kwargs: Any) -> Any:
    """A typer.Option whose help shows ``[a|b|c]`` and whose shell completion offers them."""
    values = list(choices)

    def complete(incomplete: str) -> list[str]:
        return [v for v in values if v.startswith(incomplete)]

    return typer.Option(default, *decls, metavar="[" + "|".join(values) + "]", autocompletion=complete, help=help, **kwargs)


def working(message: str) -> Callable:
    """Run the command under a spinner saying ``message`` (at a terminal only): loading
    TensorFlow and model work take seconds. It ends when the command prints its result."""

    def wrap(command: Callable) -> Callable:
        @functools.wraps(command)
        def run(*args: Any, **kwargs: Any) -> Any:
            with console.spinner(message):
                return command(*args, **kwargs)

        return run

    return wrap
