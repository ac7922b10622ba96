"""`mobilebuild model ...`: inspect, optimize, check, downgrade, label, compare (this module) and
quantize, memmap, tflite (cli/model_formats.py). TensorFlow is imported inside the commands."""

from __future__ import annotations

import typer

model_app = typer.Typer(
    name="model",
    help="Inspect, optimize, quantize, memory-map, check and run a TensorFlow image model.",
    no_args_is_help=True,
)


def register(root: typer.Typer) -> None:
    from mobilebuild.cli import model_formats

    model_formats.register(model_app)
    root.add_typer(model_app, name="model")
