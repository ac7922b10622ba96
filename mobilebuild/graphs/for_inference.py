"""TensorFlow's optimize_for_inference (``toco_compatible``: no fused resize/pad convolutions)
without TensorFlow: the same GraphDef, node for node and byte for byte.

The passes, in TensorFlow's order (read from tensorflow/python/tools/optimize_for_inference_lib.py,
strip_unused_lib.py and graph_util_impl.py of the installed release; nothing of them is copied):

1. the graph must be consistent (unique names, every input present);
2. a bool Placeholder(WithDefault) whose name contains ``keras_learning_phase`` becomes
   ``Const False``;
3. strip_unused: the fed nodes are rebuilt as bare Placeholders, and only what the outputs reach
   (data and control inputs, ``_class`` colocations) is kept, in the original order;
4. remove_training_nodes: CheckNumerics dropped, Identity / StopGradient spliced out unless
   protected (an output), colocated with something, given or giving control edges;
5. fuse_decomposed_batch_norm: ``Add(Mul(x, scale), Sub(beta, Mul(mean, scale)))`` with
   ``scale = Rsqrt(Add(var, eps)) [* gamma]`` after an NHWC convolution becomes FusedBatchNorm;
6. fold_batch_norms: BatchNormWithGlobalNormalization / FusedBatchNorm / FusedBatchNormV3 after a
   Conv2D / DepthwiseConv2dNative (optionally through a constant bias add) folded into scaled
   weights and a BiasAdd; the arithmetic is numpy's in float64 as TensorFlow's (1 / sqrt(var + eps)
   * gamma, weights multiplied per channel and rounded to float32 once);
7. the result must be consistent again.

Where TensorFlow's passes would raise (a duplicate name, a missing input, a pattern whose nodes
lack an input they index), ``NotUnderstood`` is raised instead, and the caller runs TensorFlow's
own code, which raises its own error: the fast path never decides a failure differently.
The GraphDef returned carries no versions or function library, as TensorFlow's.
"""

from __future__ import annotations

import re

from mobilebuild.graphs import protos

BATCH_NORM_INPUTS = {
    # position of (conv, mean, var, beta, gamma) among the op's inputs
    "BatchNormWithGlobalNormalization": {"conv": 0, "mean": 1, "var": 2, "beta": 3, "gamma": 4},
    "FusedBatchNorm": {"conv": 0, "gamma": 1, "beta": 2, "mean": 3, "var": 4},
    "FusedBatchNormV3": {"conv": 0, "gamma": 1, "beta": 2, "mean": 3, "var": 4},
}
EPSILON_ATTR = {
    "BatchNormWithGlobalNormalization": "variance_epsilon",
    "FusedBatchNorm": "epsilon",
    "FusedBatchNormV3": "epsilon",
}
LEARNING_PHASE = "keras_learning_phase"
CONV_OPS = ("Conv2D", "DepthwiseConv2dNative")


class NotUnderstood(Exception):
    """TensorFlow's passes would fail (or do something this module does not reproduce) here."""


def optimize_for_inference(graph_def, input_names: list[str], output_names: list[str], dtypes: list[int]):
    """The GraphDef TensorFlow's optimize_for_inference(graph_def, input_names, output_names,
    dtypes, toco_compatible=True) returns, or NotUnderstood."""
    try:
        ensure_valid(graph_def)
        out = _strip_unused_with_learning_phase(graph_def, input_names, output_names, dtypes)
        out = remove_training_nodes(out, output_names, in_place=True)  # ``out`` is new: no copy
        out = fuse_decomposed_batch_norm(out)
        out = fold_batch_norms(out)
        ensure_valid(out)
    except (IndexError, KeyError, ValueError, TypeError, AttributeError) as exc:
        raise NotUnderstood(f"{type(exc).__name__}: {exc}") from exc
    return out


def input_node_name(ref: str) -> str:
    """'^a' -> 'a', 'a:1' -> 'a' (only a trailing ':digits' is a port)."""
    if ref.startswith("^"):
        ref = ref[1:]
    if "\n" in ref:  # where ``$`` and ``.`` differ from plain string splitting
        m = re.search(r"(.*):\d+$", ref)
        return m.group(1) if m else ref
    # The regular expression's answer without its backtracking (slow on long names): only the
    # last ':' can be followed by nothing but digits (``\d``: Unicode decimal digits).
    name, sep, port = ref.rpartition(":")
    return name if sep and port.isdecimal() else ref


def ensure_valid(graph_def) -> None:
    names: set[str] = set()
    for node in graph_def.node:
        if node.name in names:
            raise NotUnderstood(f"duplicate node name {node.name}")
        names.add(node.name)
    for node in graph_def.node:
        for ref in node.input:
            if input_node_name(ref) not in names:
                raise NotUnderstood(f"input {ref} of {node.name} is not in the graph")


def _node_map(graph_def) -> dict:
    nodes = {}
    for node in graph_def.node:
        if node.name in nodes:
            raise NotUnderstood(f"duplicate node name {node.name}")
        nodes[node.name] = node
    return nodes


def _from_map(nodes: dict, ref: str):
    name = input_node_name(ref)
    if name not in nodes:
        raise NotUnderstood(f"no node named {ref}")
    return nodes[name]


def _const_value(node):
    if node.op != "Const":
        raise NotUnderstood(f"{node.name} is not a Const")
    try:
        return protos.to_ndarray(node.attr["value"].tensor)
    except protos.UnsupportedTensor as exc:
        raise NotUnderstood(str(exc)) from exc


# ---------------------------------------------------------------------------------------------
# 2. keras_learning_phase -> Const False


def learning_phase_to_const(graph_def):
    import numpy as np

    out = protos.GraphDef()  # TensorFlow's pass keeps nodes only: no versions, no library
    for node in graph_def.node:
        if node.op in ("PlaceholderWithDefault", "Placeholder") and LEARNING_PHASE in node.name:
            if node.attr["dtype"].type == protos.DT_BOOL:
                const = out.node.add(op="Const", name=node.name)
                const.attr["dtype"].CopyFrom(node.attr["dtype"])
                const.attr["value"].tensor.CopyFrom(protos.make_tensor(np.array(False), protos.DT_BOOL, []))
                continue
        out.node.add().CopyFrom(node)
    return out


def _learning_phase(node) -> bool:
    """A node step 2 turns into Const False."""
    return (
        node.op in ("PlaceholderWithDefault", "Placeholder")
        and LEARNING_PHASE in node.name
        and node.attr["dtype"].type == protos.DT_BOOL
    )


def _strip_unused_with_learning_phase(graph_def, input_names, output_names, dtypes):
    """Steps 2 and 3 with one copy of the kept nodes instead of three of the whole graph (a
    MobileNet is 17 MB): what the outputs reach is worked out on the graph as it would be after
    the replacements (replaced nodes have no inputs and no colocation), then only those nodes
    are copied or rebuilt, in graph order. The two-pass version runs where an input is itself a
    learning-phase node."""
    import numpy as np

    if any(":" in name for name in input_names):
        raise NotUnderstood("an input name names a tensor")
    inputs = set(input_names)
    if any(_learning_phase(n) and n.name in inputs for n in graph_def.node):
        return strip_unused(learning_phase_to_const(graph_def), input_names, output_names, dtypes)
    missing = inputs - {n.name for n in graph_def.node}
    if missing:
        raise NotUnderstood(f"input nodes not in the graph: {sorted(missing)}")
    replaced = {n.name for n in graph_def.node if n.name in inputs or _learning_phase(n)}
    inputs_of, node_of, order = {}, {}, {}
    for seq, node in enumerate(graph_def.node):
        name = _plain_name(node.name)
        node_of[name] = node
        inputs_of[name] = [] if node.name in replaced else [_plain_name(i) for i in node.input] + _colocated(node)
        order[name] = seq
    keep = _reachable(output_names, inputs_of, node_of, order)
    out = protos.GraphDef()
    for name in sorted(keep, key=order.__getitem__):
        node = node_of[name]
        if node.name in inputs:
            placeholder = out.node.add(op="Placeholder", name=node.name)
            placeholder.attr["dtype"].type = dtypes[input_names.index(node.name)]
            for key in ("_output_shapes", "shape"):
                if key in node.attr:
                    placeholder.attr[key].CopyFrom(node.attr[key])
        elif node.name in replaced:
            const = out.node.add(op="Const", name=node.name)
            const.attr["dtype"].CopyFrom(node.attr["dtype"])
            const.attr["value"].tensor.CopyFrom(protos.make_tensor(np.array(False), protos.DT_BOOL, []))
        else:
            out.node.add().CopyFrom(node)
    return out


# ---------------------------------------------------------------------------------------------
# 3. strip_unused / extract_sub_graph


def strip_unused(graph_def, input_names: list[str], output_names: list[str], dtypes: list[int]):
    if any(":" in name for name in input_names):
        raise NotUnderstood("an input name names a tensor")
    missing = set(input_names)
    replaced = protos.GraphDef()
    for node in graph_def.node:
        if node.name in input_names:
            missing.discard(node.name)
            placeholder = replaced.node.add(op="Placeholder", name=node.name)
            placeholder.attr["dtype"].type = dtypes[input_names.index(node.name)]
            for key in ("_output_shapes", "shape"):
                if key in node.attr:
                    placeholder.attr[key].CopyFrom(node.attr[key])
        else:
            replaced.node.add().CopyFrom(node)
    if missing:
        raise NotUnderstood(f"input nodes not in the graph: {sorted(missing)}")
    return extract_sub_graph(replaced, output_names)


def _colocated(node) -> list[str]:
    if "_class" not in node.attr:
        return []
    names = []
    for raw in node.attr["_class"].list.s:
        text = raw.decode("utf-8")
        names.append(text[5:] if text.startswith("loc:@") else text)
    return names


def _plain_name(ref: str) -> str:
    """TensorFlow's extract_sub_graph naming: '^a' -> 'a' (as is), 'a:1' -> 'a'."""
    return ref[1:] if ref.startswith("^") else ref.split(":")[0]


def extract_sub_graph(graph_def, dest_nodes: list[str]):
    """What the destinations reach through inputs and ``_class`` colocations, in the original
    order, with the graph's library and versions."""
    inputs_of, node_of, order = {}, {}, {}
    for seq, node in enumerate(graph_def.node):
        name = _plain_name(node.name)
        node_of[name] = node
        inputs_of[name] = [_plain_name(i) for i in node.input] + _colocated(node)
        order[name] = seq
    keep = _reachable(dest_nodes, inputs_of, node_of, order)
    out = protos.GraphDef()
    for name in sorted(keep, key=order.__getitem__):
        out.node.add().CopyFrom(node_of[name])
    out.library.CopyFrom(graph_def.library)
    out.versions.CopyFrom(graph_def.versions)
    return out


def _reachable(dest_nodes, inputs_of: dict, node_of: dict, order: dict) -> set[str]:
    if any(d not in node_of for d in dest_nodes):
        raise NotUnderstood("an output node is not in the graph")
    keep, todo = set(), list(dest_nodes)
    while todo:
        name = todo.pop()
        if name in keep:
            continue
        keep.add(name)
        todo.extend(inputs_of.get(name, []))
    if any(name not in order for name in keep):
        raise NotUnderstood("a kept node refers to a node that is not in the graph")
    return keep


# ---------------------------------------------------------------------------------------------
# 4. remove_training_nodes


def remove_training_nodes(graph_def, protected: list[str], in_place: bool = False, loadable: bool = False):
    """TensorFlow's two passes (drop CheckNumerics and edges from it; splice Identity and
    StopGradient), worked out on the inputs alone and written with one copy of each node, or,
    ``in_place`` (a graph of the caller's own that it gives up), by deleting and rewiring nodes
    of ``graph_def`` itself: the same nodes, and nothing but nodes, as TensorFlow's new graph.

    ``loadable`` departs from TensorFlow where its result would not load (eightbit wants a
    graph it can rewrite; optimize reproduces TensorFlow exactly): a node reading a
    CheckNumerics as data reads the CheckNumerics' input instead of losing that input, and an
    Identity without inputs stays instead of failing the pass."""
    protected = set(protected or [])
    checks = [n for n in graph_def.node if n.op == "CheckNumerics" and n.name not in protected]
    if loadable:
        checks = [n for n in checks if n.input]
    removed = {n.name: (n.input[0] if n.input else "") for n in checks}

    def inputs_after_removal(node) -> list[str]:
        refs = []
        for ref in node.input:
            control = ref.startswith("^")
            if (ref[1:] if control else ref) not in removed:
                refs.append(ref)
            elif loadable and not control:
                while ref in removed:
                    ref = removed[ref]
                refs.append(ref)
        return refs

    kept = [n for n in graph_def.node if n.name not in removed]
    inputs = {n.name: inputs_after_removal(n) if removed else list(n.input) for n in kept}
    control_inputs, with_control_input, colocated = set(), set(), set()
    for node in kept:
        for ref in inputs[node.name]:
            if "^" in ref:
                control_inputs.add(ref.replace("^", ""))
                with_control_input.add(node.name)
        colocated.update(_colocated(node))
    splice = {
        node.name: inputs[node.name][0]
        for node in kept
        if node.op in ("Identity", "StopGradient")
        and (inputs[node.name] or not loadable)
        and node.name not in protected
        and node.name not in colocated
        and node.name not in with_control_input
    }
    splice = {name: ref for name, ref in splice.items() if name not in control_inputs}

    if in_place:
        for node in kept:
            new_inputs = _rewired(inputs[node.name], splice)
            if new_inputs != list(node.input):
                del node.input[:]
                node.input.extend(new_inputs)
        _delete_nodes(graph_def, set(removed) | set(splice))
        for field, _ in graph_def.ListFields():
            if field.name != "node":
                graph_def.ClearField(field.name)
        return graph_def
    out = protos.GraphDef()
    for node in kept:
        if node.name in splice:
            continue
        new_inputs = _rewired(inputs[node.name], splice)
        copy = out.node.add()
        copy.CopyFrom(node)
        if new_inputs != list(node.input):
            del copy.input[:]
            copy.input.extend(new_inputs)
    return out


def _rewired(refs: list[str], splice: dict) -> list[str]:
    new_inputs = []
    for ref in refs:
        name = re.sub(r"^\^", "", ref)
        while name in splice:
            ref = splice[name]
            name = re.sub(r"^\^", "", ref)
        new_inputs.append(ref)
    return new_inputs


def _delete_nodes(graph_def, names: set[str]) -> None:
    """Remove the named nodes in place, the others keeping their order (no copy of them)."""
    if names:
        for k in reversed([k for k, node in enumerate(graph_def.node) if node.name in names]):
            del graph_def.node[k]


# ---------------------------------------------------------------------------------------------
# 5. fuse_decomposed_batch_norm


def fuse_decomposed_batch_norm(graph_def):
    nodes = _node_map(graph_def)
    skip: set[str] = set()
    new_nodes = []
    for node in graph_def.node:
        if node.op != "Add":
            continue
        first, second = _from_map(nodes, node.input[0]), _from_map(nodes, node.input[1])
        if first.op == "Mul" and second.op == "Sub":
            data_mul, bias_sub = first, second
        elif first.op == "Sub" and second.op == "Mul":
            bias_sub, data_mul = first, second
        else:
            continue
        data = _from_map(nodes, data_mul.input[0])
        scale = _from_map(nodes, data_mul.input[1])
        data_format = None
        if data.op in CONV_OPS:
            data_format = data.attr["data_format"]
        else:
            for ref in data.input:
                producer = _from_map(nodes, ref)
                if producer.op in CONV_OPS:
                    data_format = producer.attr["data_format"]
                    break
        if data_format is None or data_format.s != b"NHWC":
            continue
        if scale.op == "Rsqrt":
            gamma, rsqrt = None, scale
        elif scale.op == "Mul":
            rsqrt, gamma = _from_map(nodes, scale.input[0]), _from_map(nodes, scale.input[1])
            if rsqrt.op != "Rsqrt":
                continue
            if gamma.op != "Const" or _const_value(gamma).ndim != 1:
                continue
        else:
            continue
        beta = _from_map(nodes, bias_sub.input[0])
        mean_mul = _from_map(nodes, bias_sub.input[1])
        if mean_mul.op != "Mul":
            continue
        if beta.op != "Const" or _const_value(beta).ndim != 1:
            continue
        if scale != _from_map(nodes, mean_mul.input[1]):
            continue
        mean = _from_map(nodes, mean_mul.input[0])
        if mean.op != "Const" or _const_value(mean).ndim != 1:
            continue
        var_eps = _from_map(nodes, rsqrt.input[0])
        if var_eps.op != "Add":
            continue
        var, eps = _from_map(nodes, var_eps.input[0]), _from_map(nodes, var_eps.input[1])
        if eps.op != "Const" or _const_value(eps).ndim != 0:
            continue
        if var.op != "Const" or _const_value(var).ndim != 1:
            continue
        epsilon = _const_value(eps)
        skip.update({node.name, data_mul.name, bias_sub.name, mean_mul.name, scale.name, var_eps.name})
        if scale.op != "Rsqrt":
            skip.add(rsqrt.name)
        if gamma is None:
            gamma = protos.NodeDef(op="Const")
            m = re.search(r"(.*)/(.*)", scale.name)
            gamma.name = (m.group(1) if m else scale.name) + "/gamma"
            gamma.attr["dtype"].CopyFrom(beta.attr["dtype"])
            beta_value = _const_value(beta)
            gamma.attr["value"].tensor.CopyFrom(
                protos.make_tensor(beta_value.dtype.type(1), protos.dtype_of_numpy(beta_value.dtype), beta_value.shape)
            )
            new_nodes.append(gamma)
        fused = protos.NodeDef(op="FusedBatchNorm", name=node.name)
        fused.attr["T"].CopyFrom(node.attr["T"])
        fused.attr["is_training"].b = False
        fused.attr["epsilon"].f = epsilon.tolist()
        fused.attr["data_format"].CopyFrom(data_format)
        fused.input.extend([data.name, gamma.name, beta.name, mean.name, var.name])
        new_nodes.append(fused)
    if not skip and not new_nodes:
        return _unchanged(graph_def)
    return _rebuilt(graph_def, skip, new_nodes)


def _unchanged(graph_def):
    """What rebuilding without changes gives, without copying: the same nodes, and ``versions``
    present (copying a message field sets it, even when empty)."""
    graph_def.versions.SetInParent()
    return graph_def


def _rebuilt(graph_def, skip: set[str], new_nodes: list):
    """The nodes not skipped (control inputs from skipped nodes dropped), then the new ones,
    with the graph's versions."""
    out = protos.GraphDef()
    for node in graph_def.node:
        if node.name in skip:
            continue
        copy = out.node.add()
        copy.CopyFrom(node)
        del copy.input[:]
        copy.input.extend(i for i in node.input if not i.startswith("^") or i[1:] not in skip)
    for node in new_nodes:
        out.node.add().CopyFrom(node)
    out.versions.CopyFrom(graph_def.versions)
    return out


# ---------------------------------------------------------------------------------------------
# 6. fold_batch_norms


def fold_batch_norms(graph_def):
    import numpy as np

    nodes = _node_map(graph_def)
    skip: set[str] = set()
    new_nodes = []
    for node in graph_def.node:
        if node.op not in BATCH_NORM_INPUTS:
            continue
        order = BATCH_NORM_INPUTS[node.op]
        bias = add = None
        conv = _from_map(nodes, node.input[order["conv"]])
        # A bias add between the convolution and the batch norm folds into the mean.
        if conv.op in ("BiasAdd", "Add", "AddV2"):
            add = conv
            conv, bias = _from_map(nodes, add.input[0]), _from_map(nodes, add.input[1])
            if conv.op not in CONV_OPS:
                conv, bias = _from_map(nodes, add.input[1]), _from_map(nodes, add.input[0])
        if bias is not None and bias.op != "Const":
            continue
        if conv.op not in CONV_OPS:
            continue
        weights_node = _from_map(nodes, conv.input[1])
        if weights_node.op != "Const":
            continue
        weights = _const_value(weights_node)
        channels = weights.shape[3] if conv.op == "Conv2D" else weights.shape[2] * weights.shape[3]
        values = {}
        for key in ("mean", "var", "beta", "gamma"):
            const = _from_map(nodes, node.input[order[key]])
            if const.op != "Const":
                break
            value = _const_value(const)
            if value.shape != (channels,):
                break
            if key == "mean" and bias is not None:
                value = value - _const_value(bias)
            values[key] = (const, value)
        if len(values) != 4:
            continue
        mean_node, mean = values["mean"]
        var, beta, gamma = values["var"][1], values["beta"][1], values["gamma"][1]
        if mean.dtype != np.float32 and mean.dtype != np.float64 or var.size == 0:
            raise NotUnderstood("batch norm statistics of an unusual type")
        epsilon = node.attr[EPSILON_ATTR[node.op]].f
        if {conv.name, weights_node.name, node.name} & skip or (add is not None and add.name in skip):
            raise NotUnderstood("two batch norms share a convolution")
        skip.update({node.name, weights_node.name, conv.name})
        if add is not None:
            skip.add(add.name)
        # float32 statistics plus a Python float stay float32; the square root and everything
        # after it are double, as TensorFlow's pass computes them.
        var_eps = var + var.dtype.type(epsilon)
        if (var_eps < 0).any():
            raise NotUnderstood("negative variance (TensorFlow's pass fails on its square root)")
        with np.errstate(divide="ignore"):
            inv_std = 1.0 / np.sqrt(var_eps.astype(np.float64))
        scale = inv_std * gamma if _scale_after_normalization(node) else inv_std
        offset = (-mean * scale) + beta
        if conv.op == "Conv2D":
            per_weight = scale.reshape(1, 1, 1, channels)
        else:
            per_weight = scale.reshape(1, 1, weights.shape[2], weights.shape[3])
        scaled = (weights.astype(np.float64) * per_weight).astype(weights.dtype)

        scaled_node = protos.NodeDef(op="Const", name=conv.name + "_weights")
        scaled_node.attr["dtype"].CopyFrom(weights_node.attr["dtype"])
        scaled_node.attr["value"].tensor.CopyFrom(protos.make_tensor(scaled, protos.dtype_of_numpy(weights.dtype)))
        for i, ref in enumerate(conv.input):
            if ref == weights_node.name:
                conv.input[i] = scaled_node.name
        new_conv = protos.copy(conv)
        offset_node = protos.NodeDef(op="Const", name=conv.name + "_bn_offset")
        offset_node.attr["dtype"].CopyFrom(mean_node.attr["dtype"])
        offset_node.attr["value"].tensor.CopyFrom(protos.make_tensor(offset.astype(mean.dtype), protos.dtype_of_numpy(mean.dtype)))
        bias_add = protos.NodeDef(op="BiasAdd", name=node.name)
        bias_add.attr["T"].CopyFrom(conv.attr["T"])
        bias_add.attr["data_format"].CopyFrom(conv.attr["data_format"])
        bias_add.input.extend([new_conv.name, offset_node.name])
        new_nodes.extend([scaled_node, new_conv, offset_node, bias_add])
    if not skip and not new_nodes:
        return _unchanged(graph_def)
    return _rebuilt(graph_def, skip, new_nodes)


def _scale_after_normalization(node) -> bool:
    if node.op == "BatchNormWithGlobalNormalization":
        return node.attr["scale_after_normalization"].b
    return True
