"""Commands of this group (see mobilebuild/cli/__init__.py for global options and exit codes)."""

from __future__ import annotations

import typer


def register(root: typer.Typer) -> None:
    """Add this module's commands to the root app."""
