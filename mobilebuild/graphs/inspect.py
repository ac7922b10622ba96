"""What a model is and what an app must be told about it.

``inspect_model`` reports format, inputs, outputs, op counts, parameters, and the ``app`` part
(the node to feed, input size, mean/std, the output node and class count; worked out by
``appinfo``), plus with a TF version whether the phone runtime of that version loads it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mobilebuild.errors import ModelError
from mobilebuild.graphs import io, nodes as gn, prepare, runtime_ops
from mobilebuild.graphs import tflite_ops
from mobilebuild.graphs.appinfo import AppInfo, app_info, find_outputs, spec_names  # app_info/find_outputs: part of inspect's API

__all__ = ["ModelReport", "AppInfo", "app_info", "find_outputs", "inspect_model", "inspect_graph_def", "runtime_report"]


@dataclass
class ModelReport:
    path: str
    format: str
    size_bytes: int
    inputs: list[dict] = field(default_factory=list)
    outputs: list[dict] = field(default_factory=list)
    node_count: int = 0
    op_counts: dict[str, int] = field(default_factory=dict)
    params: int | None = None
    param_bytes: int | None = None
    app: AppInfo = field(default_factory=AppInfo)
    runtime: dict | None = None
    tflite: dict | None = None  # a .tflite's operators with versions, input quantization, runtime check
    frozen: dict | None = None  # a Keras file / SavedModel: how it was frozen (graphs/freeze.py)
    nodes: list[dict] | None = None  # with nodes=True: every node's name, op and inputs, in graph order

    def to_dict(self) -> dict:
        return asdict(self)


def inspect_model(path, tf_version: str | None = None, tf_src: Path | None = None, nodes: bool = False) -> ModelReport:
    model = io.load_model(path)
    if model.format == io.TFLITE:
        if nodes:
            raise ModelError(
                f"{model.path} is a .tflite: it has tensors and operators, not GraphDef nodes",
                "list the nodes of the .pb it was converted from (`mobilebuild model inspect MODEL.pb --nodes`)",
            )
        return _inspect_tflite(model, tf_version)
    if model.graph_def is None:
        raise ModelError(
            f"{model.path} is a {model.format}; inspect reads frozen GraphDefs, memmapped packages and .tflite",
            "freeze it to a .pb first, or convert it with `mobilebuild model tflite`",
        )
    report = inspect_graph_def(model.graph_def, str(model.path), model.format, model.size_bytes)
    if model.frozen:
        report.frozen = {k: v for k, v in model.frozen.items() if k != "sha256"}
        report.app.notes[:0] = model.frozen.get("notes", [])
    if nodes:
        report.nodes = [{"name": n.name, "op": n.op, "inputs": list(n.input)} for n in model.graph_def.node]
    if tf_version:
        report.runtime = runtime_report(model.graph_def, report.app, tf_version, tf_src)
    return report


def inspect_graph_def(graph_def, path: str = "", fmt: str = io.GRAPHDEF, size_bytes: int = 0) -> ModelReport:
    specs = gn.tensor_specs(graph_def, spec_names(graph_def))
    report = ModelReport(path=path, format=fmt, size_bytes=size_bytes, node_count=len(graph_def.node))
    report.op_counts = dict(Counter(n.op for n in graph_def.node).most_common())
    params = nbytes = 0
    for n in graph_def.node:
        if n.op in ("Const", "ImmutableConst"):
            dtype, count, size = gn.const_tensor_info(n)
            if dtype in gn.WEIGHT_DTYPES:
                params += count
            nbytes += size
    report.params, report.param_bytes = params, nbytes

    for n in graph_def.node:
        if n.op in ("Placeholder", "PlaceholderWithDefault"):
            shape, dtype = specs.get(n.name, (None, gn.attr_type_name(n, "dtype")))
            report.inputs.append({"name": n.name, "dtype": dtype, "shape": shape})
    nodes = gn.node_map(graph_def)
    for name in find_outputs(graph_def):
        shape, dtype = specs.get(name, (None, None))
        report.outputs.append({"name": name, "op": nodes[name].op, "dtype": dtype, "shape": shape})
    report.app = app_info(graph_def, specs)
    return report


def runtime_report(graph_def, app: AppInfo, tf_version: str, tf_src: Path | None = None) -> dict:
    """Will the graph load in that version's phone runtime: what fails as-is, and whether preparing for the app
    (cut + downgrade) would fix it."""
    opset = runtime_ops.load_opset(tf_version, tf_src)
    problems = runtime_ops.check_graph(graph_def, opset)
    report = {
        "tf_version": tf_version,
        "tag": opset.tag,
        "loads": not problems,
        "missing_ops": runtime_ops.missing_ops(problems),
        "problems": [p.to_dict() for p in problems],
        "summary": runtime_ops.summarize(problems),
    }
    if problems:
        try:
            _, changes = prepare.fit_graph_for_runtime(graph_def, app, opset)
            report["after_prepare"] = {"loads": True, "changes": changes}
        except ModelError as exc:
            report["after_prepare"] = {"loads": False, "reason": exc.message}
    return report


def _inspect_tflite(model, tf_version: str | None = None) -> ModelReport:
    """Read from the flatbuffer itself (no interpreter): every operator code with its version,
    the tensors, the input's quantization; with ``tf_version`` whether that TFLite runtime has it all."""
    info = tflite_ops.read_tflite(model.path)
    report = ModelReport(path=str(model.path), format=model.format, size_bytes=model.size_bytes)
    for t in info.inputs:
        report.inputs.append({"name": t.name, "dtype": t.dtype.lower(), "shape": t.shape})
    for t in info.outputs:
        report.outputs.append({"name": t.name, "dtype": t.dtype.lower(), "shape": t.shape})
    by_op: Counter = Counter()
    for key, count in info.op_counts.items():  # "CONV_2D v3" -> CONV_2D (versions: report.tflite)
        by_op[key.rsplit(" v", 1)[0]] += count
    report.node_count = sum(by_op.values())
    report.op_counts = dict(by_op.most_common())
    report.tflite = info.to_dict()
    if not report.inputs or not report.outputs:
        raise ModelError(f"{model.path} has no input or output tensor", "convert it again (`mobilebuild model tflite`)")
    inp, out = report.inputs[0], report.outputs[0]
    app = AppInfo(input_name=inp["name"], output_name=out["name"], graph_input=inp["name"])
    if len(inp["shape"]) == 4:
        app.input_size, app.channels = inp["shape"][1], inp["shape"][3]
    app.num_classes = out["shape"][-1] if out["shape"] else None
    feed = info.input_feed()
    if inp["dtype"] == "uint8":
        app.mean, app.std = 0.0, 1.0
        app.notes.append("quantized input: the app feeds raw 0..255 pixels"
                         + (f"; the model applies (pixel - {feed['mean']:g}) / {feed['std']:.4g} itself" if "mean" in feed else ""))
    else:
        app.notes.append("a .tflite keeps no record of its normalisation: pass --mean and --std")
    report.app = app
    if tf_version and tflite_ops.before_tflite(tf_version):
        report.runtime = {
            "tf_version": tf_version,
            "loads": False,
            "problems": [],
            "summary": [f".tflite files run in TensorFlow Lite, which TensorFlow {tf_version} does not have (it ships from 1.5)"],
        }
    elif tf_version:
        runtime = tflite_ops.load_runtime(tf_version)
        problems = tflite_ops.check_model(info, runtime)
        report.tflite["runtime"] = {"tflite_runtime": runtime.tag, "loads": not problems,
                                    "problems": [p.to_dict() for p in problems], "note": runtime.note}
    return report
