"""Compare two models on the same images: does the smaller / faster one still say the same?

Top-1 agreement, accuracy against folder labels (``DIR/class_name/*.jpg``), max abs difference of
the outputs, size ratio, mean latency per image. This is how a user checks a claim like "8-bit is
4x smaller and loses < 1 % accuracy" on their own model.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

from mobilebuild import console
from mobilebuild.errors import ModelError
from mobilebuild.graphs import preprocess
from mobilebuild.graphs.execute import open_model
from mobilebuild.graphs.label import check_labels, find_labels_for
from mobilebuild.graphs.preprocess import load_batch

BATCH = 16


@dataclass
class ModelFigures:
    path: str
    format: str
    size_bytes: int
    input_name: str
    output_name: str
    latency_ms: float  # mean per image, batches of BATCH, after one warm-up batch
    accuracy: float | None = None


@dataclass
class CompareReport:
    images: int
    a: ModelFigures
    b: ModelFigures
    top1_agreement: float
    max_abs_diff: float | None
    size_ratio: float  # size of A / size of B
    accuracy_drop: float | None = None  # A's accuracy minus B's, in points

    def to_dict(self) -> dict:
        return asdict(self)


def _run_all(runner, files, size, mean, std, channels, tag: str = ""):
    import numpy as np

    batches = [load_batch(files[i : i + BATCH], size, mean, std, channels) for i in range(0, len(files), BATCH)]
    runner.run(batches[0])  # warm-up: the first run builds kernels / allocates
    outputs, elapsed = [], 0.0
    with console.counter(f"model {tag}: images", len(files)) as advance:
        for batch in batches:
            start = time.perf_counter()
            out = runner.run(batch)
            elapsed += time.perf_counter() - start
            outputs.append(np.asarray(out, dtype=np.float32).reshape(len(batch), -1))
            advance(len(batch))
    return np.concatenate(outputs), elapsed * 1000.0 / len(files)


def compare_models(
    model_a,
    model_b,
    images_dir,
    *,
    labels_from_dirs: bool = False,
    labels_path=None,
    input_name=None,
    output_name=None,
    input_size=None,
    mean=None,
    std=None,
) -> CompareReport:
    import numpy as np

    files = preprocess.list_images(images_dir)
    truth = preprocess.folder_labels(images_dir, files) if labels_from_dirs else None
    runner_a = open_model(model_a, input_name=input_name, output_name=output_name, input_size=input_size, mean=mean, std=std)
    # B (often a .tflite or a quantized copy) learns what A knows unless it tells otherwise.
    try:
        runner_b = open_model(
            model_b, input_name=input_name, output_name=output_name, input_size=input_size, mean=mean, std=std, reference=runner_a
        )
    except ModelError:
        if input_name is None and output_name is None:
            raise
        runner_b = open_model(model_b, input_size=input_size, mean=mean, std=std, reference=runner_a)
    figures, outputs = [], []
    for tag, path, runner in (("A", model_a, runner_a), ("B", model_b, runner_b)):
        out, latency = _run_all(runner, files, runner.input_size, runner.mean, runner.std, runner.channels, tag)
        outputs.append(out)
        figures.append(
            ModelFigures(str(path), runner.format, runner.size_bytes, runner.input_name, runner.output_name, round(latency, 3))
        )
        runner.close()
    out_a, out_b = outputs
    if out_a.shape != out_b.shape:
        raise ModelError(
            f"the models output different shapes ({out_a.shape[1]} vs {out_b.shape[1]} values per image)",
            "compare two versions of the same model (e.g. float vs quantized)",
        )
    top_a, top_b = out_a.argmax(1), out_b.argmax(1)
    report = CompareReport(
        images=len(files),
        a=figures[0],
        b=figures[1],
        top1_agreement=round(float(np.mean(top_a == top_b)), 4),
        max_abs_diff=float(np.abs(out_a - out_b).max()),
        size_ratio=round(figures[0].size_bytes / figures[1].size_bytes, 3) if figures[1].size_bytes else 0.0,
    )
    if truth is not None:
        labels_p = Path(labels_path) if labels_path else find_labels_for(model_a) or find_labels_for(model_b)
        if labels_p is None:
            raise ModelError(
                "--labels-from-dirs needs the model's labels to map folder names to outputs",
                "pass --labels LABELS_FILE (one class name per line, in output order)",
            )
        labels = check_labels(labels_p, out_a.shape[1])
        index = {name: i for i, name in enumerate(labels)}
        unknown = sorted({t for t in truth if t not in index})
        if unknown:
            raise ModelError(
                f"folder name(s) {', '.join(unknown[:3])} are not in the labels file {labels_p}",
                "name each class folder exactly like its line in the labels file",
            )
        expected = np.array([index[t] for t in truth])
        report.a.accuracy = round(float(np.mean(top_a == expected)), 4)
        report.b.accuracy = round(float(np.mean(top_b == expected)), 4)
        report.accuracy_drop = round((report.a.accuracy - report.b.accuracy) * 100.0, 2)
    return report
