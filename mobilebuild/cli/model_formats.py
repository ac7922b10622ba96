"""`mobilebuild model quantize | memmap | tflite` (registered on the `model` group)."""

from __future__ import annotations

import typer


def register(model_app: typer.Typer) -> None:
    """Add this module's commands to the `model` group."""
