"""Labels files (one class name per line, in output order) and labelling images with a model."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from mobilebuild import defaults
from mobilebuild.errors import ModelError
from mobilebuild.graphs.execute import open_model
from mobilebuild.graphs.preprocess import load_batch

# Names retrain.py and the demos use for the labels next to a graph.
LABEL_FILE_NAMES = ("labels.txt", "output_labels.txt", "retrained_labels.txt", "imagenet_comp_graph_label_strings.txt")


def read_labels(path) -> list[str]:
    p = Path(path)
    if p.is_dir():
        raise labels_dir_error(p)
    if not p.is_file():
        raise ModelError(f"labels file not found: {p}", "give the labels file (one class name per line) with --labels")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ModelError(f"labels file {p} is not UTF-8 text", "give a text file with one class name per line") from exc
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise ModelError(f"labels file {p} is empty", "write one class name per line, in the model's output order")
    blank = [i + 1 for i, line in enumerate(lines) if not line]
    if blank:
        # Line i names output i: a blank line would shift or leave unnamed every class after it.
        where = f"line {blank[0]} is" if len(blank) == 1 else f"lines {', '.join(map(str, blank[:5]))} are"
        raise ModelError(
            f"labels file {p}: {where} blank",
            "line N names output N: remove the blank line(s) or write the class name there",
        )
    return lines


def labels_dir_error(p: Path) -> ModelError:
    """--labels given a directory: name the text files in it that could be meant."""
    candidates = sorted(x.name for x in p.glob("*.txt"))[:3]
    hint = f"give the file inside it, e.g. --labels {p / candidates[0]}" if candidates else "give the labels file (one class name per line), not a directory"
    return ModelError(f"--labels {p} is a directory, not a labels file", hint)


def check_labels(path, num_classes: int | None) -> list[str]:
    """The labels of ``path``; ModelError when their count differs from the model's classes."""
    labels = read_labels(path)
    if num_classes and len(labels) != num_classes:
        raise ModelError(
            f"labels file {path} has {len(labels)} lines but the model outputs {num_classes} classes",
            "use the labels file written together with this model (one line per class, in output order)",
        )
    return labels


def find_labels_for(model_path) -> Path | None:
    """A labels file sitting next to the model (``<stem>_labels.txt``, ``labels.txt``, ...)."""
    p = Path(model_path)
    if p.resolve() == defaults.default_model().resolve():
        return defaults.default_labels()
    for candidate in [p.with_name(f"{p.stem}_labels.txt"), p.with_suffix(".txt")] + [p.with_name(n) for n in LABEL_FILE_NAMES]:
        if candidate.is_file() and candidate.resolve() != p.resolve():
            return candidate
    return None


@dataclass
class Prediction:
    index: int
    label: str
    score: float


@dataclass
class LabelResult:
    image: str
    predictions: list[Prediction] = field(default_factory=list)


@dataclass
class LabelReport:
    model: str
    format: str
    input_name: str
    output_name: str
    input_size: int
    mean: float
    std: float
    labels: str | None
    results: list[LabelResult] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def label_images(
    model_path,
    images,
    *,
    labels_path=None,
    top_k: int = 5,
    input_name=None,
    output_name=None,
    input_size=None,
    mean=None,
    std=None,
) -> LabelReport:
    import numpy as np

    if top_k < 1:
        raise ModelError(f"--top-k must be at least 1, got {top_k}", "e.g. --top-k 5")
    runner = open_model(model_path, input_name=input_name, output_name=output_name, input_size=input_size, mean=mean, std=std)
    labels_p = Path(labels_path) if labels_path else find_labels_for(model_path)
    labels = check_labels(labels_p, runner.num_classes) if labels_p else None
    batch = load_batch(images, runner.input_size, runner.mean, runner.std, runner.channels)
    probs = runner.run(batch)
    report = LabelReport(
        model=str(model_path),
        format=runner.format,
        input_name=runner.input_name,
        output_name=runner.output_name,
        input_size=runner.input_size,
        mean=runner.mean,
        std=runner.std,
        labels=str(labels_p) if labels_p else None,
    )
    for img, row in zip(images, probs.reshape(len(images), -1)):
        if labels is not None and len(labels) != row.shape[0]:
            check_labels(labels_p, row.shape[0])
        order = np.argsort(-row, kind="stable")[:top_k]
        report.results.append(
            LabelResult(
                str(img),
                [Prediction(int(i), labels[i] if labels else str(int(i)), float(row[i])) for i in order],
            )
        )
    runner.close()
    return report
