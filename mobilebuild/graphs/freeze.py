"""Today's model files (.keras, .h5, a SavedModel directory) frozen into a GraphDef.

``frozen_graph(path, fmt)`` is the one place a Keras or SavedModel model becomes a frozen
GraphDef: the model is traced for inference (``training=False``: dropout and batch-norm updates
are gone), its variables become constants, functional control flow is lowered to the
Switch/Merge ops the old runtimes know, calls are inlined, and constant sub-expressions are
folded (so a ``Rescaling`` or ``Normalization`` layer reads as ``Mul``/``Add`` or ``Sub``/
``RealDiv`` by a constant, which ``inspect.app_info`` turns into the app's mean and std). Input
and output nodes carry the names of the model's signature (or Keras layers); the input size is
the input's shape.

The result is cached once per model content (``cache_dir()/frozen/<key>/``) under a key of the
file bytes (every file of a SavedModel directory), the signature, the freezing code and the
TensorFlow/Keras versions, so a second command on the same model loads neither Keras nor the
SavedModel. Importing this module imports no TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from mobilebuild import console
from mobilebuild.errors import ModelError
from mobilebuild.fsutil import atomic_write_bytes, atomic_write_text, mark_used
from mobilebuild.paths import cache_dir

KERAS = "keras"
KERAS_H5 = "h5"
SAVEDMODEL = "savedmodel"
DEFAULT_SIGNATURE = "serving_default"

# Ops that must not survive freezing: the phone runtimes have no variables, no function calls
# and no functional control flow.
UNFROZEN_OPS = {
    "VarHandleOp", "ReadVariableOp", "AssignVariableOp", "VariableV2", "Variable", "ResourceGather",
    "StatefulPartitionedCall", "PartitionedCall", "If", "StatelessIf", "While", "StatelessWhile",
    "Case", "StatelessCase",
}
# Operand-free ops a trace leaves behind that do nothing at inference.
_LEFTOVER_OPS = {"NoOp"}


@dataclass
class Settings:
    """The signature of SavedModels to freeze (the global ``--signature`` flag)."""

    signature: str = DEFAULT_SIGNATURE


settings = Settings()


@dataclass
class FrozenModel:
    path: Path  # the cached frozen GraphDef
    info: dict = field(default_factory=dict)  # source format, signature, input/output, notes


def is_keras_zip(path: Path) -> bool:
    """A ``.keras`` file is a zip holding the model's config.json and its weights."""
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False
    return "config.json" in names and any(n.endswith(".h5") or n == "metadata.json" for n in names)


def content_digest(path: Path) -> str:
    """sha256 of a file, or of every file of a directory (relative names and bytes)."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def _versions() -> dict:
    from importlib import metadata

    out = {}
    for dist in ("tensorflow", "keras"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def _cache_key(path: Path, fmt: str, signature: str) -> str:
    parts = {
        "content": content_digest(path),
        "format": fmt,
        "signature": signature if fmt == SAVEDMODEL else None,
        "code": hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),
        "versions": _versions(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def frozen_graph(path: str | Path, fmt: str, signature: str | None = None) -> FrozenModel:
    """The frozen GraphDef of a .keras/.h5 file or SavedModel directory (cached by content)."""
    path = Path(path)
    signature = signature or settings.signature
    key = _cache_key(path, fmt, signature)
    entry = cache_dir() / "frozen" / key
    pb, info_path = entry / "model.pb", entry / "info.json"
    if pb.is_file() and info_path.is_file():
        try:
            info = json.loads(info_path.read_text())
            if info.get("sha256") == hashlib.sha256(pb.read_bytes()).hexdigest():
                console.detail(f"{path}: frozen graph from the cache ({pb})")
                mark_used(entry)
                return FrozenModel(pb, info)
        except ValueError:
            pass  # a damaged entry is frozen again
    console.info(f"freezing {path} ({'SavedModel ' + signature if fmt == SAVEDMODEL else fmt}) into a GraphDef ...")
    graph_def, info = freeze(path, fmt, signature)
    data = graph_def.SerializeToString(deterministic=True)
    entry.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(pb, data)
    info["sha256"] = hashlib.sha256(data).hexdigest()
    # info.json last: an entry without it (interrupted) is never used.
    atomic_write_text(info_path, json.dumps(info, indent=1))
    return FrozenModel(pb, info)


def freeze(path: Path, fmt: str, signature: str = DEFAULT_SIGNATURE):
    """(GraphDef, info) of a model file; ModelError for what cannot be frozen."""
    if fmt == SAVEDMODEL:
        # ``loaded`` owns the variables the signature reads: it must live until frozen.
        loaded, fn, input_names, output_names, notes = _savedmodel_function(path, signature)
        layers = []
    else:
        model = load_keras(path)
        fn, input_names, output_names = keras_function(model)
        layers = normalisation_layers(model)
        notes = [f"frozen from the Keras model {path.name} (inference mode: dropout and batch-norm updates removed)"]
    graph_def = freeze_function(fn, output_names, str(path))
    notes += [f"{l['layer']} layer '{l['name']}': mean {_fmt(l['mean'])}, std {_fmt(l['std'])}" for l in layers]
    info = {
        "source_format": fmt,
        "signature": signature if fmt == SAVEDMODEL else None,
        "input_name": input_names[0],
        "output_names": output_names,
        "normalisation_layers": layers,
        "notes": notes,
    }
    return graph_def, info


def _fmt(x) -> str:
    if isinstance(x, list):
        return "[" + ", ".join(f"{v:g}" for v in x) + "]"
    return f"{x:g}"


# ---- Keras -------------------------------------------------------------------------------------


def load_keras(path: Path):
    """The Keras model in a .keras / .h5 file, or a ModelError saying why it does not load."""
    import keras

    try:
        return keras.models.load_model(str(path), compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises TypeError/ValueError/OSError/... for foreign files
        text = " ".join(str(exc).split())
        custom = re.search(r"Could not (?:locate|deserialize) (?:class|function) '?([\w.]+)", text) or re.search(
            r"Unknown (?:layer|object|class)[^'\"]*['\"]?([\w.]+)", text
        )
        if custom:
            raise ModelError(
                f"{path} needs custom Python code to load (unknown Keras object '{custom.group(1)}')",
                "re-save it with built-in layers only, or export it from your code as a SavedModel "
                "(model.export('saved_model')), which loads without that code",
            ) from exc
        if "lambda" in text.lower() and "safe_mode" in text:
            raise ModelError(
                f"{path} contains a Lambda layer (Python code that Keras refuses to load from a file)",
                "replace the Lambda layer by built-in layers, or export a SavedModel (model.export('saved_model'))",
            ) from exc
        if path.suffix.lower() in (".h5", ".hdf5") and ("model_config" in text or "No model config" in text or "weights" in text.lower()):
            raise ModelError(
                f"{path} holds weights only, not a model (no architecture in the file)",
                "build the model in Python, load these weights and save the whole model: model.save('model.keras')",
            ) from exc
        raise ModelError(
            f"{path} does not load as a Keras model: {text[:300]}",
            "save it with model.save('model.keras') (or export a SavedModel with model.export('saved_model'))",
        ) from exc


def keras_function(model):
    """(concrete inference function, [input name], [output names]) of a Keras model."""
    import tensorflow as tf

    inputs = list(getattr(model, "inputs", None) or [])
    if not inputs:
        raise ModelError("the Keras model has no defined inputs (a subclassed model never called)", "save a functional or Sequential model")
    _check_single_image_input([(_layer_input_name(t), tuple(t.shape), str(t.dtype)) for t in inputs], "the Keras model")
    t = inputs[0]
    name = _node_name(_layer_input_name(t))
    dtype = tf.as_dtype(getattr(t.dtype, "name", t.dtype))
    spec = tf.TensorSpec([None, *t.shape[1:]], dtype, name=name)
    fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    outputs = list(getattr(model, "output_names", None) or [])
    n_out = len(tf.nest.flatten(fn.structured_outputs))
    if len(outputs) != n_out:
        outputs = [f"output_{i}" for i in range(n_out)]
    return fn, [name], [_node_name(o) for o in outputs]


def _layer_input_name(tensor) -> str:
    hist = getattr(tensor, "_keras_history", None)
    layer = getattr(hist, "operation", None) or (hist[0] if isinstance(hist, tuple) else None)
    return getattr(layer, "name", None) or getattr(tensor, "name", None) or "input"


def _node_name(name: str) -> str:
    """A valid, readable GraphDef node name."""
    name = re.sub(r"[^A-Za-z0-9_./-]", "_", name.split(":")[0]).lstrip("_./-")
    return name or "input"


def normalisation_layers(model) -> list[dict]:
    """Rescaling / Normalization layers read as (mean, std): y = (x - mean) / std.
    ``Rescaling(scale, offset)``: mean = -offset / scale, std = 1 / scale;
    ``Normalization``: its mean and the square root of its variance (per channel when it has them)."""
    import numpy as np

    found = []
    for layer in _all_layers(model):
        kind = type(layer).__name__
        if kind == "Rescaling":
            scale = np.asarray(layer.scale, dtype="float64").reshape(-1)
            offset = np.asarray(layer.offset, dtype="float64").reshape(-1)
            if scale.size == 1 and offset.size == 1 and scale[0] != 0:
                found.append(
                    {"layer": kind, "name": layer.name, "mean": _nice(-offset[0] / scale[0]), "std": _nice(1.0 / scale[0])}
                )
        elif kind == "Normalization" and getattr(layer, "built", False):
            try:
                mean = np.asarray(layer.mean, dtype="float64").reshape(-1)
                var = np.asarray(layer.variance, dtype="float64").reshape(-1)
            except Exception:  # an unadapted layer has no statistics
                continue
            if getattr(layer, "invert", False):
                continue
            std = np.sqrt(np.maximum(var, 1e-7))
            uniform = np.ptp(mean) < 1e-6 and np.ptp(std) < 1e-6
            found.append(
                {
                    "layer": kind,
                    "name": layer.name,
                    "mean": _nice(mean[0]) if uniform else [_nice(v) for v in mean],
                    "std": _nice(std[0]) if uniform else [_nice(v) for v in std],
                }
            )
    return found


def _all_layers(model):
    for layer in getattr(model, "layers", []):
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)


def _nice(x: float) -> float:
    r = round(float(x))
    return float(r) if abs(x - r) < 1e-4 * max(1.0, abs(x)) else float(f"{float(x):.6g}")


# ---- SavedModel --------------------------------------------------------------------------------


def _savedmodel_function(path: Path, signature: str):
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as exc:  # a damaged or foreign SavedModel fails in many ways
        first = " ".join(str(exc).split())
        raise ModelError(
            f"{path} does not load as a SavedModel: {first[:300]}",
            "export it again (model.export(DIR) or tf.saved_model.save); the directory needs saved_model.pb and variables/",
        ) from exc
    sigs = dict(getattr(loaded, "signatures", {}) or {})
    if signature not in sigs:
        if sigs:
            raise ModelError(
                f"the SavedModel {path} has no signature '{signature}' (it has: {', '.join(sorted(sigs))})",
                f"pass --signature {sorted(sigs)[0]}",
            )
        raise ModelError(
            f"the SavedModel {path} has no signatures to run",
            "export it with a serving signature: model.export(DIR), or tf.saved_model.save(m, DIR, signatures=...)",
        )
    fn = sigs[signature]
    args, kwargs = fn.structured_input_signature
    specs = [(s.name or k, tuple(s.shape), s.dtype.name) for k, s in sorted(kwargs.items())] + [
        (s.name, tuple(s.shape), s.dtype.name) for s in tf.nest.flatten(args)
    ]
    _check_single_image_input(specs, f"signature '{signature}' of {path}")
    outputs = fn.structured_outputs
    output_names = sorted(outputs) if isinstance(outputs, dict) else [f"output_{i}" for i in range(len(tf.nest.flatten(outputs)))]
    notes = [f"frozen from the SavedModel {path.name}, signature '{signature}'"]
    return loaded, fn, [_node_name(fn.inputs[0].name)], [_node_name(o) for o in output_names], notes


def _check_single_image_input(specs: list[tuple], what: str) -> None:
    """The apps feed one image: a model with several inputs (or a non-image input) is refused."""
    if len(specs) > 1:
        images = [n for n, shape, _ in specs if len(shape) == 4]
        kind = f"{len(images)} image inputs" if len(images) > 1 else f"{len(specs)} inputs"
        raise ModelError(
            f"{what} has {kind} ({', '.join(str(n) for n, _, _ in specs)}); the apps feed exactly one image",
            "export a model with a single image input (e.g. a signature taking only the image)",
        )
    name, shape, dtype = specs[0]
    if len(shape) != 4 or dtype not in ("float32", "float16", "float64", "uint8"):
        raise ModelError(
            f"{what} takes '{name}' of shape {list(shape)} ({dtype}), not an image batch [N, height, width, channels]",
            "export a model whose input is a batch of images (e.g. shape [None, 224, 224, 3], float32)",
        )


# ---- freezing ----------------------------------------------------------------------------------


def freeze_function(fn, output_names: list[str], source: str):
    """A concrete function -> clean frozen GraphDef with the outputs named ``output_names``."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    try:
        frozen = convert_variables_to_constants_v2(fn, lower_control_flow=True)
    except Exception as exc:
        raise ModelError(
            f"{source} could not be frozen: {' '.join(str(exc).split())[:300]}",
            "models with ops that keep state between calls (lookup tables, RNN state) cannot become a frozen graph",
        ) from exc
    graph_def = frozen.graph.as_graph_def()
    outputs = [t.name.split(":")[0] for t in frozen.outputs]
    graph_def, outputs = _rename_outputs(graph_def, outputs, output_names)
    graph_def = _fold_constants(graph_def, outputs)
    del graph_def.library.function[:]
    left = sorted({n.op for n in graph_def.node if n.op in UNFROZEN_OPS})
    if left:
        raise ModelError(
            f"{source} could not be frozen completely: ops {', '.join(left)} remain",
            "the phone runtimes cannot run these; export the model without them (e.g. no lookup tables or stateful layers)",
        )
    return graph_def


def _rename_outputs(graph_def, outputs: list[str], names: list[str]):
    """Give the output nodes the signature's names (``Identity`` -> ``output_0``/``probs``)."""
    taken = {n.name for n in graph_def.node}
    renames = {}
    for old, new in zip(outputs, names):
        if new != old and new not in taken:
            renames[old] = new
            taken.add(new)
    for n in graph_def.node:
        if n.name in renames:
            n.name = renames[n.name]
        for i, inp in enumerate(n.input):
            ctrl = inp.startswith("^")
            base, _, port = inp.lstrip("^").partition(":")
            if base in renames:
                n.input[i] = ("^" if ctrl else "") + renames[base] + (f":{port}" if port else "")
    return graph_def, [renames.get(o, o) for o in outputs]


def _fold_constants(graph_def, outputs: list[str]):
    """Grappler's constant folding only (no layout or arithmetic rewrites the old runtimes may not
    have), then only what the outputs need. Values are unchanged; constant expressions such as
    Cast(Const) or Sqrt(variance) become one Const."""
    import tensorflow as tf
    from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2
    from tensorflow.python.grappler import tf_optimizer

    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
        for o in outputs:
            graph.add_to_collection("train_op", graph.get_operation_by_name(o))
    meta = tf.compat.v1.train.export_meta_graph(graph_def=graph.as_graph_def(add_shapes=True), graph=graph)
    config = config_pb2.ConfigProto()
    rw = config.graph_options.rewrite_options
    rw.optimizers[:] = ["constfold"]
    rw.meta_optimizer_iterations = rewriter_config_pb2.RewriterConfig.ONE
    rw.min_graph_nodes = -1
    try:
        folded = tf_optimizer.OptimizeGraph(config, meta)
    except Exception as exc:  # folding is an improvement, never a requirement
        console.detail(f"constant folding skipped: {exc}")
        folded = graph_def
    folded = tf.compat.v1.graph_util.extract_sub_graph(folded, outputs)
    keep = [n for n in folded.node if n.op not in _LEFTOVER_OPS or n.name in outputs]
    del folded.node[:]
    folded.node.extend(keep)
    kept_names = {k.name for k in keep}
    for n in folded.node:
        kept = [i for i in n.input if not (i.startswith("^") and i[1:] not in kept_names)]
        del n.input[:]
        n.input.extend(kept)
        n.attr.pop("_output_shapes", None)
    return folded
