"""The three modes of TensorFlow's old quantize_graph tool (tensorflow/tools/quantization, the
tool the TF 1.x users of the demo apps ran), reproduced: same nodes, same bytes.

- ``weights_rounded``: every float Const keeps its dtype but each value moves to the centre of
  one of 2^bitdepth equal buckets between the tensor's min and max (bucket = floor of the
  offset over the bucket width, the max in the last bucket): same graph, same ops, and the file
  compresses well (zip/gzip of the APK) because each tensor holds at most 2^bitdepth values.
- ``weights``: every float Const is stored as quint8 (QuantizeV2 MIN_COMBINED arithmetic over
  [min(0, min), max]) plus min/max scalars and a ``Dequantize`` (MIN_COMBINED) node under the
  original name, so consumers are untouched and the file is ~4x smaller. Compute stays float.
  Like the tool, both modes rebuild the replaced Consts from scratch (no device, no control
  inputs), keep what the outputs need and write no ``versions``. numpy does the arithmetic: no
  TensorFlow is imported. ``min_const_bytes`` (default 0: every float Const, as the tool) can
  leave small constants in float.
- ``eightbit``: Conv2D, MatMul, BiasAdd, Relu, Relu6, MaxPool, AvgPool, Reshape, Concat (the
  old op) and BatchNormWithGlobalNormalization run as TF's quantized kernels (QuantizeV2 ->
  QuantizedConv2D -> RequantizationRange/Requantize -> ... -> Dequantize) exactly as the tool
  rewrites them (``ReferenceEightBit``): the same traversal, node names, attrs and MIN_FIRST
  weight bytes, the same removal of Dequantize->QuantizeV2 round trips; anything else stays
  float behind a Dequantize named like the original node. Nothing is folded, nothing executed.

``extended=True`` (``--eightbit-extended``) goes beyond the tool (``ExtendedEightBit``, the same
rewrite with more): constant sub-graphs are folded first (``fold_constants``: optimize's folder),
ConcatV2 and x + a 1-D Const over the last dimension (Keras biases, folded batch norms) run
quantized too, ops the quantized kernels cannot express (dilations, NCHW, explicit padding) stay
float.

The quantized ops and attrs emitted are the ones the TF 1.0-1.4 mobile runtimes have; with
``tf_version`` the whole result is downgraded to and checked against that runtime's op set.
"""

from __future__ import annotations

from dataclasses import dataclass

from mobilebuild.errors import ModelError, UserError
from mobilebuild.graphs import fold, for_inference, nodes as gn, optimize as optimize_mod, protos, runtime_ops
from mobilebuild.graphs.optimize import extract_sub_graph

MODES = ("weights_rounded", "weights", "eightbit")
# Float Consts smaller than this many bytes stay float. 0 (every float Const) is what the
# reference tool does; a larger value trades a little size for fewer nodes.
DEFAULT_MIN_CONST_BYTES = 0
_FLOAT = protos.DT_FLOAT


class QuantizeModeError(UserError):
    """An unknown --mode or an unusable --bitdepth."""


def check_mode(mode: str, bitdepth: int = 8, extended: bool = False) -> None:
    """Validate before any TensorFlow import or file write."""
    if mode not in MODES:
        raise QuantizeModeError(f"unknown quantize mode {mode!r}", f"valid modes: {', '.join(MODES)}")
    if extended and mode != "eightbit":
        raise QuantizeModeError(f"--eightbit-extended does not apply to mode {mode}", "use it with --mode eightbit, or drop it")
    if mode == "weights_rounded":
        if not 1 <= bitdepth <= 16:
            raise QuantizeModeError(f"--bitdepth {bitdepth} is out of range for weights_rounded", "use 1 to 16 (8 is usual)")
    elif bitdepth != 8:
        raise QuantizeModeError(
            f"--bitdepth {bitdepth} is not possible with mode {mode}",
            "weights and eightbit store quint8 tensors: use --bitdepth 8, or weights_rounded for other depths",
        )


def quantize_graph_def(
    graph_def,
    mode: str,
    bitdepth: int = 8,
    tf_version: str | None = None,
    input_names=None,
    output_names=None,
    min_const_bytes: int | None = None,
    extended: bool = False,
):
    """Quantize a frozen GraphDef (see the module doc for the modes). With ``tf_version`` the
    result uses only ops/attrs of that runtime (downgraded, then checked; ModelError if not).
    ``extended`` (eightbit only) adds the rewrites beyond the reference tool."""
    check_mode(mode, bitdepth, extended)
    if min_const_bytes is None:
        min_const_bytes = DEFAULT_MIN_CONST_BYTES
    # The graph is not cut here (that is `optimize`), but names given must be real, in every mode.
    if input_names:
        gn.require_nodes(graph_def, list(input_names), "input node")
    outputs = gn.require_nodes(graph_def, list(output_names), "output node") if output_names else None
    graph_def = protos.ours(graph_def)
    outputs = outputs or sink_names(graph_def)
    if mode == "weights_rounded":
        out = extract_sub_graph(round_weights(graph_def, bitdepth, min_const_bytes), outputs)
    elif mode == "weights":
        out = extract_sub_graph(quantize_weights(graph_def, min_const_bytes), outputs)
    elif extended:
        # Fold constant sub-graphs first: Keras batch norm's four vectors become one scale and
        # one offset, read-variable Identities disappear, and each weight gets quantized once,
        # where it is used.
        out = ExtendedEightBit(fold_constants(graph_def, outputs), outputs, min_const_bytes).rewrite()
    else:
        out = ReferenceEightBit(graph_def, outputs, min_const_bytes).rewrite()
    if tf_version:
        out, _changes = fit_runtime(out, tf_version)
    return out


def fit_runtime(graph_def, tf_version: str, tf_src=None):
    """(GraphDef, change lines): downgraded to the op set of ``tf_version`` (bundled, or derived
    from the TF tree ``tf_src``), then checked; a ModelError names the first node that still
    would not load there."""
    return runtime_ops.fit_to_opset(graph_def, runtime_ops.load_opset(tf_version, tf_src))


# ---------------------------------------------------------------------------------------------
# helpers shared by the modes


def sink_names(graph_def) -> list[str]:
    """Nodes nothing consumes (the graph's outputs), ignoring Consts and NoOps."""
    consumed = set()
    for node in graph_def.node:
        for inp in node.input:
            consumed.add(gn.base_name(inp))
    sinks = [n.name for n in graph_def.node if n.name not in consumed and n.op not in ("Const", "NoOp", "Assert")]
    if not sinks:
        raise ModelError("cannot tell the graph's output node", "give it with --output-names")
    return sinks


def _large_float_const(node, min_const_bytes: int):
    """The Const's value as a float32 ndarray when it is a float Const to quantize."""
    if node.op != "Const" or "dtype" not in node.attr or node.attr["dtype"].type != _FLOAT:
        return None
    value = protos.to_ndarray(node.attr["value"].tensor)
    if value.nbytes < min_const_bytes or not value.size:
        return None
    return value


def _const_node(name: str, value, dtype, device: str = "", shape=None):
    """A Const node holding ``value`` (encoded as TensorFlow's make_tensor_proto encodes it)."""
    enum = _dtype_enum(dtype) if isinstance(dtype, str) else protos.dtype_of_numpy(dtype)
    node = protos.NodeDef(name=name, op="Const")
    if device:
        node.device = device
    node.attr["dtype"].type = enum
    node.attr["value"].tensor.CopyFrom(protos.make_tensor(value, enum, shape))
    return node


def _node(name: str, op: str, inputs, device: str = "", **attrs):
    """A NodeDef with typed attrs: DType via ('type', name or enum), lists via ('ints', [...])."""
    node = protos.NodeDef(name=name, op=op, input=list(inputs))
    if device:
        node.device = device
    for key, (kind, value) in attrs.items():
        av = node.attr[key]
        if kind == "type":
            av.type = value if isinstance(value, int) else _dtype_enum(value)
        elif kind == "s":
            av.s = value.encode() if isinstance(value, str) else value
        elif kind == "b":
            av.b = value
        elif kind == "i":
            av.i = value
        elif kind == "ints":
            av.list.i.extend(value)
        elif kind == "copy":
            av.ParseFromString(value.SerializeToString())
        else:  # pragma: no cover - programming error
            raise ValueError(kind)
    return node


def _dtype_enum(name: str) -> int:
    """'quint8' / 'float32' -> the DataType enum."""
    return {"float32": protos.DT_FLOAT, "float64": protos.DT_DOUBLE, "float16": protos.DT_HALF}.get(name) or protos.dtype_enum(
        "DT_" + name.upper()
    )


class _Names:
    """Fresh node names that collide neither with the graph's nor with each other."""

    def __init__(self, graph_def):
        self.used = {n.name for n in graph_def.node}

    def fresh(self, base: str) -> str:
        name, i = base, 1
        while name in self.used:
            name = f"{base}_{i}"
            i += 1
        self.used.add(name)
        return name


def _range_of(value):
    """min/max with zero inside the range (quantized zero padding and ReLU need an exact 0)
    and a non-empty range."""
    lo = min(float(value.min()), 0.0)
    hi = max(float(value.max()), 0.0)
    if hi - lo < 1e-6:
        hi = lo + 1.0
    return lo, hi


# ---------------------------------------------------------------------------------------------
# constant folding

def fold_constants(graph_def, output_names):
    """optimize's constant folding (``fold.evaluate``: numpy where it gives TensorFlow's exact
    bits, a fixed float64 rule for Rsqrt/Reciprocal, TensorFlow for the rest), then control
    edges from constant nodes dropped and only what the outputs need kept. Values are those
    the graph computes, except that scales derived through Rsqrt/Reciprocal may differ by an
    ulp from TensorFlow's processor-dependent kernel (see ``fold``)."""
    source = protos.ours(graph_def)
    folded, _count = optimize_mod.fold_constants(source, set(output_names))
    folded = protos.ours(folded)  # TensorFlow may have been imported meanwhile
    pure = fold.numpy_ops()
    constant: set[str] = set()
    for node in gn.topological_order(folded):
        if node.op == "Const" or (node.op in pure and node.input and all(gn.base_name(i) in constant for i in node.input)):
            constant.add(node.name)
    for node in folded.node:
        # Control edges from constants order nothing (they have no side effect), but they
        # would keep the unfolded weights alive (Keras' frozen NoOp depends on all of them).
        kept = [i for i in node.input if not (i.startswith("^") and i[1:] in constant)]
        if len(kept) != len(node.input):
            del node.input[:]
            node.input.extend(kept)
    if folded is source:  # nothing folded: the caller's graph, not to be changed
        return extract_sub_graph(folded, output_names)
    return optimize_mod.prune_in_place(folded, output_names)  # fold_constants' own copy


# ---------------------------------------------------------------------------------------------
# weights_rounded


def bucket_centres(value, num_buckets: int):
    """Each value moved to the centre of one of ``num_buckets`` equal buckets between the
    tensor's min and max (the max falls in the last bucket), computed in the tensor's own
    float type as the reference tool computes it; a constant tensor stays as it is."""
    import numpy as np

    hi, lo = value.max(), value.min()
    if hi == lo:
        return value
    width = (hi - lo) / num_buckets
    index = np.floor((value - lo) / width)
    index[index == num_buckets] = num_buckets - 1
    return lo + width * (index + 0.5)


def round_weights(graph_def, bitdepth: int = 8, min_const_bytes: int = DEFAULT_MIN_CONST_BYTES):
    """Every float Const -> a Const of the bucket centres (same name and shape)."""
    out = protos.GraphDef()
    for node in graph_def.node:
        value = _large_float_const(node, min_const_bytes)
        if value is None:
            out.node.add().CopyFrom(node)
            continue
        dims = protos.tensor_dims(node.attr["value"].tensor)
        out.node.append(_const_node(node.name, bucket_centres(value, 1 << bitdepth), "float32", shape=dims))
    return out


# ---------------------------------------------------------------------------------------------
# weights


def quantize_weights(graph_def, min_const_bytes: int = DEFAULT_MIN_CONST_BYTES):
    """Each float Const N -> N_quint8_const, N_min, N_max + Dequantize (MIN_COMBINED) named N."""
    names = _Names(graph_def)
    out = protos.GraphDef()
    for node in graph_def.node:
        value = _large_float_const(node, min_const_bytes)
        if value is None:
            out.node.add().CopyFrom(node)
            continue
        out.node.extend(_weight_nodes(node, value, names, "MIN_COMBINED"))
    return out


def weight_range(value) -> tuple:
    """The (min, max) the reference tool stores for a weight tensor: min at most 0, and a
    range that is never empty."""
    import numpy as np

    lo, hi = np.min(value), np.max(value)
    if lo > 0.0:
        lo = 0.0
    if lo == hi:
        if abs(lo) < 0.000001:
            hi = lo + 1.0
        elif lo > 0:
            hi = 2 * lo
        else:
            hi = lo / 2.0
    return lo, hi


def quantize_v2_range(lo, hi) -> tuple:
    """The range QuantizeV2 really quantizes over for a requested [lo, hi]: zero inside, at
    least 1 % of the largest magnitude wide (float32, as the kernel computes it)."""
    import numpy as np

    f32 = np.float32
    lo, hi = f32(lo), f32(hi)
    min_range = min(f32(0.0), lo)
    epsilon = f32(max(f32(1.0), max(abs(lo), abs(hi)))) * f32(0.01)
    max_range = max(f32(0.0), max(hi, f32(min_range + epsilon)))
    return f32(min_range), f32(max_range)


def _quantize_min_combined(value, lo, hi):
    """QuantizeV2(mode=MIN_COMBINED, T=quint8) of a float32 tensor over the requested [lo, hi]:
    the kernel's float32 arithmetic, (clamp(x) - min) * scale + 0.5 truncated."""
    import numpy as np

    if protos.prefer_tensorflow():
        return _tensorflow_quantize_v2(value, lo, hi, "MIN_COMBINED")
    f32 = np.float32
    min_range, max_range = quantize_v2_range(lo, hi)
    scale = f32(255.0) / (max_range - min_range)  # float32 throughout, as the kernel divides
    x = np.asarray(value, dtype=f32)
    return ((np.minimum(np.maximum(x, min_range), max_range) - min_range) * scale + f32(0.5)).astype(np.uint8)


def _tensorflow_quantize_v2(value, lo, hi, mode: str):
    """TensorFlow's own QuantizeV2 kernel (the path the numpy code above must match)."""
    import numpy as np
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        op = tf.raw_ops.QuantizeV2(input=np.asarray(value, np.float32), min_range=lo, max_range=hi, T=tf.quint8, mode=mode)
        with tf.compat.v1.Session(graph=graph) as sess:
            out = sess.run(op.output)
    return np.asarray(out).view(np.uint8).reshape(np.shape(value))


def _quantize_min_first(value, lo: float, hi: float):
    """QuantizeV2(mode=MIN_FIRST, T=quint8) of a float32 tensor over the requested [lo, hi], as
    the CPU kernel computes it (quantization_utils' FloatToQuantizedStruct, all float32):
    s = 255 / (max - min) divided in double and stored as float, q = round(x * s) - round(min * s)
    with halves rounded away from zero, clamped to [0, 255]."""
    import numpy as np

    if protos.prefer_tensorflow():
        return _tensorflow_quantize_v2(value, lo, hi, "MIN_FIRST")
    f32 = np.float32
    min_range, max_range = quantize_v2_range(lo, hi)
    scale = f32(255.0 / float(f32(max_range - min_range)))
    min_scaled = _round_half_away(f32(min_range * scale))
    q = _round_half_away(np.asarray(value, dtype=f32) * scale) - min_scaled
    return np.clip(q, f32(0.0), f32(255.0)).astype(np.uint8)


def _round_half_away(x):
    """std::round of float32 values (halves away from zero; numpy's round goes to even). The
    float64 sum is exact for every float32, so no value near a half is misrounded. (A zero
    may come back negative, which the uint8 result does not keep.)"""
    import numpy as np

    a = np.asarray(x, dtype=np.float64)
    return np.trunc(a + np.copysign(0.5, a)).astype(np.float32)


def _weight_nodes(node, value, names: _Names, mode: str):
    """quint8 Const + min/max Consts + Dequantize(mode) under the original name, as the reference
    tool writes them: range from weight_range, values by QuantizeV2 in ``mode``, no device."""
    lo, hi = weight_range(value)
    q = _quantize_min_combined(value, lo, hi) if mode == "MIN_COMBINED" else _quantize_min_first(value, lo, hi)
    return _quantized_const_nodes(node, q, lo, hi, names, mode, "")


def _extended_weight_nodes(node, value, names: _Names):
    """The extended eightbit's weights: MIN_FIRST over a range holding zero, device kept. The
    stored range is the one QuantizeV2 really encodes over (the reference stores the requested
    one, off for tensors of a very narrow range)."""
    lo, hi = quantize_v2_range(*_range_of(value))
    q = _quantize_min_first(value, lo, hi)
    return _quantized_const_nodes(node, q, lo, hi, names, "MIN_FIRST", node.device)


def _quantized_const_nodes(node, q, lo, hi, names: _Names, mode: str, device: str):
    q_name = names.fresh(node.name + "_quint8_const")
    min_name = names.fresh(node.name + "_min")
    max_name = names.fresh(node.name + "_max")
    return [
        _const_node(q_name, q, "quint8", device, shape=list(q.shape)),
        _const_node(min_name, lo, "float32", device),
        _const_node(max_name, hi, "float32", device),
        _node(node.name, "Dequantize", [q_name, min_name, max_name], device, T=("type", "quint8"), mode=("s", mode)),
    ]


# ---------------------------------------------------------------------------------------------
# eightbit: the reference rewrite

# Ops whose every input the reference quantizes (Consts among them become quint8 Consts).
_QUANTIZED_INPUTS = {"MatMul", "Conv2D", "BiasAdd", "MaxPool", "AvgPool", "Relu", "Relu6", "BatchNormWithGlobalNormalization"}
_FAKE_QUANT = "FakeQuantWithMinMaxVars"


def _port_name(ref: str) -> str:
    """'a' -> 'a:0' (a tensor name always with its port)."""
    name, sep, port = ref.rpartition(":")
    return ref if sep and port.isdigit() else ref + ":0"


@dataclass
class _Visit:
    """A node being visited and the input it is descending into (the reference's stack entry:
    the consumer, the input index, and whether that input gets quantized)."""

    node: object
    index: int = -1

    def is_fake_quant_input(self) -> bool:
        return self.index == 0 and self.node.op == _FAKE_QUANT


class ReferenceEightBit:
    """TensorFlow's quantize_graph --mode eightbit (v1.4), rewritten: the same traversal (depth
    first from the outputs, inputs in order, each node once), the same nodes with the same
    names, attrs and constant bytes, the same clean-up; numpy does the weights' QuantizeV2.

    Where the reference cannot produce a graph that loads, this does the sensible thing instead:
    Identity output nodes are kept (the reference splices them away, then fails to find its
    outputs), a CheckNumerics read as data is bypassed (the reference drops the edge), control
    inputs of a rewritten op stay control inputs (the reference would quantize them as data),
    attrs the original node omits get their defaults (the reference writes empty attrs), a
    Reshape keeps an int64 shape type. A Conv2D with dilations, an NCHW op or an
    explicit padding is refused: the quantized kernels would ignore them and compute other
    numbers (or not load)."""

    def __init__(self, graph_def, output_names, min_const_bytes: int = 0):
        self.outputs = list(output_names)
        self.src = for_inference.remove_training_nodes(protos.ours(graph_def), self.outputs, loadable=True)
        self.nodes = {n.name: n for n in self.src.node}
        self.min_const_bytes = min_const_bytes
        self.out = protos.GraphDef()
        self.visited: set[str] = set()
        self.merged_with_fake_quant: set[str] = set()
        self.parent: _Visit | None = None  # the consumer (and input) the current node was reached from

    # -- traversal

    def rewrite(self):
        for name in self.outputs:
            self._visit_from(self.nodes[name])
        try:  # TensorFlow's extract_sub_graph, as the reference prunes
            pruned = for_inference.extract_sub_graph(self._remove_redundant_quantization(self.out), self.outputs)
        except for_inference.NotUnderstood as exc:  # a colocation with a node not in the graph
            raise ModelError(f"cannot prune the quantized graph: {exc}", "the graph is incomplete: re-export or re-freeze it") from None
        # The reference's last step (applying its renames) builds a fresh graph of the nodes
        # alone: no versions, no library (``pruned`` is new: cleared, not copied).
        pruned.ClearField("library")
        pruned.ClearField("versions")
        return pruned

    def _input(self, consumer, ref: str):
        name = for_inference.input_node_name(ref)
        node = self.nodes.get(name)
        if node is None:
            raise ModelError(f"node {consumer.name!r} reads {ref!r}, which is not in the graph", "the graph is incomplete: re-export or re-freeze it")
        return node

    def _visit_from(self, root) -> None:
        """Depth first, post-order, iteratively (deep graphs would exhaust Python's recursion)."""
        if root.name in self.visited:
            return
        self.visited.add(root.name)
        stack = [_Visit(root)]
        while stack:
            top = stack[-1]
            top.index += 1
            if top.index < len(top.node.input):
                child = self._input(top.node, top.node.input[top.index])
                if child.name in self.visited:
                    if top.is_fake_quant_input() or child.name in self.merged_with_fake_quant:
                        raise ModelError(
                            f"the output of {child.name!r} goes through a FakeQuant node and elsewhere",
                            "eightbit needs a FakeQuantWithMinMaxVars to be its input's only consumer",
                        )
                    continue
                self.visited.add(child.name)
                stack.append(_Visit(child))
                continue
            stack.pop()
            self.parent = stack[-1] if stack else None
            self._emit(top.node)
            if self._merges_with_fake_quant() and top.node.name not in self.merged_with_fake_quant:
                raise ModelError(
                    f"FakeQuant node {self.parent.node.name!r} follows {top.node.name!r} ({top.node.op}), which eightbit does not quantize",
                    "FakeQuantWithMinMaxVars can only follow an op eightbit rewrites",
                )

    def _merges_with_fake_quant(self) -> bool:
        return self.parent is not None and self.parent.is_fake_quant_input()

    def _quantizes_input(self, node, i: int) -> bool:
        """Whether input ``i`` of ``node`` is quantized (so a Const there is stored as quint8)."""
        if node.op in _QUANTIZED_INPUTS:
            return True
        if node.op == "Concat" and i > 0 or node.op == "Reshape" and i == 0:
            return _type_attr(node, "T") == _FLOAT
        return False

    # -- per node

    def _emit(self, node) -> None:
        op = node.op
        float_t = _type_attr(node, "T") == _FLOAT
        if op == "MatMul":
            self._matmul(node)
        elif op == "Conv2D":
            self._conv2d(node)
        elif op == "BiasAdd":
            self._require_nhwc(node)
            self._with_requantize(node, "QuantizedBiasAdd", "_eightbit_quantized_bias_add", T1=("type", "quint8"), T2=("type", "quint8"), out_type=("type", "qint32"))
        elif op in ("MaxPool", "AvgPool"):
            self._require_nhwc(node)
            self._single_input(node, T=("type", "quint8"), ksize=self._attr(node, "ksize"), strides=self._attr(node, "strides"), padding=self._attr(node, "padding"))
        elif op in ("Relu", "Relu6"):
            self._single_input(node, Tinput=("type", "quint8"))
        elif op == "Concat" and float_t:
            self._concat(node)
        elif op == "BatchNormWithGlobalNormalization":
            self._batch_norm(node)
        elif op == "Reshape" and float_t:
            self._reshape(node)
        elif op == _FAKE_QUANT:
            pass  # merged into the op before it
        elif op == "Const" and self.parent is not None and self._quantizes_input(self.parent.node, self.parent.index):
            # Read directly by a rewritten op: stored as quint8 (the reference asserts float32
            # here; another type, or a Const below --min-const-bytes, is kept as it is).
            value = _large_float_const(node, self.min_const_bytes)
            if value is None:
                self.out.node.add().CopyFrom(node)
            else:
                self.out.node.extend(self._weight_nodes(node, value))
        else:
            self.out.node.add().CopyFrom(node)

    def _weight_nodes(self, node, value):
        return _weight_nodes(node, value, _NoRenames(), "MIN_FIRST")

    @staticmethod
    def _attr(node, key: str):
        return ("copy", node.attr[key]) if key in node.attr else None

    def _require_nhwc(self, node) -> None:
        """The quantized kernels know NHWC and SAME/VALID only; the reference would copy another
        layout or padding into them unnoticed (a graph that fails to load or computes other
        numbers): refused instead, naming the way out."""
        if not _nhwc(node):
            raise ModelError(
                f"{node.op} {node.name!r} uses data_format {_str_attr(node, 'data_format').decode()}; the quantized kernels are NHWC only",
                "convert the graph to NHWC, or use --eightbit-extended (leaves such ops in float)",
            )
        if "padding" in node.attr and _str_attr(node, "padding") not in (b"SAME", b"VALID"):
            raise ModelError(
                f"{node.op} {node.name!r} uses padding {_str_attr(node, 'padding').decode()}; the quantized kernels have SAME and VALID only",
                "use --eightbit-extended (leaves such ops in float)",
            )

    def _data_and_control(self, node):
        data = [i for i in node.input if not i.startswith("^")]
        return data, [i for i in node.input if i.startswith("^")]

    def _matmul(self, node) -> None:
        self._with_requantize(
            node, "QuantizedMatMul", "_eightbit_quantized_mat_mul",
            T1=("type", "quint8"), T2=("type", "quint8"), Toutput=("type", "qint32"),
            transpose_a=self._attr(node, "transpose_a") or ("b", False), transpose_b=self._attr(node, "transpose_b") or ("b", False),
        )

    def _conv2d(self, node) -> None:
        self._require_nhwc(node)
        if "dilations" in node.attr and any(d != 1 for d in node.attr["dilations"].list.i):
            raise ModelError(
                f"Conv2D {node.name!r} is dilated; QuantizedConv2D has no dilations and would compute other numbers",
                "use --eightbit-extended (leaves dilated convolutions in float)",
            )
        self._with_requantize(
            node, "QuantizedConv2D", "_eightbit_quantized_conv", strides=self._attr(node, "strides"), padding=self._attr(node, "padding"),
            Tinput=("type", "quint8"), Tfilter=("type", "quint8"), out_type=("type", "qint32"),
        )

    def _with_requantize(self, node, op: str, suffix: str, refs=None, **attrs) -> None:
        """prologue -> quantized op (qint32) -> RequantizationRange/Requantize -> Dequantize."""
        inputs = self._prologue(node, refs)
        name = node.name + suffix
        self._add(name, op, inputs + self._data_and_control(node)[1], **attrs)
        self._dequantize_result(node, self._quantize_down(node, name))

    def _single_input(self, node, **attrs) -> None:
        inputs = self._prologue(node)
        name = node.name + "_eightbit_quantized"
        self._add(name, "Quantized" + node.op, inputs + self._data_and_control(node)[1], **attrs)
        self._dequantize_result(node, name)

    def _concat(self, node) -> None:
        prefix = node.name + "_eightbit"
        data, control = self._data_and_control(node)
        dims = self._common_nodes(prefix)
        quantized = [self._quantize_input(prefix, ref, dims) for ref in data[1:]]
        name = prefix + "_quantized_concat"
        inputs = [data[0]] + [q[0] for q in quantized] + [q[1] for q in quantized] + [q[2] for q in quantized]
        self._add(name, "QuantizedConcat", inputs + control, N=("i", len(quantized)), T=("type", "quint8"))
        self._dequantize_result(node, name)

    def _reshape(self, node) -> None:
        prefix = node.name + "_eightbit"
        data, control = self._data_and_control(node)
        dims = self._common_nodes(prefix)
        q, lo, hi = self._quantize_input(prefix, data[0], dims)
        name = prefix + "_quantized_reshape"
        attrs = {"T": ("type", "quint8")}
        if _type_attr(node, "Tshape") not in (None, protos.DT_INT32):
            attrs["Tshape"] = ("type", _type_attr(node, "Tshape"))
        self._add(name, "QuantizedReshape", [q, data[1], lo, hi] + control, **attrs)
        self._dequantize_result(node, name)

    def _batch_norm(self, node) -> None:
        prefix = node.name + "_eightbit"
        data, control = self._data_and_control(node)
        dims = self._common_nodes(prefix)
        inputs = []
        for ref in data[:5]:  # input, mean, variance, beta, gamma
            inputs.extend(self._quantize_input(prefix, ref, dims))
        name = prefix + "_quantized_batch_norm"
        self._add(
            name, "QuantizedBatchNormWithGlobalNormalization", inputs + control,
            Tinput=("type", "quint8"), out_type=("type", "qint32"),
            scale_after_normalization=self._attr(node, "scale_after_normalization"), variance_epsilon=self._attr(node, "variance_epsilon"),
        )
        self._dequantize_result(node, self._quantize_down(node, name))

    # -- building blocks

    def _add(self, name: str, op: str, inputs, **attrs) -> None:
        self.out.node.append(_node(name, op, inputs, **{k: v for k, v in attrs.items() if v is not None}))

    def _prologue(self, node, refs=None) -> list[str]:
        """Every data input (or ``refs``) quantized at run time: quantized values, then
        (min, max) pairs."""
        prefix = node.name + "_eightbit"
        dims = self._common_nodes(prefix)
        values, ranges = [], []
        for ref in self._data_and_control(node)[0] if refs is None else refs:
            q, lo, hi = self._quantize_input(prefix, ref, dims)
            values.append(q)
            ranges += [lo, hi]
        return values + ranges

    def _common_nodes(self, prefix: str) -> tuple[str, str]:
        shape, axis = prefix + "_reshape_dims", prefix + "_reduction_dims"
        self.out.node.append(_const_node(shape, [-1], "int32"))
        self.out.node.append(_const_node(axis, [0], "int32"))
        return shape, axis

    def _quantize_input(self, prefix: str, ref: str, dims: tuple[str, str]) -> tuple[str, str, str]:
        """Reshape to 1-D, Min, Max, QuantizeV2 (MIN_FIRST) of one float input."""
        shape, axis = dims
        unique = ref.replace(":", "__port__").replace("^", "__hat__")
        flat, lo, hi, q = (f"{prefix}_{part}_{unique}" for part in ("reshape", "min", "max", "quantize"))
        self._add(flat, "Reshape", [ref, shape], T=("type", "float32"))
        self._add(lo, "Min", [flat, axis], T=("type", "float32"), keep_dims=("b", False))
        self._add(hi, "Max", [flat, axis], T=("type", "float32"), keep_dims=("b", False))
        self._add(q, "QuantizeV2", [ref, lo, hi], T=("type", "quint8"), mode=("s", "MIN_FIRST"))
        return q, q + ":1", q + ":2"

    def _quantize_down(self, node, qint32_name: str) -> str:
        """qint32 -> quint8: over the range RequantizationRange measures, or the one a following
        FakeQuant node gives."""
        outputs = [qint32_name, qint32_name + ":1", qint32_name + ":2"]
        if self._merges_with_fake_quant():
            fake_quant = self.parent.node
            ranges = [fake_quant.input[1], fake_quant.input[2]]
            self.merged_with_fake_quant.add(node.name)
        else:
            measured = node.name + "_eightbit_requant_range"
            self._add(measured, "RequantizationRange", outputs, Tinput=("type", "qint32"))
            ranges = [measured + ":0", measured + ":1"]
        name = node.name + "_eightbit_requantize"
        self._add(name, "Requantize", outputs + ranges, Tinput=("type", "qint32"), out_type=("type", "quint8"))
        return name

    def _dequantize_result(self, node, quantized: str) -> None:
        """Back to float under the original name (or the FakeQuant's, which it replaces)."""
        ranges = [quantized + ":1", quantized + ":2"]
        name = node.name
        if self._merges_with_fake_quant():
            fake_quant = self.parent.node
            if node.name not in self.merged_with_fake_quant:
                ranges = [fake_quant.input[1], fake_quant.input[2]]
                self.merged_with_fake_quant.add(node.name)
            name = fake_quant.name
        self._add(name, "Dequantize", [quantized] + ranges, T=("type", "quint8"), mode=("s", "MIN_FIRST"))

    @staticmethod
    def _remove_redundant_quantization(graph_def):
        """QuantizeV2(Dequantize(x)) whose range is Min/Max of that same tensor is x itself:
        its consumers read x and x's range directly (the dead nodes are pruned after)."""
        nodes = {n.name: n for n in graph_def.node}
        renames = {}
        for node in graph_def.node:
            if node.op not in ("Quantize", "QuantizeV2") or len(node.input) < 3:
                continue
            dequantize = nodes.get(for_inference.input_node_name(node.input[0]))
            if dequantize is None or dequantize.op != "Dequantize" or len(dequantize.input) < 3:
                continue
            if _type_attr(node, "T") != _type_attr(dequantize, "T"):
                continue
            lo, hi = nodes.get(for_inference.input_node_name(node.input[1])), nodes.get(for_inference.input_node_name(node.input[2]))
            if lo is None or hi is None or lo.op not in ("Min", "Dequantize") or hi.op not in ("Max", "Dequantize"):
                continue
            if not lo.input or not hi.input:
                continue
            lo_source, hi_source = for_inference.input_node_name(lo.input[0]), for_inference.input_node_name(hi.input[0])
            same = lo_source == hi_source
            if not same:
                # The other shape it recognises: Min over a Concat whose second input is a Min of
                # the Max's input.
                first = nodes.get(lo_source)
                if first is not None and first.op == "Concat" and len(first.input) > 1:
                    second = nodes.get(for_inference.input_node_name(first.input[1]))
                    same = second is not None and second.op == "Min" and bool(second.input) and for_inference.input_node_name(second.input[0]) == hi_source
            if not same:
                continue
            renames[_port_name(node.name)] = for_inference.input_node_name(dequantize.input[0])
            renames[node.name + ":1"] = dequantize.input[1]
            renames[node.name + ":2"] = dequantize.input[2]
        for node in graph_def.node:
            for i, ref in enumerate(node.input):
                target = renames.get(_port_name(ref))
                if target is not None:
                    node.input[i] = target
        return graph_def


class _NoRenames(_Names):
    """The reference names the quantized weights N_quint8_const, N_min, N_max as they are."""

    def __init__(self):
        self.used = set()

    def fresh(self, base: str) -> str:
        return base


# ---------------------------------------------------------------------------------------------
# eightbit, extended (--eightbit-extended)


class ExtendedEightBit(ReferenceEightBit):
    """The reference rewrite plus what it leaves out (run on a constant-folded graph):
    ConcatV2 and x + a 1-D Const over the last dimension (Keras biases, folded batch norms) run
    as QuantizedConcat / QuantizedBiasAdd; a dilated, NCHW or explicitly padded op stays float
    instead of being refused; weights store the range QuantizeV2 really encodes over."""

    def __init__(self, graph_def, output_names, min_const_bytes: int = DEFAULT_MIN_CONST_BYTES):
        super().__init__(graph_def, output_names, min_const_bytes)
        self._specs = None  # static shapes of the source graph, when first needed

    def _quantizes_input(self, node, i: int) -> bool:
        if node.op in _LAYOUT_SENSITIVE and not _fits_quantized_kernels(node):
            return False
        if node.op == "ConcatV2":
            return self._concat_v2_axis(node) is not None and i < node.attr["N"].i
        if node.op in ("Add", "AddV2"):
            return self._bias_inputs(node) is not None
        return super()._quantizes_input(node, i)

    def _emit(self, node) -> None:
        if node.op in _LAYOUT_SENSITIVE and not _fits_quantized_kernels(node):
            self.out.node.add().CopyFrom(node)
        elif node.op == "ConcatV2" and self._concat_v2_axis(node) is not None:
            self._concat_v2(node)
        elif node.op in ("Add", "AddV2") and self._bias_inputs(node) is not None:
            self._with_requantize(
                node, "QuantizedBiasAdd", "_eightbit_quantized_bias_add", refs=self._bias_inputs(node),
                T1=("type", "quint8"), T2=("type", "quint8"), out_type=("type", "qint32"),
            )
        else:
            super()._emit(node)

    def _weight_nodes(self, node, value):
        return _extended_weight_nodes(node, value, _NoRenames())

    def _shape(self, ref: str):
        """Static shape of a tensor of the source graph (None when unknown)."""
        name, _, port = ref.partition(":")
        if port not in ("", "0"):
            return None
        if self._specs is None:
            self._specs = gn.tensor_specs(self.src)
        return (self._specs.get(name) or (None,))[0]

    def _bias_inputs(self, node):
        """[x, b] when ``node`` adds a float 1-D Const b over x's last dimension, else None."""
        if _type_attr(node, "T") != _FLOAT:
            return None
        data = self._data_and_control(node)[0]
        if len(data) != 2:
            return None
        for x_ref, b_ref in (data, data[::-1]):
            bias = self.nodes.get(for_inference.input_node_name(b_ref))
            if bias is None or bias.op != "Const" or _type_attr(bias, "dtype") != _FLOAT:
                continue
            dims = protos.tensor_dims(bias.attr["value"].tensor)
            x_shape = self._shape(x_ref)
            if len(dims) == 1 and x_shape and len(x_shape) >= 2 and x_shape[-1] == dims[0]:
                return [x_ref, b_ref]
        return None

    def _concat_v2_axis(self, node):
        """ConcatV2's axis as a non-negative int (QuantizedConcat rejects negative ones, and
        Keras concatenates on -1), or None when it is not a Const or the rank is unknown."""
        if _type_attr(node, "T") != _FLOAT or _type_attr(node, "Tidx") not in (None, protos.DT_INT32):
            return None
        data = self._data_and_control(node)[0]
        n = node.attr["N"].i
        if len(data) != n + 1:
            return None
        axis_node = self.nodes.get(for_inference.input_node_name(data[n]))
        if axis_node is None or axis_node.op != "Const":
            return None
        value = protos.to_ndarray(axis_node.attr["value"].tensor).reshape(-1)
        if value.size != 1:
            return None
        axis = int(value[0])
        if axis >= 0:
            return axis
        shape = self._shape(data[0])
        return None if shape is None else axis + len(shape)

    def _concat_v2(self, node) -> None:
        prefix = node.name + "_eightbit"
        data, control = self._data_and_control(node)
        n = node.attr["N"].i
        axis = prefix + "_axis"
        self.out.node.append(_const_node(axis, self._concat_v2_axis(node), "int32"))
        dims = self._common_nodes(prefix)
        quantized = [self._quantize_input(prefix, ref, dims) for ref in data[:n]]
        name = prefix + "_quantized_concat"
        inputs = [axis] + [q[0] for q in quantized] + [q[1] for q in quantized] + [q[2] for q in quantized]
        self._add(name, "QuantizedConcat", inputs + control, N=("i", n), T=("type", "quint8"))
        self._dequantize_result(node, name)


# Ops whose quantized kernels are NHWC with SAME/VALID padding and no dilations.
_LAYOUT_SENSITIVE = {"Conv2D", "BiasAdd", "MaxPool", "AvgPool"}


def _fits_quantized_kernels(node) -> bool:
    if not _nhwc(node):
        return False
    if "padding" in node.attr and _str_attr(node, "padding") not in (b"SAME", b"VALID"):
        return False
    return not ("dilations" in node.attr and any(d != 1 for d in node.attr["dilations"].list.i))


def _type_attr(node, key: str):
    # Reading node.attr[key] of a missing key would insert an empty attr into the node.
    return node.attr[key].type if key in node.attr else None


def _str_attr(node, key: str) -> bytes:
    return node.attr[key].s if key in node.attr else b""


def _nhwc(node) -> bool:
    return _str_attr(node, "data_format") in (b"", b"NHWC")
