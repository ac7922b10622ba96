"""Small facts about the nodes of a GraphDef: names, consumers, constants, static shapes.

Shared by inspect / optimize / prepare. Only ``import_graph`` imports TensorFlow (it builds a
tf.Graph to run); static shapes come from ``shapes`` and fall back to TensorFlow's shape
inference only for graphs whose ops it does not know.
"""

from __future__ import annotations

import difflib
import math

from mobilebuild import console
from mobilebuild.errors import ModelError
from mobilebuild.graphs import protos, shapes

FLOAT_DTYPES = {"DT_FLOAT", "DT_HALF", "DT_DOUBLE", "DT_BFLOAT16"}
WEIGHT_DTYPES = FLOAT_DTYPES | {"DT_QUINT8", "DT_QINT8", "DT_QINT32", "DT_QUINT16", "DT_QINT16"}
# Ops that hold no computation and are never a model's output.
NON_OUTPUT_OPS = {"NoOp", "Const", "Placeholder", "Assert", "SaveV2", "RestoreV2", "VarHandleOp", "ImmutableConst"}


def base_name(tensor: str) -> str:
    """'^a', 'a:0', 'a' -> 'a'."""
    return tensor.lstrip("^").split(":")[0]


def node_map(graph_def) -> dict:
    return {n.name: n for n in graph_def.node}


def data_consumers(graph_def) -> dict[str, list]:
    """node name -> nodes reading one of its outputs (control inputs excluded)."""
    out: dict[str, list] = {n.name: [] for n in graph_def.node}
    for n in graph_def.node:
        for inp in n.input:
            if not inp.startswith("^"):
                out.setdefault(base_name(inp), []).append(n)
    return out


def require_nodes(graph_def, names, what: str = "node") -> list[str]:
    """Names (tensor suffixes stripped) that all exist, or a ModelError suggesting close names."""
    nodes = node_map(graph_def)
    clean = []
    for name in names:
        b = base_name(name.strip())
        if b not in nodes:
            close = difflib.get_close_matches(b, list(nodes), n=3, cutoff=0.5)
            if not close:  # e.g. 'softmax' vs 'final/Softmax': fall back to substring matches
                close = [n for n in nodes if b.lower() in n.lower()][:3]
            hint = f"did you mean {', '.join(close)}?" if close else "`mobilebuild model inspect MODEL --nodes` lists every node name"
            raise ModelError(f"{what} '{b}' is not in the graph", hint)
        clean.append(b)
    return clean


def attr_type_name(node, attr: str = "T") -> str | None:
    if attr not in node.attr:
        return None
    return protos.dtype_name(node.attr[attr].type)


def const_value(node):
    """The numpy value of a Const node (TensorFlow decodes the few types numpy lacks)."""
    tensor = node.attr["value"].tensor
    try:
        return protos.to_ndarray(tensor)
    except protos.UnsupportedTensor:
        from tensorflow.python.framework import tensor_util

        return tensor_util.MakeNdarray(protos.to_tf(tensor))


def resolve_const(nodes: dict, name: str):
    """The Const node behind ``name`` (through Identity nodes), or None."""
    node = nodes.get(base_name(name))
    seen = 0
    while node is not None and node.op == "Identity" and seen < 16:
        node = nodes.get(base_name(node.input[0]))
        seen += 1
    return node if node is not None and node.op == "Const" else None


def const_array(nodes: dict, name: str):
    """The numpy value behind ``name`` when it is a Const seen through Identity / Cast nodes
    (Keras 3 casts its scalar constants), else None."""
    import numpy as np

    node = nodes.get(base_name(name))
    casts = []
    for _ in range(16):
        if node is None or node.op not in ("Identity", "Cast"):
            break
        if node.op == "Cast":
            casts.append(node.attr["DstT"].type)
        node = nodes.get(base_name(node.input[0])) if node.input else None
    if node is None or node.op != "Const":
        return None
    value = const_value(node)
    if casts:
        value = np.asarray(value).astype(protos.numpy_dtype(casts[0]))
    return value


def const_floats(nodes: dict, name: str) -> list[float] | None:
    """The elements (flat, as float64) of a small float Const behind ``name`` through Identity
    nodes, read without numpy; None when ``name`` is anything else (``const_array`` then
    tells, with numpy)."""
    node = resolve_const(nodes, name)
    if node is None:
        return None
    try:
        return protos.float_values(node.attr["value"].tensor)
    except ValueError:
        return None


def const_ints(node) -> list[int]:
    """The elements (flat) of an integer Const node, without numpy when they are ints."""
    try:
        values = protos.int_values(node.attr["value"].tensor)
    except ValueError:
        values = None
    if values is None:
        return [int(x) for x in const_value(node).reshape(-1)]
    return values


def const_tensor_info(node) -> tuple[str, int, int]:
    """(dtype name, element count, bytes) of a Const or ImmutableConst node."""
    if node.op == "ImmutableConst":
        dtype = node.attr["dtype"].type
        dims = [d.size for d in node.attr["shape"].shape.dim]
    else:
        t = node.attr["value"].tensor
        dtype = t.dtype
        dims = [d.size for d in t.tensor_shape.dim]
    count = math.prod(dims)  # 1 for a scalar
    return protos.dtype_name(dtype), count, count * protos.dtype_size(dtype)


def import_graph(graph_def):
    """A tf.Graph holding ``graph_def``. Imports a copy: import_graph_def adds every default attr
    to the GraphDef it is given, which would put attrs old runtimes reject back into our graphs.
    ModelError when today's TensorFlow cannot load the graph (unknown or removed ops)."""
    import tensorflow as tf

    copy = protos.to_tf(graph_def)
    graph = tf.Graph()
    try:
        with graph.as_default():
            tf.compat.v1.import_graph_def(copy, name="")
    except (ValueError, TypeError, KeyError, NotImplementedError, tf.errors.OpError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"TensorFlow {tf.__version__} cannot load this graph: {first}",
            "custom or long-removed ops cannot run here; `mobilebuild model check` still lists them",
        ) from exc
    return graph


def tensor_specs(graph_def, names=None) -> dict[str, tuple[list[int | None] | None, str]]:
    """node name -> (static shape of its first output or None, dtype name like 'float32').
    Worked out without TensorFlow when ``shapes`` knows every op on the way to ``names`` (all
    nodes when None); otherwise TensorFlow's shape inference, which is empty when the graph does
    not import (unknown ops): shapes are a nicety, not a requirement."""
    if not protos.prefer_tensorflow():
        specs = shapes.infer(topological_order(graph_def), names)
        if specs is not None:
            return specs
        console.detail("static shapes: an op on the way is not known to the fast path; asking TensorFlow")
    return tensorflow_specs(graph_def)


def tensorflow_specs(graph_def) -> dict[str, tuple[list[int | None] | None, str]]:
    """tensor_specs through TensorFlow's own shape inference (imports TensorFlow)."""
    specs: dict[str, tuple[list[int | None] | None, str]] = {}
    try:
        graph = import_graph(graph_def)
    except ModelError:
        return specs
    for op in graph.get_operations():
        if op.outputs:
            t = op.outputs[0]
            specs[op.name] = (None if t.shape.rank is None else list(t.shape.as_list()), t.dtype.name)
    return specs


def topological_order(graph_def) -> list:
    """Nodes with every input before its consumers (GraphDefs are usually, not always, sorted);
    a cycle (control flow) does not loop: a node in progress is not visited again."""
    nodes = node_map(graph_def)
    order, state = [], {}
    for root in graph_def.node:
        if root.name in state:
            continue
        stack = [(root, False)]
        while stack:
            node, done = stack.pop()
            if done:
                state[node.name] = 2
                order.append(node)
                continue
            if state.get(node.name):
                continue
            state[node.name] = 1
            stack.append((node, True))
            for inp in node.input:
                dep = nodes.get(base_name(inp))
                if dep is not None and not state.get(dep.name):
                    stack.append((dep, False))
    return order
