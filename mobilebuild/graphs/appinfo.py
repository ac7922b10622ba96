"""What the demo app must be told about a graph: the node to feed, input size, mean/std, the
output node and its class count.

Graphs that start with image decoding (DecodeJpeg -> Cast -> ExpandDims -> ResizeBilinear -> Sub
-> Mul, the shape of every retrain.py model) cannot run on the phone (no DecodeJpeg kernel): the
app feeds the node after the normalisation, and size, mean and std come from the chain's
constants. inspect, optimize, prepare, execute and tflite all ask this module, so it imports
none of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from mobilebuild.graphs import nodes as gn

DECODE_OPS = {"DecodeJpeg", "DecodePng", "DecodeImage", "DecodeGif", "DecodeBmp", "DecodeAndCropJpeg"}
RESIZE_OPS = {"ResizeBilinear", "ResizeBicubic", "ResizeNearestNeighbor", "ResizeArea"}
AFFINE_OPS = {"Sub", "Add", "AddV2", "Mul", "RealDiv", "Div"}
PASS_OPS = {"Cast", "ExpandDims", "Identity", "Reshape"}


@dataclass
class AppInfo:
    """What the demo app must be told: ClassifierActivity's INPUT_NAME, INPUT_SIZE, IMAGE_MEAN,
    IMAGE_STD, OUTPUT_NAME; plus whether the graph must be cut before the app can run it."""

    input_name: str | None = None
    input_size: int | None = None
    channels: int | None = None
    mean: float | None = None
    std: float | None = None
    output_name: str | None = None
    num_classes: int | None = None
    needs_cut: bool = False
    graph_input: str | None = None  # the placeholder the graph has today
    preprocessing: list[str] = field(default_factory=list)  # nodes between graph_input and input_name
    notes: list[str] = field(default_factory=list)

    def normalisation_of(self, name: str) -> tuple[float, float] | None:
        """(mean, std) of the pixels fed to node ``name``, when the graph tells: its own mean/std
        at the node after its normalisation, raw pixels (0, 1) at the input of a graph that
        normalises them itself; None when unknown."""
        if name == self.input_name and self.mean is not None and self.std is not None:
            return self.mean, self.std
        if name == self.graph_input and self.preprocessing and not self.needs_cut:
            return 0.0, 1.0
        return None


def find_outputs(graph_def) -> list[str]:
    """Sinks of the graph, softmax-like first."""
    consumers = gn.data_consumers(graph_def)
    nodes = gn.node_map(graph_def)
    sinks = [n for n in graph_def.node if not consumers.get(n.name) and n.op not in gn.NON_OUTPUT_OPS]

    def softmax_like(n) -> bool:
        seen = 0
        while n is not None and n.op == "Identity" and n.input and seen < 16:
            n = nodes.get(gn.base_name(n.input[0]))
            seen += 1
        if n is None:
            return False
        return n.op == "Softmax" or any(k in n.name.lower() for k in ("softmax", "final_result", "predictions", "prob"))

    return [n.name for n in sorted(sinks, key=lambda n: 0 if softmax_like(n) else 1)]


def spec_names(graph_def, *extra: str | None) -> list[str]:
    """The nodes whose static shapes app_info and inspect read: the Placeholders, the chain of
    single consumers after them (or after image decoding) where the feed node is found, the
    outputs, and ``extra`` names that exist. Shapes are worked out for these (without
    TensorFlow where the ops allow), not for every node."""
    nodes = gn.node_map(graph_def)
    consumers = gn.data_consumers(graph_def)
    names = [n.name for n in graph_def.node if n.op in ("Placeholder", "PlaceholderWithDefault")]
    starts = names + [n.name for n in graph_def.node if n.op in DECODE_OPS]
    for start in starts:
        cur = start
        for _ in range(32):
            nxt = consumers.get(cur, [])
            if len(nxt) != 1:
                break
            cur = nxt[0].name
            names.append(cur)
    names += find_outputs(graph_def)
    names += [n for n in extra if n and n in nodes]
    return list(dict.fromkeys(names))


def app_info(graph_def, specs: dict | None = None) -> AppInfo:
    specs = gn.tensor_specs(graph_def, spec_names(graph_def)) if specs is None else specs
    nodes = gn.node_map(graph_def)
    consumers = gn.data_consumers(graph_def)
    info = AppInfo()

    decode = next((n for n in graph_def.node if n.op in DECODE_OPS), None)
    placeholders = [n for n in graph_def.node if n.op == "Placeholder"]
    if decode is not None:
        start = decode
        info.needs_cut = True
        info.graph_input = gn.base_name(decode.input[0]) if decode.input else decode.name
        if "channels" in decode.attr and decode.attr["channels"].i:
            info.channels = decode.attr["channels"].i
    elif placeholders:
        start = max(placeholders, key=lambda p: (len((specs.get(p.name) or (None,))[0] or []) == 4))
        info.graph_input = start.name
    else:
        info.notes.append("the graph has no Placeholder: pass --input-name")
        start = None

    # Walk the single-consumer preprocessing chain, folding its affine ops into y = a * x + b.
    a, b, affine_seen = 1.0, 0.0, False
    feed = start
    cur = start
    chain: list[str] = []
    size = None
    while cur is not None:
        nxt = consumers.get(cur.name, [])
        if len(nxt) != 1:
            break
        node = nxt[0]
        if node.op in RESIZE_OPS:
            size_const = gn.resolve_const(nodes, node.input[1]) if len(node.input) > 1 else None
            if size_const is not None:
                size = gn.const_ints(size_const)
        elif node.op in AFFINE_OPS:
            step = _affine_step(node, cur.name, nodes)
            if step is None:
                break
            mul, add = step
            a, b = a * mul, b * mul + add
            affine_seen = True
        elif node.op not in PASS_OPS:
            break
        chain.append(node.name)
        cur = node
        if node.op in AFFINE_OPS or node.op in RESIZE_OPS or (decode is not None):
            feed = node
        if affine_seen and node.op not in AFFINE_OPS:
            break

    if start is None:
        _set_output(info, graph_def, specs)
        return info
    # The app feeds the node after the last normalisation op (or after resizing when the graph
    # decodes images itself); the preprocessing before it stays out of the phone's graph.
    last_affine = max((i for i, name in enumerate(chain) if nodes[name].op in AFFINE_OPS), default=None)
    if last_affine is not None:
        feed = nodes[chain[last_affine]]
        info.preprocessing = chain[: last_affine + 1]
    elif decode is not None:
        feed = nodes[chain[-1]] if chain else decode
        info.preprocessing = chain
    else:
        feed = start
    info.input_name = feed.name

    if affine_seen and a != 0:
        info.std = _nice(1.0 / a)
        info.mean = _nice(-b / a)
    elif decode is not None:
        info.mean, info.std = 0.0, 1.0
    else:
        info.notes.append(
            "the graph does not normalise its input itself: pass --mean and --std (the values used in training)"
        )

    shape = (specs.get(feed.name) or (None,))[0]
    if size:
        info.input_size = size[0]
        if len(size) > 1 and size[0] != size[1]:
            info.notes.append(f"the graph resizes to {size[0]}x{size[1]} (not square); the app uses one size")
    elif shape and len(shape) == 4 and shape[1]:
        info.input_size = shape[1]
    if info.channels is None and shape and len(shape) == 4 and shape[3]:
        info.channels = shape[3]
    if info.input_size is None:
        info.notes.append("input size unknown (the input shape is not fixed): pass --input-size")

    if info.needs_cut:
        info.notes.append(
            f"{decode.op} cannot run in the mobile runtime (no kernel): feed '{info.input_name}' instead "
            f"(the graph is cut there, dropping {', '.join([decode.name] + info.preprocessing[:-1])})"
        )
    elif info.input_name != info.graph_input:
        info.notes.append(
            f"the graph normalises its input itself: the app feeds '{info.input_name}' with mean/std "
            f"{_fmt(info.mean)}/{_fmt(info.std)} (read from the graph's constants)"
        )

    _set_output(info, graph_def, specs)
    return info


def _set_output(info: AppInfo, graph_def, specs: dict) -> None:
    """The output the app reads (softmax-like first) and its number of classes."""
    outputs = find_outputs(graph_def)
    if outputs:
        info.output_name = outputs[0]
        oshape = (specs.get(outputs[0]) or (None,))[0]
        if oshape and oshape[-1]:
            info.num_classes = int(oshape[-1])
    else:
        info.notes.append("no output found: pass --output-name")


def _affine_step(node, data_input: str, nodes: dict) -> tuple[float, float] | None:
    """(multiply, add) such that node(x) = x * multiply + add, for a scalar (or uniform) constant
    operand; None when the node is not such an op."""
    ins = [gn.base_name(i) for i in node.input if not i.startswith("^")]
    if len(ins) != 2 or data_input not in ins:
        return None
    if gn.attr_type_name(node) not in (None, *gn.FLOAT_DTYPES):
        return None  # integer arithmetic is not an image normalisation
    other = ins[1] if ins[0] == data_input else ins[0]
    values = gn.const_floats(nodes, other)
    if values is None:
        value = gn.const_array(nodes, other)
        if value is None:
            return None
        values = [float(x) for x in value.astype("float64").reshape(-1)]
    if not values:
        return None
    nan = any(math.isnan(v) for v in values)  # numpy's max/min are NaN then
    high, low = (math.nan, math.nan) if nan else (max(values), min(values))
    if (high - low) > 1e-6 * max(1.0, abs(high)):
        return None  # per-channel normalisation cannot be told to the app as one mean/std
    c = values[0]
    first = ins[0] == data_input
    if node.op in ("Add", "AddV2"):
        return 1.0, c
    if node.op == "Sub":
        return (1.0, -c) if first else None
    if node.op == "Mul":
        return c, 0.0
    if node.op in ("RealDiv", "Div") and first and c != 0:
        return 1.0 / c, 0.0
    return None


def _nice(x: float) -> float:
    """128.00000001 -> 128.0, 127.499992 -> 127.5: constants like 1/127.5 stored as float32
    should read back as the values the model was trained with."""
    r = round(x)
    return float(r) if abs(x - r) < 1e-4 * max(1.0, abs(x)) else float(f"{x:.6g}")


def _fmt(x) -> str:
    return "?" if x is None else f"{x:g}"
