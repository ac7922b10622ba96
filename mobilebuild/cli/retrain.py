"""`mobilebuild retrain`: a new image classifier from a folder of photos (TensorFlow's retrain.py,
its flags dashed), written as retrain.py's retrained_graph.pb + labels for the app commands."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from mobilebuild import console


def retrain_cmd(
    image_dir: Path = typer.Option(..., "--image-dir", help="Folder with one sub-folder of JPEG/PNG images per class (its name is the label)."),
    output_graph: Path = typer.Option(Path("retrained_graph.pb"), "--output-graph", help="Where to write the retrained frozen graph."),
    output_labels: Path = typer.Option(Path("retrained_labels.txt"), "--output-labels", help="Where to write the labels (one per line, in output order)."),
    bottleneck_dir: Optional[Path] = typer.Option(None, "--bottleneck-dir", help="Where bottlenecks are cached (default: the mobilebuild cache, one directory per base)."),
    how_many_training_steps: int = typer.Option(4000, "--how-many-training-steps", help="Training steps."),
    learning_rate: float = typer.Option(0.01, "--learning-rate", help="Learning rate of the new layer."),
    testing_percentage: int = typer.Option(10, "--testing-percentage", help="Percentage of images held out for the final test."),
    validation_percentage: int = typer.Option(10, "--validation-percentage", help="Percentage of images for validation during training."),
    train_batch_size: int = typer.Option(100, "--train-batch-size", help="Images per training step."),
    print_misclassified_test_images: bool = typer.Option(False, "--print-misclassified-test-images", help="List the test images the new model gets wrong."),
    base: str = typer.Option("mobilenet_v2", "--base", help="Feature extractor: mobilenet_v2 (224) | inception_v3 (299) (ImageNet weights, downloaded once and verified), or a .keras/.h5/SavedModel/.pb file."),
    input_mean: Optional[float] = typer.Option(None, "--input-mean", help="With --base FILE that does not normalise its input: the pixel mean it was trained with (default 127.5)."),
    input_std: Optional[float] = typer.Option(None, "--input-std", help="With --base FILE that does not normalise its input: the pixel std (default 127.5)."),
    export: Optional[List[str]] = typer.Option(None, "--export", help="Also write keras | savedmodel | tflite next to the output graph (repeatable)."),
) -> None:
    """Retrain an image classifier on your photos (bottlenecks cached), like TensorFlow's retrain.py."""
    from mobilebuild.graphs.retrain import RetrainOptions, retrain

    opts = RetrainOptions(
        image_dir=image_dir, output_graph=output_graph, output_labels=output_labels, bottleneck_dir=bottleneck_dir,
        how_many_training_steps=how_many_training_steps, learning_rate=learning_rate,
        testing_percentage=testing_percentage, validation_percentage=validation_percentage,
        train_batch_size=train_batch_size, print_misclassified_test_images=print_misclassified_test_images,
        base=base, input_mean=input_mean, input_std=input_std,
        export=[e.strip().lower() for v in (export or []) for e in v.split(",") if e.strip()],
    )
    result = retrain(opts)
    if console.settings.json:
        console.emit_json(result.to_dict())
        return
    say = print
    for note in result.notes:
        console.info(f"note: {note}")
    if result.misclassified:
        say("misclassified test images:")
        for m in result.misclassified:
            say(f"  {m['image']}  {m['predicted']} (is {m['label']})")
    if result.validation_accuracy is not None:
        say(f"validation accuracy = {result.validation_accuracy * 100:.1f}%")
    if result.test_accuracy is not None:
        say(f"final test accuracy = {result.test_accuracy * 100:.1f}% (N={result.test_images})")
    say(f"wrote {result.output_graph} and {result.output_labels} ({len(result.labels)} classes)")
    for fmt, path in result.exports.items():
        say(f"wrote {path} ({fmt})")


def register(root: typer.Typer) -> None:
    root.command("retrain")(retrain_cmd)
