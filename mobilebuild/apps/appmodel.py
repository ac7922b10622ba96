"""The model and labels as they go into a demo app (Android assets, iOS camera/data).

The user's files are never modified: the model is prepared by the model toolkit
(``graphs.prepare.prepare_for_app``: strip DecodeJpeg chains, downgrade to the tree's runtime op
set, optional optimize/quantize) into a staging dir, and the flows copy from there with
``copy_if_changed`` semantics (a PatchSet), so an unchanged model keeps its mtime.
TensorFlow is imported only inside the toolkit, when a model is actually prepared.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePath, PurePosixPath

import mobilebuild
from mobilebuild import console
from mobilebuild.defaults import default_labels, default_model
from mobilebuild.errors import ModelError, UserError
from mobilebuild.fsutil import atomic_write_text, copy_if_changed, mark_used
from mobilebuild.graphs import freeze
from mobilebuild.graphs import io as model_io
from mobilebuild.graphs.label import check_labels, labels_dir_error
from mobilebuild.graphs.prepare import prepare_for_app
from mobilebuild.graphs.preprocess import check_normalisation
from mobilebuild.graphs.quantize import check_mode
from mobilebuild.paths import PACKAGE_DIR, TOOLCHAINS_DIR, cache_dir
from mobilebuild.tf.patching import check_declarations, read_text_exact, sha256_file
from mobilebuild.tf.tree import require_file

RESERVED_ASSET_NAMES = {"BUILD", "BUILD.bazel"}
OP_FILES_LIST = "tensorflow/contrib/makefile/tf_op_files.txt"


@dataclass
class ModelOptions:
    """The model options `android` and `ios` share (their options classes extend this)."""

    model: str | None = None
    labels: str | None = None
    input_size: int | None = None
    mean: float | None = None
    std: float | None = None
    input_name: str | None = None
    output_name: str | None = None
    optimize: bool = False
    quantize: str | None = None
    memmap: bool = False  # the app's copy as a memmapped package (the iOS example)


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
        return asset_name(self.source_model)

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


def asset_name(model: str | Path) -> str:
    """The app's file name for ``model``: a Keras file or SavedModel directory goes into the app
    as its frozen GraphDef, ``<name>.pb``; other models keep their name."""
    p = Path(model).expanduser()
    if p.is_dir() or p.suffix.lower() in (".keras", ".h5", ".hdf5"):
        return (p.stem if p.is_file() else p.name) + ".pb"
    return p.name


def _is_savedmodel_dir(p: Path) -> bool:
    return p.is_dir() and (p / "saved_model.pb").is_file()


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
        return Path(default_model()), Path(default_labels()), True
    m, lab = Path(model).expanduser(), Path(labels).expanduser()  # type: ignore[arg-type]
    if lab.is_dir():
        raise labels_dir_error(lab)
    for p, what in ((m, "model"), (lab, "labels")):
        if what == "model" and _is_savedmodel_dir(p):
            continue
        if p.is_dir():
            raise ModelError(
                f"--{what} {p} is a directory" + (" without saved_model.pb (not a SavedModel)" if what == "model" else ""),
                f"give the {what} file" + (" (.pb, .keras, .h5) or a SavedModel directory" if what == "model" else ""),
            )
        if not p.is_file():
            raise ModelError(f"{what} file not found: {p}", f"check the --{what} path")
    for p, what in ((m, "model"), (lab, "labels")):
        if p.name in RESERVED_ASSET_NAMES or p.name.startswith("."):
            raise ModelError(
                f"the {what} file name {p.name!r} cannot be an app asset",
                f"rename it (e.g. {what}.{'pb' if what == 'model' else 'txt'})",
            )
    if asset_name(m) == lab.name:
        raise ModelError(f"model and labels have the same file name ({m.name})", "rename one of them")
    return m.resolve(), lab.resolve(), False


def refuse_overwriting_the_source(model: str | None, target: Path) -> None:
    """The app's copy goes to ``target``: refuse when that is the user's own model file (it would
    be replaced by the prepared copy: stripped, downgraded, maybe quantized)."""
    if not model:
        return
    source = Path(model).expanduser()
    if source.exists() and target.exists() and source.resolve() == target.resolve():
        raise UserError(
            f"--model {model} is where mobilebuild writes the app's prepared copy ({target})",
            f"move your model out of {target.parent} and pass its new path: mobilebuild never overwrites your model",
        )


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
    runtime_version: str | None = None,
    runtime: str = "android",
    whole_mean: bool = False,
    memmap: bool = False,
) -> AppModel:
    """Prepare the model for the tree's runtime and check the labels against it.

    ``whole_mean``: the app keeps the mean in an int (see prepare_for_app). A Keras file or
    SavedModel directory is frozen first (graphs/freeze.py) and goes in as ``<name>.pb``.

    The prepared file is kept in the cache under a key of everything it depends on (model
    bytes, options, TF version, the tree's kernel list, mobilebuild's graph code), so a re-run
    with the same inputs neither imports TensorFlow nor rewrites anything: the no-op re-run
    costs little more than Bazel's own no-op build.
    """
    model_path, labels_path, is_default = resolve_inputs(model, labels)
    # The app's TensorFlow runtime is the tree's own unless the profile says the app links
    # another one (the iOS example of 1.3+ uses the TensorFlow-experimental pod, TF 1.1).
    version = runtime_version or tree.version_text
    # Which build of that TensorFlow the app links: the Android demo's Bazel library
    # ("android") or the makefile build ("makefile": iOS libraries, the pod). Their op sets
    # differ. For the makefile build the tree's own kernel list wins (it may have been
    # extended); the Android library's set and other versions' sets are the bundled ones.
    own_ops = runtime == "makefile" and version == tree.version_text and (tree.root / OP_FILES_LIST).is_file()
    args = {
        "input_name": input_name,
        "output_name": output_name,
        "input_size": input_size,
        "mean": mean,
        "std": std,
        "optimize": optimize,
        "quantize": quantize,
        "whole_mean": whole_mean,
        "memory_map": memmap,
    }
    key = _cache_key(model_path, tree, f"{version} {runtime}", own_ops, args)
    cached = _load_cached(key, asset_name(model_path))
    if cached is not None:
        info, path = cached
        notes = ["reused the copy prepared by an earlier run (same model, options and TF version):"]
        notes += [f"  {n}" for n in info.get("notes", [])]
    else:
        prepared = prepare_for_app(
            model_path,
            staging / asset_name(model_path),
            tf_version=version,
            tf_src=tree.root if own_ops else None,
            runtime=runtime,
            **args,
        )
        info = {
            "input_name": prepared.input_name,
            "output_name": prepared.output_name,
            "input_size": int(prepared.input_size),
            "mean": float(prepared.mean),
            "std": float(prepared.std),
            "channels": int(getattr(prepared, "channels", 3) or 3),
            "num_classes": getattr(prepared, "num_classes", None),
            "memory_mapped": bool(getattr(prepared, "memory_mapped", False)),
            "notes": list(getattr(prepared, "notes", []) or []),
        }
        path = _store_cached(key, Path(prepared.path), info)
        notes = info["notes"]
    app = AppModel(
        model=path,
        labels=labels_path,
        source_model=model_path,
        input_name=info["input_name"],
        output_name=info["output_name"],
        input_size=info["input_size"],
        mean=info["mean"],
        std=info["std"],
        channels=info["channels"],
        num_classes=info["num_classes"],
        memory_mapped=info["memory_mapped"],
        is_default=is_default,
        notes=notes,
    )
    check_labels_fit(labels_path, app.num_classes)
    return app


def prepare_from(tree, staging: Path, opts: ModelOptions, runtime_version: str | None = None,
                 runtime: str = "android", whole_mean: bool = False) -> AppModel:
    """``prepare`` with the model options of an ``android``/``ios`` command."""
    return prepare(
        tree,
        staging,
        model=opts.model,
        labels=opts.labels,
        input_size=opts.input_size,
        mean=opts.mean,
        std=opts.std,
        input_name=opts.input_name,
        output_name=opts.output_name,
        optimize=opts.optimize,
        quantize=opts.quantize,
        runtime_version=runtime_version,
        runtime=runtime,
        whole_mean=whole_mean,
        memmap=opts.memmap,
    )


# ---- the cache of prepared models -------------------------------------------------------------


def _graph_code_digest() -> str:
    """mobilebuild's graph code: a changed rewrite rule must not reuse an old prepared file."""

    h = hashlib.sha256(mobilebuild.__version__.encode())
    for src in sorted((PACKAGE_DIR / "graphs").glob("*.py")) + sorted(TOOLCHAINS_DIR.rglob("*")):
        if src.is_file():
            h.update(src.name.encode())
            h.update(src.read_bytes())
    return h.hexdigest()


def _cache_key(model_path: Path, tree, runtime: str, own_ops: bool, args: dict) -> str:
    parts = {
        "model": freeze.content_digest(model_path),
        "name": model_path.name,
        "tf_version": runtime,
        "ops": sha256_file(tree.root / OP_FILES_LIST) if own_ops else "bundled",
        "code": _graph_code_digest(),
        "args": args,
        # a SavedModel is frozen with the signature of the global --signature flag
        "signature": freeze.settings.signature if model_io.detect_format(model_path) == model_io.SAVEDMODEL else None,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _cache_dir(key: str) -> Path:
    return cache_dir() / "prepared" / key


def _load_cached(key: str, name: str) -> tuple[dict, Path] | None:
    d = _cache_dir(key)
    info_path, model = d / "info.json", d / name
    if not (info_path.is_file() and model.is_file()):
        return None
    try:
        info = json.loads(info_path.read_text())
    except ValueError:
        return None
    if info.get("sha256") != sha256_file(model):
        return None  # damaged cache entry: prepare again
    mark_used(d)
    return info, model


def _store_cached(key: str, prepared: Path, info: dict) -> Path:
    d = _cache_dir(key)
    d.mkdir(parents=True, exist_ok=True)
    target = d / prepared.name
    copy_if_changed(prepared, target)
    # info.json last: an entry without it (interrupted copy) is never used.
    atomic_write_text(d / "info.json", json.dumps({**info, "sha256": sha256_file(target)}, indent=1))
    return target


def check_labels_fit(labels: Path, num_classes: int | None) -> None:
    """The demo shows labels[i] for output i: a count mismatch means wrong names on screen.
    (The model toolkit's own check: the same rule and message as `mobilebuild model label`.)"""

    check_labels(labels, num_classes)


# ---- checks shared by the app flows (android, ios) ----------------------------------------------


def check_constants(tree, section: str, rel: str) -> None:
    """Every constant of the profile declared exactly once with its type (before model work)."""

    p = tree.profile
    path = require_file(tree, rel, f"{section} file to patch")
    check_declarations(
        read_text_exact(path),
        p.require(f"{section}.constants"),
        pattern=p.require(f"{section}.declaration"),
        file_label=rel,
        expected=f"the {p.family} profile for TensorFlow {tree.version_text}",
    )


def check_model_options(o) -> None:
    """Option values that are wrong whatever the model is: refused before any model work."""
    resolve_inputs(o.model, o.labels)  # --model without --labels, missing files, reserved names

    if o.quantize:
        check_mode(o.quantize)
    # nan/inf have no Java or C literal: the patched source would not compile.
    check_normalisation(o.mean, o.std, o.input_size)


def check_asset_names(profile, paths) -> None:
    """Asset file names the demo's Bazel can turn into labels (profile ``android.asset_name_pattern``)."""

    pattern = profile.get("android.asset_name_pattern")
    if not pattern:
        return
    for path in paths:
        if not path:
            continue
        name = PurePath(path).name
        if not re.match(pattern, name):
            safe = re.sub(r"[^A-Za-z0-9_@+,=~.-]", "_", name)
            raise UserError(
                f"the file name {name!r} cannot be an Android asset of TensorFlow {profile.version_text}: "
                "Bazel rejects it as a label (spaces, quotes and similar are not allowed)",
                f"copy or rename it, e.g. to {safe!r}, and pass that path",
            )


def ios_common_values(m) -> dict:
    """The constants both iOS camera examples (TF-Mobile and TFLite) take from a prepared model:
    labels file name and type, input size, channels, mean/std and the node names."""
    labels = PurePosixPath(m.labels_asset)
    return {
        "labels_file_name": labels.stem if labels.suffix else labels.name,
        "labels_file_type": labels.suffix[1:] if labels.suffix else "",
        "input_size": m.input_size,
        "channels": m.channels,
        "mean": m.mean,
        "std": m.std,
        "input_name": m.input_name,
        "output_name": m.output_name,
    }


def report_model(m) -> None:
    what = "built-in default model" if m.is_default else m.source_model.name
    classes = f", {m.num_classes} classes" if m.num_classes else ""
    console.info(
        f"model {what}: input {m.input_name} {m.input_size}x{m.input_size}x{m.channels}, "
        f"mean {m.mean:g}, std {m.std:g}, output {m.output_name}{classes}"
    )
    for note in m.notes:
        console.info(f"  {note}")


def refuse_removed_demo(tree, which: str) -> None:
    """A tree from after the TF-Mobile demos were removed upstream: say so, and where to go."""
    p = tree.profile
    if p.get("removed.since"):
        raise UserError(
            f"TensorFlow {tree.version_text} has no TF-Mobile {which} demo: {p.require('removed.why')}",
            p.require("removed.hint"),
        )
