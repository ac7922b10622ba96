"""Frozen GraphDef / SavedModel -> TFLite, and running a .tflite with LiteRT.

TF 2.21 no longer has tf.lite.Interpreter and tflite-runtime does not work with NumPy 2, so
.tflite files run through ai_edge_litert. ``none``, ``dynamic`` and ``int8`` keep float inputs
and outputs (``int8`` quantizes the inside, with float fallback where an op has no int8 kernel),
so such a model is a drop-in replacement for the float one in ``label`` and ``compare``.
``uint8`` is the older quantization the stock TFLite camera demos were built for: uint8 input
(raw pixels), uint8 tensors throughout with one scale and zero point each, uint8 output, and
version-1 kernels that every TFLite runtime from TF 1.5 has. The converter makes it from a graph
whose activations carry ranges (FakeQuant nodes); the ranges are measured here by running the
float graph on the representative images.

With ``tf_version`` the result must load in the TFLite runtime of that TensorFlow release
(``graphs.tflite_ops``): where the default conversion writes op versions that runtime lacks,
converter settings that write older versions are tried; if none fits, the conversion is refused
with every op and version named.
TensorFlow and LiteRT are imported inside the functions, never at module import.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from mobilebuild import console
from mobilebuild.errors import ModelError, UserError
from mobilebuild.fsutil import check_output_path, write_if_changed
from mobilebuild.graphs import io, nodes as gn, tflite_ops
from mobilebuild.graphs.appinfo import app_info
from mobilebuild.graphs.nodes import require_nodes
from mobilebuild.graphs.prepare import cut_for_app
from mobilebuild.graphs.preprocess import IMAGE_SUFFIXES, check_normalisation, load_image
from mobilebuild.graphs.quantize import sink_names

QUANTIZE_MODES = ("none", "dynamic", "int8", "uint8")
# Modes that calibrate activation ranges on sample inputs.
CALIBRATED_MODES = ("int8", "uint8")
# Converter settings tried in order when the default output needs op versions the target
# runtime lacks. Per-tensor (not per-channel) weight scales and the older dynamic-range
# quantizer write older CONV_2D / FULLY_CONNECTED versions.
OLDER_OP_SETTINGS = {
    "dynamic": (
        {"_experimental_disable_per_channel": True},
        {"_experimental_disable_per_channel": True, "experimental_new_dynamic_range_quantizer": False},
    ),
}
MAX_REPRESENTATIVE_IMAGES = 200


class TfliteModeError(UserError):
    """An unknown --quantize value or a missing representative set."""


@dataclass
class ConvertResult:
    out: Path
    input_names: list[str]
    output_names: list[str]
    input_shape: list[int]
    quantize: str
    size_in: int
    size_out: int
    representative_images: int = 0
    tflite_runtime: str | None = None  # the runtime tag it was fitted to
    operators: list[str] = field(default_factory=list)  # "CONV_2D v1", ...
    settings: dict = field(default_factory=dict)  # converter settings that made it fit
    # (mean, std) the input expects pixels normalised with, when given or known from the graph
    normalisation: tuple[float, float] | None = None

    def as_dict(self) -> dict:
        return {
            "output": str(self.out),
            "inputs": self.input_names,
            "outputs": self.output_names,
            "input_shape": self.input_shape,
            "quantize": self.quantize,
            "size_before": self.size_in,
            "size_after": self.size_out,
            "representative_images": self.representative_images,
            "tflite_runtime": self.tflite_runtime,
            "operators": list(self.operators),
            "converter_settings": dict(self.settings),
        }


def check_quantize(quantize: str, representative_images) -> None:
    if quantize not in QUANTIZE_MODES:
        raise TfliteModeError(f"unknown --quantize value {quantize!r}", f"valid values: {', '.join(QUANTIZE_MODES)}")
    if quantize in CALIBRATED_MODES and not representative_images:
        raise TfliteModeError(
            f"--quantize {quantize} needs sample inputs to calibrate activation ranges",
            "add --representative-images DIR (a folder of typical JPEG/PNG images)",
        )


def convert(
    model_path_or_savedmodel,
    out,
    quantize: str = "none",
    representative_images=None,
    input_names=None,
    output_names=None,
    input_shape=None,
    mean: float | None = None,
    std: float | None = None,
    tf_version: str | None = None,
) -> ConvertResult:
    """Convert and write ``out`` atomically. ``mean``/``std`` normalise the representative
    images exactly as the app will, (pixel - mean) / std; when not given they are read from
    the graph (see ``representative_normalisation``). With ``tf_version`` the result loads in
    that release's TFLite runtime, or nothing is written and the error names each op version
    it lacks."""

    check_quantize(quantize, representative_images)
    runtime = tflite_ops.load_runtime(tf_version) if tf_version else None
    src = io.require_file(model_path_or_savedmodel)
    out_p = check_output_path(out, src)
    fmt = io.detect_format(src)
    rep_files = _image_files(representative_images) if representative_images else []
    needs_normalisation = bool(rep_files) and (mean is None or std is None)
    app = None
    graph_def = None
    if fmt == io.SAVEDMODEL and quantize != "uint8":
        # uint8 measures activation ranges by running the graph: the SavedModel is frozen for it
        first, ins, outs, shape = _savedmodel_converter(src)
        fresh = [first]
    elif fmt != io.TFLITE:  # a .pb, a memmapped package, a Keras file or SavedModel frozen on loading
        graph_def, _ = io.load_frozen_graph(src)
        # What the graph tells about its input: where image decoding ends, how pixels are normalised.
        app = app_info(graph_def)
        if quantize == "uint8" and not input_names:
            graph_def, input_names = _cut_normalisation(graph_def, app)
        graph_def, ins, outs, shape = _graph_for_conversion(src, graph_def, app, input_names, output_names, input_shape)
    else:
        raise ModelError(f"{src} is already a .tflite model", "convert the frozen .pb (or SavedModel) it came from")
    if needs_normalisation:
        mean, std = representative_normalisation(app, ins, mean, std)
    known = app.normalisation_of(ins[0]) if app is not None and ins else None
    normalisation = (mean, std) if mean is not None and std is not None else known
    if quantize == "uint8":
        graph_def = _with_measured_ranges(graph_def, ins[0], shape, rep_files, mean, std)

    def make_converter():
        if graph_def is None:  # a converter converts once: later attempts load the SavedModel again
            return fresh.pop() if fresh else _savedmodel_converter(src)[0]
        return _frozen_converter(graph_def, ins, outs, shape)

    attempts = [{}] + (list(OLDER_OP_SETTINGS.get(quantize, ())) if runtime is not None else [])
    first_problems = None
    for settings in attempts:
        converter = make_converter()
        _apply_quantization(converter, quantize, rep_files, shape, mean, std, ins)
        for key, value in settings.items():
            setattr(converter, key, value)
        data = _run_converter(converter, src)
        model = tflite_ops.read_tflite(data, label=str(out_p))
        problems = tflite_ops.check_model(model, runtime) if runtime is not None else []
        if not problems:
            break
        first_problems = first_problems or problems
    else:
        raise tflite_ops.refusal(
            first_problems,
            f"the --quantize {quantize} conversion of {src.name} does not load in the TFLite runtime of TF {runtime.version_text}",
            _fitting_hint(quantize, first_problems),
        )
    write_if_changed(out_p, data)
    size_in = src.stat().st_size if src.is_file() else sum(f.stat().st_size for f in src.rglob("*") if f.is_file())
    return ConvertResult(out_p, ins, outs, shape, quantize, size_in, len(data), len(rep_files),
                         tflite_runtime=runtime.tag if runtime else None,
                         operators=[str(c) for c in model.op_codes], settings=dict(settings),
                         normalisation=normalisation)


def _fitting_hint(quantize: str, problems) -> str:
    """What to try instead: the modes that write version-1 kernels, unless an op is missing whatever its version."""
    if any(p.kind != tflite_ops.NEWER_VERSION and p.op not in ("QUANTIZE", "DEQUANTIZE") for p in problems):
        return ("the runtime has no kernel for an op of this model: cut it away (--output-names at an earlier node) "
                "or use a newer TensorFlow tree")
    others = [m for m in ("uint8", "none") if m != quantize]
    return (f"use --quantize {' or --quantize '.join(others)} (version-1 kernels every TFLite runtime has), "
            "or a newer TensorFlow tree")


def representative_normalisation(app, inputs: list[str], mean, std) -> tuple[float, float]:
    """How to turn representative pixels into what the converted input expects: what the
    graph's AppInfo ``app`` tells about that input (None for a SavedModel), else the common
    127.5/127.5."""
    auto = app.normalisation_of(inputs[0]) if app is not None and inputs else None
    given = {"mean": mean, "std": std}
    if auto is not None:
        mean, std = (auto[0] if mean is None else mean, auto[1] if std is None else std)
        if all(v is None for v in given.values()):
            origin = ", read from the graph"
        else:
            origin = " (" + ", ".join(f"{k} {'given' if v is not None else 'read from the graph'}" for k, v in given.items()) + ")"
        console.info(f"representative images: (pixel - {mean:g}) / {std:g}{origin}")
    else:
        mean, std = (127.5 if mean is None else mean, 127.5 if std is None else std)
        console.warn(f"representative images normalised as (pixel - {mean:g}) / {std:g}; pass --mean/--std if training used others")
    check_normalisation(mean, std)  # a graph may carry a std of 0 too: never feed inf/nan to the calibrator
    return mean, std


def _graph_for_conversion(src: Path, graph_def, app, input_names, output_names, input_shape):
    """(graph, inputs, outputs, input shape) to convert. ``graph_def``: the model with real
    Consts; ``app``: its AppInfo (needed without ``input_names``)."""
    if not input_names:
        graph_def, input_names = _cut_image_decoding(graph_def, app)
    nodes = {n.name: n for n in graph_def.node}
    ins = list(input_names) if input_names else [n.name for n in graph_def.node if n.op == "Placeholder"]
    if not ins:
        raise ModelError(f"{src} has no Placeholder input", "give the input node with --input-names")
    if output_names:
        outs = list(output_names)
    else:
        outs = sink_names(graph_def)
    # Node names: the converter takes no tensor suffixes (``input:0`` is "invalid" to it).
    ins = require_nodes(graph_def, ins, "input node")
    outs = require_nodes(graph_def, outs, "output node")
    shape = list(input_shape) if input_shape else _placeholder_shape(nodes[ins[0]])
    if shape is None:
        raise ModelError(f"the shape of input {ins[0]!r} is unknown", "give it with --input-shape, e.g. 1,224,224,3")
    return graph_def, ins, outs, shape


def _frozen_converter(graph_def, ins, outs, shape):
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="mobilebuild-tflite-") as tmp:
        # The TF1 converter reads the graph from a file; a temp copy covers memmapped input.
        pb = Path(tmp) / "frozen.pb"
        pb.write_bytes(io.serialize(graph_def))
        return tf.compat.v1.lite.TFLiteConverter.from_frozen_graph(str(pb), ins, outs, input_shapes={ins[0]: shape})


# Ops whose output keeps the range of their input (the uint8 kernels require the same scale on
# both sides, or the converter inserts a requantize op old runtimes lack) or has a fixed one
# (softmax, logistic): no measured range of their own.
_NO_RANGE_OPS = {"Const", "Placeholder", "PlaceholderWithDefault", "Identity", "NoOp", "Reshape", "Squeeze",
                 "ExpandDims", "Softmax", "Sigmoid", "Shape", "FakeQuantWithMinMaxVars", "FakeQuantWithMinMaxArgs",
                 "AvgPool", "MaxPool", "Pad", "Transpose", "SpaceToDepth", "DepthToSpace", "Slice", "StridedSlice",
                 "Gather", "GatherV2", "ResizeNearestNeighbor"}


_FOLDED_FOLLOWERS = {"BiasAdd", "Add", "AddV2", "FusedBatchNorm", "FusedBatchNormV3", "Relu", "Relu6"}


def _with_measured_ranges(graph_def, input_name: str, shape, rep_files, mean: float, std: float):
    """The graph with a FakeQuant node after every float activation that depends on the input,
    its range the min/max the float graph produced on the representative images: what a
    quantization-aware trained graph carries, and what the converter needs for uint8 tensors."""
    import numpy as np
    import tensorflow as tf

    consumers = gn.data_consumers(graph_def)
    # Where a quantization-aware graph has no range: before an op the converter folds into its
    # producer (bias, batch norm, activation). A range there would keep them apart, leaving a
    # separate uint8 RELU or requantize op that old runtimes lack.
    folded_into_next = {
        name for name, users in consumers.items()
        if len(users) == 1 and users[0].op in _FOLDED_FOLLOWERS
    }
    downstream, todo = set(), [input_name]
    while todo:  # nodes whose value depends on the input
        name = todo.pop()
        for c in consumers.get(name, ()):
            cname = getattr(c, "name", c)
            if cname not in downstream:
                downstream.add(cname)
                todo.append(cname)
    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
    watched = []
    for op in graph.get_operations():
        if (op.name in downstream and op.type not in _NO_RANGE_OPS and op.name not in folded_into_next
                and op.outputs and op.outputs[0].dtype == tf.float32):
            watched.append(op.name)
    lo = {n: np.inf for n in watched}
    hi = {n: -np.inf for n in watched}
    size, channels = (shape[1], shape[2]), shape[3] if len(shape) == 4 else 3
    with tf.compat.v1.Session(graph=graph) as sess:
        fetches = [f"{n}:0" for n in watched]
        for path in rep_files:
            x = load_image(path, size, mean, std, channels)[None, ...]
            for name, value in zip(watched, sess.run(fetches, {f"{input_name}:0": x})):
                lo[name] = min(lo[name], float(value.min()))
                hi[name] = max(hi[name], float(value.max()))
    out = type(graph_def)()
    out.CopyFrom(graph_def)
    renamed = {}
    for name in watched:
        fq = out.node.add()
        fq.name = f"{name}/mobilebuild_range"
        fq.op = "FakeQuantWithMinMaxArgs"
        fq.input.append(name)
        # The range must hold 0 (zero points are integers); a constant activation gets a tiny span.
        low, high = min(lo[name], 0.0), max(hi[name], 0.0)
        if high - low < 1e-6:
            high = low + 1e-6
        fq.attr["min"].f = low
        fq.attr["max"].f = high
        fq.attr["num_bits"].i = 8
        fq.attr["narrow_range"].b = False
        renamed[name] = fq.name
    for node in out.node:
        if node.name.endswith("/mobilebuild_range"):
            continue
        for i, inp in enumerate(node.input):
            base = inp[:-2] if inp.endswith(":0") else inp
            if base in renamed and not inp.startswith("^"):
                node.input[i] = renamed[base]
    return out


def _cut_image_decoding(graph_def, app):
    """(graph, input names): a retrain.py-shaped graph (DecodeJpeg -> ... -> Mul) is cut at the
    node after its normalisation, as for the app: TFLite has no DecodeJpeg kernel either."""

    if not (app.needs_cut and app.input_name and app.output_name):
        return graph_def, None
    cut, notes = cut_for_app(graph_def, app.input_name, app.output_name)
    for note in notes:
        console.info(f"  {note}")
    return cut, [app.input_name]


def _cut_normalisation(graph_def, app):
    """(graph, input names) for uint8: a graph that normalises its own input (Sub/Mul after the
    Placeholder) is fed after that normalisation, which the uint8 input's scale and zero point
    then apply, as in the quantized models the demos were made for (raw pixels in, no float op)."""
    if app.needs_cut or not (app.preprocessing and app.input_name and app.output_name and app.mean is not None):
        return graph_def, None
    if app.input_name == app.graph_input:
        return graph_def, None
    cut, notes = cut_for_app(graph_def, app.input_name, app.output_name)
    for note in notes:
        console.info(f"  {note} (its normalisation becomes the uint8 input's scale and zero point)")
    return cut, [app.input_name]


def _placeholder_shape(node):
    if "shape" not in node.attr or node.attr["shape"].shape.unknown_rank:
        return None
    dims = [d.size for d in node.attr["shape"].shape.dim]
    if any(d < 0 for d in dims[1:]):
        return None
    return [1 if (i == 0 and d < 0) else d for i, d in enumerate(dims)]


def _savedmodel_converter(src: Path):
    import tensorflow as tf

    try:
        converter = tf.lite.TFLiteConverter.from_saved_model(str(src))
        loaded = tf.saved_model.load(str(src))
    except Exception as exc:  # a damaged or foreign SavedModel fails in many ways (RuntimeError, DecodeError, OSError...)
        first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise ModelError(
            f"{src} does not load as a SavedModel: {first[:300]}",
            "export it again (tf.saved_model.save with a serving signature), or pass the frozen .pb",
        ) from exc
    fn = loaded.signatures.get("serving_default") if hasattr(loaded, "signatures") else None
    if fn is None:
        raise ModelError(f"{src} has no serving_default signature", "export the SavedModel with a serving signature")
    spec = list(fn.structured_input_signature[1].values())[0]
    shape = [1 if d is None else d for d in spec.shape.as_list()]
    return converter, list(fn.structured_input_signature[1]), list(fn.structured_outputs), shape


def _apply_quantization(converter, quantize: str, rep_files, shape, mean: float, std: float, ins=()) -> None:
    import tensorflow as tf

    if quantize == "none":
        return
    if quantize == "uint8":
        # The older quantization: uint8 tensors with the ranges of the graph's FakeQuant nodes,
        # raw pixels in (real input = (pixel - mean) / std), uint8 softmax out.
        converter.inference_type = tf.uint8
        converter.quantized_input_stats = {ins[0]: (float(mean), float(std))}
        return
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "int8":
        size, channels = (shape[1], shape[2]), shape[3] if len(shape) == 4 else 3

        def representative():
            for path in rep_files:
                yield [load_image(path, size, mean, std, channels)[None, ...]]

        converter.representative_dataset = representative


def _run_converter(converter, src) -> bytes:
    with tempfile.TemporaryFile() as log:
        native = ""
        try:
            with _native_stderr_to(log):
                return converter.convert()
        except Exception as exc:  # the converter raises many types; all mean "this graph did not convert"
            native = _read_log(log)
            raise ModelError(
                f"TFLite conversion of {src} failed: {_conversion_failure(str(exc), native)}",
                "check --input-names/--output-names (cut off DecodeJpeg and other ops TFLite lacks); --verbose shows the converter's log",
            ) from exc
        finally:
            for line in (native or _read_log(log)).splitlines():
                console.detail(f"  converter: {line}")


def _read_log(log) -> str:
    log.seek(0)
    return log.read().decode("utf-8", "replace")


@contextlib.contextmanager
def _native_stderr_to(file):
    """The MLIR converter prints its diagnostics from C++ straight to fd 2, several lines per
    problem; keep them out of the user's terminal (the error line says what failed)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        os.dup2(file.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _conversion_failure(message: str, native: str) -> str:
    """One line for what went wrong: the ops TFLite lacks when the converter names them."""
    import re

    lacking = sorted(set(re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op", message + native)))
    if lacking:
        return f"TFLite has no kernel for {', '.join(lacking)}"
    first = next((line for line in message.splitlines() if line.strip()), "the converter gave no reason")
    return first[:300]


def _image_files(directory) -> list[Path]:
    d = Path(directory)
    if not d.is_dir():
        raise TfliteModeError(f"representative image folder not found: {d}", "give a directory of JPEG/PNG images")
    files = sorted(p for p in d.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise TfliteModeError(f"no images (.jpg/.png) in {d}", "put a few dozen typical input images there")
    return files[:MAX_REPRESENTATIVE_IMAGES]


def open_interpreter(path, num_threads: int | None = None):
    """A LiteRT interpreter with its tensors allocated, or a ModelError for a file that is not
    a TFLite model. LiteRT announces its CPU delegate from C++ on fd 2 at every load: that line
    is shown with --verbose only."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise ModelError("ai-edge-litert is not installed", "pip install ai-edge-litert") from exc
    with tempfile.TemporaryFile() as log:
        try:
            with _native_stderr_to(log):
                interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
                interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(
                f"{path} does not load as a TFLite model: {exc}".splitlines()[0], "convert it again with `mobilebuild model tflite`"
            ) from exc
        finally:
            for line in _read_log(log).splitlines():
                console.detail(f"  litert: {line}")
    return interpreter


class TfliteRunner:
    """Run a .tflite model with LiteRT: ``TfliteRunner(path).run(batch) -> ndarray``.
    Quantized (int8/uint8) inputs and outputs are converted with the model's own scales."""

    def __init__(self, path, num_threads: int | None = None):
        self.path = Path(path)
        self.interpreter = open_interpreter(self.path, num_threads)
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]

    @property
    def input_shape(self) -> list[int]:
        return [int(d) for d in self._input["shape"]]

    @property
    def input_name(self) -> str:
        return self._input["name"]

    @property
    def output_name(self) -> str:
        return self._output["name"]

    def run(self, batch):
        """Outputs for a batch of inputs. Converted models have a fixed batch of 1 (reshapes
        inside are baked for it), so a larger batch runs one item at a time."""
        import numpy as np

        batch = np.asarray(batch, dtype=np.float32)
        expected = [int(d) for d in self._input["shape"]]
        if list(batch.shape[1:]) != expected[1:]:
            raise ModelError(
                f"input of shape {list(batch.shape)} does not fit the model's input {expected}",
                "resize the images to the model's input size",
            )
        if batch.shape[0] == expected[0]:
            return self._invoke(batch)
        if expected[0] == 1:
            return np.concatenate([self._invoke(item[None, ...]) for item in batch], axis=0)
        self.interpreter.resize_tensor_input(self._input["index"], list(batch.shape))
        self.interpreter.allocate_tensors()
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        return self._invoke(batch)

    def _invoke(self, batch):
        self.interpreter.set_tensor(self._input["index"], _to_input_dtype(batch, self._input))
        self.interpreter.invoke()
        return _to_float(self.interpreter.get_tensor(self._output["index"]), self._output)


def _to_input_dtype(batch, detail):
    import numpy as np

    dtype = detail["dtype"]
    if dtype == np.float32:
        return batch
    scale, zero = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(batch / scale + zero), info.min, info.max).astype(dtype)


def _to_float(result, detail):
    import numpy as np

    if result.dtype == np.float32:
        return result.copy()
    scale, zero = detail["quantization"]
    return ((result.astype(np.float32) - zero) * scale).astype(np.float32)
