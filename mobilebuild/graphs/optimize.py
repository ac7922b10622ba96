"""Make a frozen graph lean for inference without changing its numbers.

``optimize_graph`` = TF's optimize_for_inference (strip what the outputs do not need, remove
training nodes, fold FusedBatchNorm into conv weights) plus two things it does not do:

- cutting the graph at an inner node that becomes a Placeholder (feed ``Mul`` of a retrain.py
  graph, dropping the DecodeJpeg chain the phone cannot run);
- folding the batch norm Keras 3 emits as separate ops (AddV2/Rsqrt/Mul/Sub on constants, then
  ``x * scale + shift``), which TF's pass leaves alone: constant sub-graphs are evaluated once,
  and per-channel ``* scale + shift`` chains after a Conv2D / DepthwiseConv2dNative / MatMul are
  folded into its weights and a BiasAdd.

No TensorFlow is imported unless something needs it: TF's passes are ``for_inference``'s
reproduction (TensorFlow's own code only for graphs those passes would refuse), and constants
are evaluated by ``fold`` (numpy; Rsqrt / Reciprocal by its float64 definition; TensorFlow only
for the sub-graphs whose exact bits numpy cannot give). ``MOBILEBUILD_GRAPH_BACKEND=tensorflow``
takes TensorFlow's code throughout, that definition excepted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mobilebuild import console
from mobilebuild.errors import ModelError
from mobilebuild.graphs import fold, for_inference, nodes as gn, protos
from mobilebuild.graphs.appinfo import app_info

LINEAR_OPS = {"Conv2D", "DepthwiseConv2dNative", "MatMul"}
# Ops whose constant result can be much larger than their inputs: not worth materialising.
EXPANDING_OPS = {"Fill", "Tile", "BroadcastTo"}
NEVER_FOLD = {"Placeholder", "PlaceholderWithDefault", "NoOp", "ImmutableConst", "Const"}


@dataclass
class OptimizeResult:
    graph_def: object
    input_names: list[str]
    output_names: list[str]
    notes: list[str] = field(default_factory=list)
    nodes_before: int = 0
    nodes_after: int = 0


def resolve_names(graph_def, input_names=None, output_names=None) -> tuple[list[str], list[str]]:
    """Given names checked against the graph; missing ones auto-detected (inspect's app part)."""
    if not input_names or not output_names:
        app = app_info(graph_def)
        if not input_names:
            input_names = [app.input_name] if app.input_name else []
        if not output_names:
            output_names = [app.output_name] if app.output_name else []

    if not input_names:
        raise ModelError("cannot tell the graph's input", "pass --input-names NODE")
    if not output_names:
        raise ModelError("cannot tell the graph's output", "pass --output-names NODE")
    return gn.require_nodes(graph_def, input_names, "input node"), gn.require_nodes(graph_def, output_names, "output node")


def cut_graph(graph_def, input_names: list[str], output_names: list[str]):
    """Keep only what ``output_names`` need when ``input_names`` are fed; inner input nodes
    become Placeholders of their output type and static shape (batch left open).
    Returns (graph_def, names of the nodes dropped).

    The same graph TensorFlow's strip_unused gives (which this was built on): fed nodes
    replaced by Placeholders keeping a ``shape`` / ``_output_shapes`` attr they had, the nodes
    the outputs reach through data and control inputs in their original order, and no
    versions or function library."""
    out = _graph_of(_cut_nodes(graph_def, input_names, output_names))
    new_nodes = gn.node_map(out)
    dropped = [n.name for n in graph_def.node if n.name not in new_nodes]
    return out, dropped


def _graph_of(nodes: list):
    """A cut graph of ``nodes`` (copied), with the empty library and versions TensorFlow's
    extract_sub_graph of a graph of nodes alone marks present."""
    out = protos.GraphDef()
    out.node.extend(nodes)
    out.library.SetInParent()
    out.versions.SetInParent()
    return out


def _cut_nodes(graph_def, input_names: list[str], output_names: list[str]) -> list:
    """cut_graph's nodes, in graph order: the kept ones as they are (not copied), the fed
    ones rebuilt as Placeholders."""
    nodes = gn.node_map(graph_def)
    inner = [name for name in input_names if nodes[name].op != "Placeholder"]
    specs = gn.tensor_specs(graph_def, inner) if inner else {}
    fed = set(input_names)
    keep = _needed_names({n.name: ([] if n.name in fed else list(n.input)) for n in graph_def.node}, output_names)
    out = []
    for node in graph_def.node:
        if node.name not in keep:
            continue
        if node.name not in fed:
            out.append(node)
            continue
        placeholder = protos.NodeDef(name=node.name, op="Placeholder")
        out.append(placeholder)
        if node.op == "Placeholder":
            placeholder.attr["dtype"].type = node.attr["dtype"].type
        else:
            placeholder.attr["dtype"].type = protos.dtype_enum("DT_" + _upper_dtype(specs.get(node.name, (None, "float32"))[1]))
        for key in ("_output_shapes", "shape"):
            if key in node.attr:
                placeholder.attr[key].CopyFrom(node.attr[key])
        if node.op != "Placeholder":
            shape = specs.get(node.name, (None, None))[0]
            if shape is not None:
                protos.set_shape(placeholder.attr["shape"].shape, [None] + list(shape[1:]) if shape else shape)
    return out


def _upper_dtype(short: str) -> str:
    """'float32' -> 'FLOAT', 'quint8' -> 'QUINT8' (DataType enum names)."""
    return {"float32": "FLOAT", "float64": "DOUBLE", "float16": "HALF"}.get(short, short.upper())


def extract_sub_graph(graph_def, dest_nodes):
    """The nodes ``dest_nodes`` depend on (data or control inputs), in their original order,
    with the graph's versions and library (what TensorFlow's extract_sub_graph returns)."""
    keep = _needed(graph_def, dest_nodes)
    out = protos.GraphDef()
    out.node.extend(n for n in graph_def.node if n.name in keep)
    out.library.CopyFrom(graph_def.library)
    out.versions.CopyFrom(graph_def.versions)
    return out


def _needed(graph_def, dest_nodes) -> set[str]:
    """Names of the nodes ``dest_nodes`` depend on (data or control inputs), themselves included."""
    return _needed_names({n.name: n.input for n in graph_def.node}, dest_nodes)


def _needed_names(inputs_of: dict, dest_nodes) -> set[str]:
    """_needed on ``{node name: its inputs}`` (the last node of a name wins, as a node map)."""
    missing = [d for d in dest_nodes if gn.base_name(d) not in inputs_of]
    if missing:
        raise ModelError(f"node '{missing[0]}' is not in the graph", "run `mobilebuild model inspect` to list the nodes")
    keep, todo = set(), [gn.base_name(d) for d in dest_nodes]
    while todo:
        name = todo.pop()
        if name in keep:
            continue
        keep.add(name)
        todo.extend(gn.base_name(i) for i in inputs_of[name] if gn.base_name(i) in inputs_of)
    return keep


def prune_in_place(graph_def, dest_nodes):
    """extract_sub_graph for a graph of our own making (nodes, library and versions alone) that
    may be changed in place: the nodes not needed deleted (the 17 MB of the others not copied),
    ``library`` and ``versions`` marked present as copying them into a new GraphDef marks them."""
    keep = _needed(graph_def, dest_nodes)
    _delete(graph_def, [k for k, n in enumerate(graph_def.node) if n.name not in keep])
    for field, _ in graph_def.ListFields():
        if field.name not in ("node", "library", "versions"):
            graph_def.ClearField(field.name)
    graph_def.library.SetInParent()
    graph_def.versions.SetInParent()
    return graph_def


def optimize_graph(graph_def, input_names=None, output_names=None) -> OptimizeResult:
    graph_def = protos.ours(graph_def)
    inputs, outputs = resolve_names(graph_def, input_names, output_names)
    result = OptimizeResult(graph_def, inputs, outputs, nodes_before=len(graph_def.node))
    before_ops = _op_counts(graph_def)
    cut_nodes = _cut_nodes(graph_def, inputs, outputs)
    if len(cut_nodes) == len(graph_def.node) and all(a is b or a == b for a, b in zip(cut_nodes, graph_def.node)):
        # Nothing to cut (fed nodes were Placeholders already, as rebuilt): the graph itself goes
        # on, not a 17 MB copy. optimize_for_inference only reads it, and neither its result nor
        # TensorFlow's depends on the library and versions a cut graph would have lost.
        cut, dropped = graph_def, []
    else:
        cut, dropped = _graph_of(cut_nodes), [n.name for n in graph_def.node if n.name not in {c.name for c in cut_nodes}]
    nodes = gn.node_map(graph_def)
    cut_at = [n for n in inputs if nodes[n].op != "Placeholder"]
    if cut_at:
        removed_ops = sorted({nodes[d].op for d in dropped})
        result.notes.append(
            f"cut at {', '.join(cut_at)} (now a Placeholder): dropped {len(dropped)} nodes ({', '.join(removed_ops)})"
        )
    # Placeholders already in place: optimize_for_inference's strip step keeps them as they are.
    cut_nodes = gn.node_map(cut)
    dtypes = [cut_nodes[n].attr["dtype"].type for n in inputs]
    shapes = {}
    for n in inputs:
        shapes[n] = protos.AttrValue()
        shapes[n].CopyFrom(cut_nodes[n].attr["shape"])
    out = _for_inference(cut, inputs, outputs, dtypes)
    out_nodes = gn.node_map(out)
    for n in inputs:  # strip_unused rebuilt the placeholders: keep the shapes we know
        if shapes[n].HasField("shape"):
            out_nodes[n].attr["shape"].CopyFrom(shapes[n])
    # From here on the graph is this function's own: the steps change it in place.
    out = drop_inert_control_deps(out, in_place=True)
    out, folded_consts = fold_constants(out, set(outputs) | set(inputs), in_place=True)
    out, folded_affine = fold_affine_chains(out, in_place=True)
    out = prune_in_place(out, outputs)
    after_ops = _op_counts(out)
    bn_before = sum(before_ops.get(op, 0) for op in ("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"))
    bn_after = sum(after_ops.get(op, 0) for op in ("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"))
    if bn_before - bn_after > 0:
        result.notes.append(f"folded {bn_before - bn_after} FusedBatchNorm into conv weights")
    if folded_affine:
        result.notes.append(
            f"folded {folded_affine} per-channel scale/shift chains (batch norm as separate ops, e.g. Keras 3; bias adds) "
            "into the weights and one BiasAdd"
        )
    if folded_consts:
        result.notes.append(f"pre-computed {folded_consts} constant sub-graphs")
    removed_training = before_ops.get("Identity", 0) - after_ops.get("Identity", 0)
    if removed_training > 0:
        result.notes.append(f"removed {removed_training} Identity/training nodes")
    result.graph_def = out
    result.nodes_after = len(out.node)
    return result


def _for_inference(graph_def, inputs: list[str], outputs: list[str], dtypes: list[int]):
    """TensorFlow's optimize_for_inference (toco_compatible): our reimplementation, or
    TensorFlow's own code where ours does not reproduce it (and on the TensorFlow path)."""
    if not protos.prefer_tensorflow():
        try:
            return for_inference.optimize_for_inference(graph_def, inputs, outputs, dtypes)
        except for_inference.NotUnderstood as exc:
            console.detail(f"optimize: TensorFlow's optimize_for_inference runs for this graph ({exc})")
    from tensorflow.python.tools import optimize_for_inference_lib

    out = optimize_for_inference_lib.optimize_for_inference(protos.to_tf(graph_def), inputs, outputs, dtypes, toco_compatible=True)
    return protos.ours(out)


def drop_inert_control_deps(graph_def, in_place: bool = False):
    """Control dependencies on Const / Identity / NoOp nodes order nothing in a frozen graph
    (Keras 3 ties its ReadVariableOp Identities to the output through a NoOp): drop them, and
    the NoOps left without a purpose."""
    inert = {"Const", "Identity", "NoOp"}
    out = graph_def if in_place else protos.copy(graph_def)
    nodes = gn.node_map(out)
    for node in out.node:
        keep = [i for i in node.input if not (i.startswith("^") and getattr(nodes.get(gn.base_name(i)), "op", None) in inert)]
        if len(keep) != len(node.input):
            del node.input[:]
            node.input.extend(keep)
    referenced = {gn.base_name(i) for n in out.node for i in n.input}
    _delete(out, [k for k, n in enumerate(out.node) if n.op == "NoOp" and not n.input and n.name not in referenced])
    return out


def _delete(graph_def, indices: list[int]) -> None:
    """Remove the nodes at ``indices``, the others keeping their order (no copy of them)."""
    for k in sorted(indices, reverse=True):
        del graph_def.node[k]


def _op_counts(graph_def) -> dict[str, int]:
    counts: dict[str, int] = {}
    for n in graph_def.node:
        counts[n.op] = counts.get(n.op, 0) + 1
    return counts


def fold_constants(graph_def, keep: set[str], in_place: bool = False):
    """Replace every sub-graph that depends on no input by the Const(s) it evaluates to: one
    Const per output that is read (a constant Split read through :0 and :1 gives two).
    Returns (graph_def, number of nodes replaced). The values come from ``fold.evaluate``:
    numpy where it gives TensorFlow's bits, TensorFlow for the rest. ``in_place``: the graph is
    the caller's own (nodes, library and versions alone) and may be changed instead of copied."""
    constant = _constant_nodes(graph_def)
    consumers = gn.data_consumers(graph_def)
    frontier = [
        n.name
        for n in graph_def.node
        if n.op != "Const"
        and constant.get(n.name)
        and n.name not in keep
        and any(not constant.get(c.name, False) for c in consumers.get(n.name, []))
    ]
    if not frontier:
        return graph_def, 0
    # Which outputs of each frontier node are read (by anyone: constant readers get rewired too).
    read: dict[str, set[int]] = {name: set() for name in frontier}
    for n in graph_def.node:
        for i in n.input:
            if not i.startswith("^") and gn.base_name(i) in read:
                read[gn.base_name(i)].add(_output_index(i))
    fetches = [(name, k) for name in frontier for k in sorted(read[name] | {0})]
    values = fold.evaluate(graph_def, [f"{name}:{k}" for name, k in fetches], strict=True)
    if values is None:  # ops today's TF cannot load: nothing is evaluated, the graph stays as is
        return graph_def, 0
    values = [values[f"{name}:{k}"] for name, k in fetches]
    value_of = dict(zip(fetches, values))
    if in_place:
        out = graph_def
    else:  # what extract_sub_graph keeps of the graph, copied once
        source = protos.ours(graph_def)
        out = protos.GraphDef()
        out.node.extend(source.node)
        out.library.CopyFrom(source.library)
        out.versions.CopyFrom(source.versions)
    taken = {n.name for n in out.node}
    extra_name: dict[tuple[str, int], str] = {}
    for (name, k) in fetches:
        if k:
            extra_name[(name, k)] = _unique(dict.fromkeys(taken), f"{name}/output_{k}")
            taken.add(extra_name[(name, k)])
    for node in list(out.node):
        if node.name in read:
            _make_const(node, value_of[(node.name, 0)])
        for idx, inp in enumerate(node.input):
            if not inp.startswith("^") and (gn.base_name(inp), _output_index(inp)) in extra_name:
                node.input[idx] = extra_name[(gn.base_name(inp), _output_index(inp))]
    for (name, k), new_name in extra_name.items():
        _make_const(out.node.add(name=new_name), value_of[(name, k)])
    outputs = [n.name for n in out.node if not consumers.get(n.name) and n.op not in gn.NON_OUTPUT_OPS and n.name in consumers]
    outputs = [o for o in dict.fromkeys(outputs + list(keep)) if o in taken]
    return prune_in_place(out, outputs), len(frontier)


def _constant_nodes(graph_def) -> dict[str, bool]:
    """node name -> computable from Consts alone, by a pure op worth materialising. Ops numpy
    folds are pure; for any other op TensorFlow's op registry says whether it keeps state (its
    import is only paid when such an op has constant inputs)."""
    pure = fold.numpy_ops()
    registry = None
    constant: dict[str, bool] = {}
    for node in gn.topological_order(graph_def):
        if node.op == "Const":
            constant[node.name] = True
            continue
        candidate = (
            node.op not in NEVER_FOLD
            and node.op not in EXPANDING_OPS
            and bool(node.input)
            and all(constant.get(gn.base_name(i), False) for i in node.input)
        )
        if candidate and (node.op not in pure or protos.prefer_tensorflow()):
            if registry is None:
                console.detail(f"constant folding: {node.op} is not one of numpy's ops; asking TensorFlow's op registry")
                from tensorflow.python.framework import op_def_registry as registry
            op_def = registry.get(node.op)
            candidate = op_def is not None and not op_def.is_stateful
        constant[node.name] = candidate
    return constant


def _output_index(tensor: str) -> int:
    _, _, idx = tensor.partition(":")
    return int(idx) if idx else 0


def _make_const(node, value) -> None:
    import numpy as np

    dtype = protos.dtype_of_numpy(np.asarray(value).dtype)
    node.op = "Const"
    del node.input[:]
    node.attr.clear()
    node.attr["dtype"].type = dtype
    protos.make_tensor(value, into=node.attr["value"].tensor)  # written in place: one copy of the bytes


def _channel_vector(value, channels: int, rank: int):
    """A constant that acts per output channel on a rank-``rank`` tensor: scalar, [C] or
    [1, ..., 1, C] of at most that rank (so broadcasting keeps the shape) -> [C]; else None."""
    import numpy as np

    v = np.asarray(value)
    if v.ndim > rank:
        return None
    if v.size == 1:
        return np.full(channels, float(v.reshape(-1)[0]), dtype=np.float64)
    if v.shape and v.shape[-1] == channels and v.size == channels:
        return v.reshape(channels).astype(np.float64)
    return None


def fold_affine_chains(graph_def, in_place: bool = False):
    """Fold ``linear -> [BiasAdd] -> (Mul|Add|AddV2|Sub|RealDiv by per-channel const)+`` into
    new weights and one BiasAdd named like the last op of the chain. Returns (graph_def, count).

    One pass over the linear ops in graph order: a fold only touches its own op's weights and
    the nodes after it up to the BiasAdd, which no other chain reads. The nodes come out in the
    order folding them one at a time (and rebuilding the graph each time) gave: the untouched
    nodes as they were, then per fold its weights, its bias and its BiasAdd."""
    import numpy as np

    out = graph_def if in_place else protos.copy(graph_def)
    nodes = gn.node_map(out)
    consumers = gn.data_consumers(out)
    taken = dict.fromkeys(nodes)
    dropped: set[str] = set()
    added = []
    for lin in list(out.node):
        if lin.op not in LINEAR_OPS or gn.attr_type_name(lin) != "DT_FLOAT":
            continue
        if lin.op != "MatMul" and lin.attr["data_format"].s not in (b"", b"NHWC"):
            continue
        if lin.op == "MatMul" and lin.attr["transpose_a"].b:
            continue
        wnode = gn.resolve_const(nodes, lin.input[1])
        if wnode is None:
            continue
        weights = gn.const_value(wnode).astype(np.float64)
        if lin.op == "Conv2D":
            channels = weights.shape[-1]
        elif lin.op == "DepthwiseConv2dNative":
            channels = weights.shape[2] * weights.shape[3]
        else:
            channels = weights.shape[0] if lin.attr["transpose_b"].b else weights.shape[1]
        scale = np.ones(channels)
        shift = np.zeros(channels)
        chain, cur, affine = [], lin, 0
        while True:
            nxt = consumers.get(cur.name, [])
            if len(nxt) != 1 or any(gn.base_name(i) == cur.name and ":" in i and not i.endswith(":0") for i in nxt[0].input):
                break
            node = nxt[0]
            if node.name in dropped:
                break
            ins = [i for i in node.input if not i.startswith("^")]
            if len(ins) != 2 or node.op not in ("BiasAdd", "Mul", "Add", "AddV2", "Sub", "RealDiv"):
                break
            if node.op == "BiasAdd" and (affine or gn.base_name(ins[0]) != cur.name):
                break
            first = gn.base_name(ins[0]) == cur.name
            other = ins[1] if first else ins[0]
            cnode = gn.resolve_const(nodes, other)
            if cnode is None or gn.base_name(other) == cur.name:
                break
            vec = _channel_vector(gn.const_value(cnode), channels, 2 if lin.op == "MatMul" else 4)
            if vec is None:
                break
            if node.op in ("BiasAdd", "Add", "AddV2"):
                shift = shift + vec
            elif node.op == "Mul":
                scale, shift = scale * vec, shift * vec
            elif node.op == "Sub" and first:
                shift = shift - vec
            elif node.op == "RealDiv" and first and np.all(vec != 0):
                scale, shift = scale / vec, shift / vec
            else:
                break
            chain.append(node)
            affine += node.op != "BiasAdd"
            cur = node
        if not affine:
            continue
        if lin.op == "Conv2D":
            new_w = weights * scale
        elif lin.op == "DepthwiseConv2dNative":
            new_w = weights * scale.reshape(weights.shape[2], weights.shape[3])
        elif lin.attr["transpose_b"].b:
            new_w = weights * scale[:, None]
        else:
            new_w = weights * scale[None, :]
        last = chain[-1]
        wname = _unique(taken, f"{lin.name}/folded_weights")
        taken[wname] = None
        bname = _unique(taken, f"{last.name}/folded_bias")
        taken[bname] = None
        wconst = protos.NodeDef(name=wname, op="Const")
        wconst.attr["dtype"].type = protos.DT_FLOAT
        wconst.attr["value"].tensor.CopyFrom(protos.make_tensor(new_w.astype(np.float32)))
        bconst = protos.NodeDef(name=bname, op="Const")
        bconst.attr["dtype"].type = protos.DT_FLOAT
        bconst.attr["value"].tensor.CopyFrom(protos.make_tensor(shift.astype(np.float32)))
        lin.input[1] = wname
        dropped.update(n.name for n in chain)
        bias = protos.NodeDef(name=last.name, op="BiasAdd", input=[lin.name, bname])
        bias.attr["T"].type = protos.DT_FLOAT
        bias.attr["data_format"].s = b"NHWC"
        added += [wconst, bconst, bias]
    if added:
        _delete(out, [k for k, n in enumerate(out.node) if n.name in dropped])
        out.node.extend(added)
    return (prune_in_place(out, _sinks(out)) if in_place else extract_sub_graph(out, _sinks(out))), len(added) // 3


def _sinks(graph_def) -> list[str]:
    consumers = gn.data_consumers(graph_def)
    return [n.name for n in graph_def.node if not consumers.get(n.name) and n.op not in ("Const",)]


def _unique(nodes: dict, name: str) -> str:
    candidate, i = name, 1
    while candidate in nodes:
        candidate = f"{name}_{i}"
        i += 1
    return candidate
