"""Static shapes and types of node outputs without TensorFlow, for the ops of image classifiers.

``infer`` walks the nodes in topological order and works out output 0 of each node whose op it
knows: (shape, dtype name), a shape being a list of dims (None = unknown size) or None (unknown
rank), exactly as TensorFlow's shape inference reports them. A node whose op (or input) it does
not know is left out of the answer, and ``infer`` returns None when a node the caller asked about
is left out: the caller then asks TensorFlow, so a figure is never guessed.
"""

from __future__ import annotations

from mobilebuild.graphs import protos

# Output 0 has the shape (and type) of input 0.
SAME_AS_INPUT = {
    "Identity", "CheckNumerics", "StopGradient", "Snapshot", "PreventGradient", "Relu", "Relu6", "Elu",
    "Selu", "LeakyRelu", "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "Softplus", "Softsign", "Rsqrt", "Sqrt",
    "Neg", "Square", "Exp", "Log", "Abs", "Floor", "Ceil", "Round", "Reciprocal", "LRN", "BiasAdd",
    "FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3", "BatchNormWithGlobalNormalization",
    "FakeQuantWithMinMaxVars", "FakeQuantWithMinMaxArgs", "ZerosLike", "OnesLike",
}
BROADCASTING = {
    "Add", "AddV2", "Sub", "Mul", "RealDiv", "Div", "Maximum", "Minimum", "SquaredDifference", "Pow",
    "FloorDiv", "FloorMod", "TruncateDiv", "BiasAddV1",
}
NO_OUTPUTS = {"NoOp", "Assert", "SaveV2", "Save", "SaveSlices"}
REDUCTIONS = {"Mean", "Sum", "Max", "Min", "Prod"}
RESIZE = {"ResizeBilinear", "ResizeBicubic", "ResizeNearestNeighbor", "ResizeArea"}
DECODE = {"DecodeJpeg", "DecodePng", "DecodeBmp", "DecodeGif", "DecodeImage", "DecodeAndCropJpeg"}


class _Unknown(Exception):
    """This node's output is beyond the fast path: leave it out."""


def _base(ref: str) -> tuple[str, int]:
    name, _, port = ref.lstrip("^").partition(":")
    return name, int(port) if port else 0


def infer(ordered_nodes, names=None) -> dict | None:
    """{node name: (shape, dtype short name)} for the nodes of ``ordered_nodes`` (topological
    order) whose output 0 is known; None when one of ``names`` (default: every node) is not."""
    specs: dict[str, tuple] = {}  # name -> (shape, dtype enum)
    nodes = {n.name: n for n in ordered_nodes}
    values: dict[str, object] = {}

    def const(ref: str) -> list[int]:
        """The elements (flat) of a constant integer input (through Identity), or raise _Unknown."""
        return _const(ref)[0]

    def _const(ref: str) -> tuple[list[int], int]:
        """(flat elements, rank) of a constant integer input, or raise _Unknown."""
        name, port = _base(ref)
        node = nodes.get(name)
        hops = 0
        while node is not None and node.op == "Identity" and node.input and hops < 16:
            name, port = _base(node.input[0])
            node = nodes.get(name)
            hops += 1
        if node is None or node.op != "Const" or port:
            raise _Unknown
        if name not in values:
            tensor = node.attr["value"].tensor
            try:
                flat = protos.int_values(tensor)
            except (protos.UnsupportedTensor, ValueError) as exc:
                raise _Unknown from exc
            if flat is None:  # every input read here is an int tensor (axes, sizes, shapes)
                raise _Unknown
            values[name] = (flat, len(tensor.tensor_shape.dim))
        return values[name]

    def spec(ref: str):
        name, port = _base(ref)
        if port or name not in specs:
            raise _Unknown
        return specs[name]

    partial: dict[str, tuple[list, bool]] = {}  # small int tensors: (values, None = unknown; is scalar)

    def known_values(ref: str) -> tuple[list, bool]:
        """The elements of a scalar / 1-D int tensor as far as they are known statically."""
        name, port = _base(ref)
        if not port and name in partial:
            return partial[name]
        flat, rank = _const(ref)
        if rank > 1:
            raise _Unknown
        return list(flat), rank == 0

    for node in ordered_nodes:
        try:
            specs[node.name] = _infer_node(node, spec, const, known_values)
        except (_Unknown, KeyError, IndexError, ValueError, TypeError, ZeroDivisionError):
            continue
        try:
            if node.op in ("Shape", "StridedSlice", "Pack"):
                partial[node.name] = _partial_value(node, spec, known_values)
        except (_Unknown, KeyError, IndexError, ValueError, TypeError):
            pass
    # Ops without outputs have no spec (TensorFlow's inference lists none for them either).
    wanted = [n.name for n in ordered_nodes if n.op not in NO_OUTPUTS] if names is None else names
    if any(name not in specs for name in wanted):
        return None
    return {name: (shape, protos.dtype_short_name(dtype)) for name, (shape, dtype) in specs.items()}


def _attr_type(node, key: str):
    if key not in node.attr:
        raise _Unknown
    return node.attr[key].type


def _ints(node, key: str) -> list[int]:
    if key not in node.attr:
        raise _Unknown
    return list(node.attr[key].list.i)


def _data_inputs(node) -> list[str]:
    return [i for i in node.input if not i.startswith("^")]


def _rank_known(shape) -> list:
    if shape is None:
        raise _Unknown
    return shape


def _partial_value(node, spec, known_values) -> tuple[list, bool]:
    """What is known of the value of the int tensors Keras builds target shapes from:
    Shape(x), a StridedSlice of it, a Pack of such scalars and constants."""
    ins = _data_inputs(node)
    if node.op == "Shape":
        shape = _rank_known(spec(ins[0])[0])
        return list(shape), False
    if node.op == "Pack":
        if node.attr["axis"].i != 0:
            raise _Unknown
        items = [known_values(i) for i in ins]
        if not all(scalar for _, scalar in items):
            raise _Unknown
        return [values[0] for values, _ in items], False
    # StridedSlice of a known 1-D vector; masks other than begin/end/shrink are left to TensorFlow.
    values, scalar = known_values(ins[0])
    if scalar or node.attr["ellipsis_mask"].i or node.attr["new_axis_mask"].i:
        raise _Unknown
    begin, end, strides = (known_values(i)[0] for i in ins[1:4])
    if len(begin) != 1 or None in begin + end + strides or strides[0] == 0:
        raise _Unknown
    b = None if node.attr["begin_mask"].i & 1 else begin[0]
    e = None if node.attr["end_mask"].i & 1 else end[0]
    if node.attr["shrink_axis_mask"].i & 1:
        return [values[begin[0]]], True
    return values[slice(b, e, strides[0])], False


def _infer_node(node, spec, const, known_values):
    op = node.op
    ins = _data_inputs(node)
    if op in ("Placeholder", "PlaceholderWithDefault"):
        dtype = _attr_type(node, "dtype")
        if "shape" not in node.attr:
            if op == "PlaceholderWithDefault":
                raise _Unknown
            return None, dtype
        dims = protos.shape_dims(node.attr["shape"].shape)
        return (None if dims is None else [None if d < 0 else d for d in dims]), dtype
    if op == "Const":
        tensor = node.attr["value"].tensor
        return protos.tensor_dims(tensor), _attr_type(node, "dtype")
    if op == "ImmutableConst":
        dims = protos.shape_dims(node.attr["shape"].shape)
        return (None if dims is None else [None if d < 0 else d for d in dims]), _attr_type(node, "dtype")
    if op in SAME_AS_INPUT:
        shape, dtype = spec(ins[0])
        return shape, _attr_type(node, "T") if "T" in node.attr else dtype
    if op == "Cast":
        return spec(ins[0])[0], _attr_type(node, "DstT")
    if op in BROADCASTING:
        (a, dtype), (b, _) = spec(ins[0]), spec(ins[1])
        return _broadcast(a, b), dtype
    if op in ("Conv2D", "DepthwiseConv2dNative", "MaxPool", "AvgPool"):
        return _window(node, op, ins, spec, const)
    if op == "MatMul":
        (a, dtype), (b, _) = spec(ins[0]), spec(ins[1])
        a, b = _rank_known(a), _rank_known(b)
        if len(a) != 2 or len(b) != 2:
            raise _Unknown
        rows = a[1] if node.attr["transpose_a"].b else a[0]
        cols = b[0] if node.attr["transpose_b"].b else b[1]
        return [rows, cols], dtype
    if op == "Reshape":
        shape, dtype = spec(ins[0])
        target, scalar = known_values(ins[1])
        if scalar:
            raise _Unknown
        if None in target:
            # Part of the target shape is only known at run time (Keras' Flatten reads the batch
            # size with Shape): those dims stay unknown, the rest are as given.
            return [None if d is None or d == -1 else d for d in target], dtype
        if -1 in target:
            known = shape is not None and all(d is not None for d in shape)
            rest = 1
            for d in target:
                if d != -1:
                    rest *= d
            if known and rest:
                total = 1
                for d in shape:
                    total *= d
                target = [total // rest if d == -1 else d for d in target]
            else:
                target = [None if d == -1 else d for d in target]
        return target, dtype
    if op == "ExpandDims":
        shape, dtype = spec(ins[0])
        shape = _rank_known(shape)
        axis = const(ins[1])[0]
        if axis < 0:
            axis += len(shape) + 1
        return shape[:axis] + [1] + shape[axis:], dtype
    if op == "Squeeze":
        shape, dtype = spec(ins[0])
        shape = _rank_known(shape)
        dims = [d % len(shape) for d in _ints(node, "squeeze_dims")] if "squeeze_dims" in node.attr else []
        if not dims:
            if any(d is None for d in shape):
                raise _Unknown
            return [d for d in shape if d != 1], dtype
        return [d for i, d in enumerate(shape) if i not in dims], dtype
    if op in REDUCTIONS:
        shape, dtype = spec(ins[0])
        shape = _rank_known(shape)
        axes = {a % len(shape) for a in const(ins[1])}
        keep = node.attr["keep_dims"].b if "keep_dims" in node.attr else False
        if keep:
            return [1 if i in axes else d for i, d in enumerate(shape)], dtype
        return [d for i, d in enumerate(shape) if i not in axes], dtype
    if op in ("ConcatV2", "Concat"):
        n = node.attr["N"].i
        axis_ref, parts = (ins[n], ins[:n]) if op == "ConcatV2" else (ins[0], ins[1 : n + 1])
        shapes = [spec(p) for p in parts]
        dtype = shapes[0][1]
        ranked = [_rank_known(s) for s, _ in shapes]
        rank = len(ranked[0])
        axis = const(axis_ref)[0] % rank
        out = []
        for i in range(rank):
            dims = [s[i] for s in ranked]
            if i == axis:
                out.append(None if any(d is None for d in dims) else sum(dims))
            else:
                out.append(next((d for d in dims if d is not None), None))
        return out, dtype
    if op in ("Pad", "PadV2", "MirrorPad"):
        shape, dtype = spec(ins[0])
        shape = _rank_known(shape)
        flat = const(ins[1])
        if len(flat) % 2:
            raise _Unknown
        pads = [flat[i : i + 2] for i in range(0, len(flat), 2)]
        return [None if d is None else d + p[0] + p[1] for d, p in zip(shape, pads)], dtype
    if op in RESIZE:
        shape, dtype = spec(ins[0])
        shape = _rank_known(shape)
        size = const(ins[1])
        # Every resize but nearest-neighbour outputs float; ResizeBilinear of uint8 too.
        out_type = dtype if op == "ResizeNearestNeighbor" else protos.DT_FLOAT
        return [shape[0], size[0], size[1], shape[3]], out_type
    if op in DECODE and op not in ("DecodeGif", "DecodeImage", "DecodeAndCropJpeg"):
        channels = node.attr["channels"].i if "channels" in node.attr else 0
        dtype = _attr_type(node, "dtype") if "dtype" in node.attr else protos.DT_UINT8
        return [None, None, channels or None], dtype
    if op == "Shape":
        shape, _ = spec(ins[0])
        return [None if shape is None else len(shape)], _attr_type(node, "out_type")
    if op == "StridedSlice":
        values, scalar = _partial_value(node, spec, known_values)
        return ([] if scalar else [len(values)]), _attr_type(node, "T")
    if op == "Pack":
        items = [spec(i) for i in ins]
        shape = _rank_known(items[0][0])
        axis = node.attr["axis"].i
        axis = axis + len(shape) + 1 if axis < 0 else axis
        return shape[:axis] + [len(items)] + shape[axis:], items[0][1]
    if op in ("ArgMax", "ArgMin"):
        shape, _ = spec(ins[0])
        shape = _rank_known(shape)
        axis = const(ins[1])[0] % len(shape)
        return [d for i, d in enumerate(shape) if i != axis], _attr_type(node, "output_type")
    if op == "Transpose":
        shape, dtype = spec(ins[0])
        shape = _rank_known(shape)
        perm = const(ins[1])
        return [shape[p] for p in perm], dtype
    if op == "Dequantize":
        shape, _ = spec(ins[0])
        return shape, _attr_type(node, "dtype") if "dtype" in node.attr else protos.DT_FLOAT
    raise _Unknown


def _broadcast(a, b):
    if a is None or b is None:
        raise _Unknown  # TensorFlow can still tell from the other side in some cases
    out = []
    for i in range(max(len(a), len(b))):
        x = a[len(a) - 1 - i] if i < len(a) else 1
        y = b[len(b) - 1 - i] if i < len(b) else 1
        if x == 1:
            out.append(y)
        elif y == 1:
            out.append(x)
        elif x is None:
            out.append(y)
        elif y is None or x == y:
            out.append(x)
        else:
            raise _Unknown  # incompatible: TensorFlow says what is wrong
    return out[::-1]


def _window(node, op, ins, spec, const):
    shape, dtype = spec(ins[0])
    shape = _rank_known(shape)
    if len(shape) != 4 or node.attr["data_format"].s not in (b"", b"NHWC"):
        raise _Unknown
    padding = node.attr["padding"].s
    if padding not in (b"SAME", b"VALID"):
        raise _Unknown
    strides = _ints(node, "strides")
    dilations = list(node.attr["dilations"].list.i) if "dilations" in node.attr else [1, 1, 1, 1]
    if op in ("MaxPool", "AvgPool"):
        ksize = _ints(node, "ksize")
        if ksize[0] != 1 or ksize[3] != 1:
            raise _Unknown
        kh, kw, channels = ksize[1], ksize[2], shape[3]
        dilations = [1, 1, 1, 1]
    else:
        fshape, _ = spec(ins[1])
        fshape = _rank_known(fshape)
        kh, kw = fshape[0], fshape[1]
        if op == "Conv2D":
            channels = fshape[3]
        else:
            channels = None if fshape[2] is None or fshape[3] is None else fshape[2] * fshape[3]
    out = [shape[0]]
    for i, k in ((1, kh), (2, kw)):
        size, stride = shape[i], strides[i]
        if size is None or k is None:
            out.append(None)
        elif padding == b"SAME":
            out.append(-(-size // stride))
        else:
            effective = (k - 1) * dilations[i] + 1
            out.append(-(-(size - effective + 1) // stride))
    out.append(channels)
    return out, dtype
