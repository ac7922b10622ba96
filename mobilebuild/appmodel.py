"""The model and labels as they go into a demo app (Android assets, iOS camera/data).

The user's files are never modified: the model is prepared by the model toolkit
(``graphs.prepare.prepare_for_app``: strip DecodeJpeg chains, downgrade to the tree's runtime op
set, optional optimize/quantize) into a staging dir, and the flows copy from there with
``copy_if_changed`` semantics (a PatchSet), so an unchanged model keeps its mtime.
TensorFlow is imported only inside the toolkit, when a model is actually prepared.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mobilebuild.errors import ModelError, UserError

RESERVED_ASSET_NAMES = {"BUILD", "BUILD.bazel"}
OP_FILES_LIST = "tensorflow/contrib/makefile/tf_op_files.txt"


@dataclass
class AppModel:
    model: Path  # the prepared file (staging dir)
    labels: Path  # the user's (or default) labels file, copied as it is
    source_model: Path
    input_name: str
    output_name: str
    input_size: int
    mean: float
    std: float
    channels: int
    num_classes: int | None
    memory_mapped: bool
    is_default: bool
    notes: list[str] = field(default_factory=list)

    @property
    def model_asset(self) -> str:
        return self.source_model.name

    @property
    def labels_asset(self) -> str:
        return self.labels.name

    def as_dict(self) -> dict:
        return {
            "model": str(self.source_model),
            "labels": str(self.labels),
            "default_model": self.is_default,
            "input_name": self.input_name,
            "output_name": self.output_name,
            "input_size": self.input_size,
            "mean": self.mean,
            "std": self.std,
            "channels": self.channels,
            "num_classes": self.num_classes,
            "memory_mapped": self.memory_mapped,
            "notes": list(self.notes),
        }


def resolve_inputs(model: str | None, labels: str | None) -> tuple[Path, Path, bool]:
    """(model, labels, is_default): both given, or neither (the built-in default model)."""
    if model and not labels:
        raise UserError(
            f"--model {model} needs --labels",
            "pass the labels file that goes with the model (one class name per line, e.g. retrained_labels.txt)",
        )
    if labels and not model:
        raise UserError(f"--labels {labels} was given without --model", "pass --model too, or neither for the built-in default model")
    if not model:
        from mobilebuild.defaults import default_labels, default_model

        return Path(default_model()), Path(default_labels()), True
    m, lab = Path(model).expanduser(), Path(labels).expanduser()  # type: ignore[arg-type]
    for p, what in ((m, "model"), (lab, "labels")):
        if not p.is_file():
            raise ModelError(f"{what} file not found: {p}", f"check the --{what} path")
    for p, what in ((m, "model"), (lab, "labels")):
        if p.name in RESERVED_ASSET_NAMES or p.name.startswith("."):
            raise ModelError(
                f"the {what} file name {p.name!r} cannot be an app asset",
                f"rename it (e.g. {what}.{'pb' if what == 'model' else 'txt'})",
            )
    if m.name == lab.name:
        raise ModelError(f"model and labels have the same file name ({m.name})", "rename one of them")
    return m.resolve(), lab.resolve(), False


def prepare(
    tree,
    staging: Path,
    *,
    model: str | None,
    labels: str | None,
    input_size: int | None = None,
    mean: float | None = None,
    std: float | None = None,
    input_name: str | None = None,
    output_name: str | None = None,
    optimize: bool = False,
    quantize: str | None = None,
) -> AppModel:
    """Prepare the model for the tree's runtime into ``staging`` and check the labels against it."""
    model_path, labels_path, is_default = resolve_inputs(model, labels)
    from mobilebuild.graphs.prepare import prepare_for_app

    out = staging / model_path.name
    # The tree's own kernel list wins (it may have been extended); trees without one (never a
    # real 1.x checkout) use the op set bundled for their version.
    own_ops = (tree.root / OP_FILES_LIST).is_file()
    prepared = prepare_for_app(
        model_path,
        out,
        tf_version=tree.version_text,
        tf_src=tree.root if own_ops else None,
        input_name=input_name,
        output_name=output_name,
        input_size=input_size,
        mean=mean,
        std=std,
        optimize=optimize,
        quantize=quantize,
    )
    app = AppModel(
        model=Path(prepared.path),
        labels=labels_path,
        source_model=model_path,
        input_name=prepared.input_name,
        output_name=prepared.output_name,
        input_size=int(prepared.input_size),
        mean=float(prepared.mean),
        std=float(prepared.std),
        channels=int(getattr(prepared, "channels", 3) or 3),
        num_classes=getattr(prepared, "num_classes", None),
        memory_mapped=bool(getattr(prepared, "memory_mapped", False)),
        is_default=is_default,
        notes=list(getattr(prepared, "notes", []) or []),
    )
    check_labels_fit(labels_path, app.num_classes)
    return app


def label_lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ModelError(f"labels file {path} is not UTF-8 text", "save it as UTF-8, one class name per line") from exc
    return [ln for ln in text.splitlines() if ln.strip()]


def check_labels_fit(labels: Path, num_classes: int | None) -> None:
    """The demo shows labels[i] for output i: a count mismatch means wrong names on screen."""
    try:
        from mobilebuild.graphs import label as label_mod
    except ImportError:
        label_mod = None
    checker = getattr(label_mod, "check_labels", None) if label_mod else None
    if checker is not None and num_classes is not None:
        checker(labels, num_classes)
        return
    lines = label_lines(labels)
    if not lines:
        raise ModelError(f"labels file {labels} is empty", "pass the labels file written with the model (one class per line)")
    if num_classes is not None and len(lines) != num_classes:
        raise ModelError(
            f"labels file {labels} has {len(lines)} labels but the model has {num_classes} outputs",
            "pass the labels file that was written with this model (e.g. retrained_labels.txt next to retrained_graph.pb)",
        )
