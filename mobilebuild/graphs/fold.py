"""Values of constant sub-graphs, computed with numpy where that gives TensorFlow's exact bits.

Folding a constant sub-graph (``Rsqrt(var + eps) * gamma``, a ReadVariableOp Identity, a
reshaped bias) replaces it by one Const holding its value. The value must be the very bits
TensorFlow's CPU kernels compute, or a graph folded here would differ from one folded by
TensorFlow. numpy gives those bits for the ops below, under the conditions each checks:

- IEEE add, subtract, multiply, divide and square root are correctly rounded in numpy and in
  Eigen alike; so are negation, data movement (Reshape, Transpose, Concat, ...) and the casts
  between types that represent every value exactly.
- TensorFlow runs its kernels with denormals flushed to zero (inputs and results): an input or
  result below the smallest normal float is not computed here.
- NaN payloads and the sign of a zero picked by Maximum/Minimum are not portable: such inputs
  are not computed here either.
- Rsqrt, Reciprocal and Inv are the exception: their folded value is *defined* here rather
  than taken from TensorFlow's kernel. Eigen's vectorised kernels start from the processor's
  approximate reciprocal (square root) instruction (vrsqrtps / vrcpps) and refine it by one
  Newton step: the result is up to 2 ulp from the exact value and depends on the processor
  that runs the fold (the approximations differ between processor makers), so no formula can
  reproduce it and TensorFlow's own folded output is not portable either. Folding follows
  TensorFlow's fold_batch_norms instead, which folds FusedBatchNorm's ``rsqrt(var + eps)`` in
  float64: a float32 tensor's value is computed in float64 (``1 / sqrt(x)``, ``1 / x``) and
  rounded to float32 once; a float64 tensor is computed in float64. That is deterministic and
  the same on every host, on both backends (``MOBILEBUILD_GRAPH_BACKEND=tensorflow`` computes
  these ops' inputs with TensorFlow, then applies the same definition). The folded graph's
  scale differs from executing the unfolded graph by at most ~2 ulp, as any folding does
  (TensorFlow's folding of FusedBatchNorm included). The definition covers finite, normal
  inputs (positive ones for Rsqrt, non-zero ones for Reciprocal) with a normal result; zeros,
  negative, infinite, NaN or denormal values, and half types, are left to TensorFlow's kernel
  (on both backends alike), whose special-value behaviour (flushing included) is then the
  answer.

Whatever numpy cannot compute exactly is left to TensorFlow: the tensors asked for that need
such a node are run in one TensorFlow session on the part of the graph they come from
(imported then, with a spinner and a ``--verbose`` note); the rest never touch it.
``MOBILEBUILD_GRAPH_BACKEND=tensorflow`` runs every tensor through TensorFlow, the defined ops
excepted (tests compare both).

``evaluate`` is the one entry: callers decide which nodes are constant and what to do with the
values (``optimize`` and ``quantize`` fold different op sets).
"""

from __future__ import annotations

from mobilebuild import console
from mobilebuild.errors import ModelError
from mobilebuild.graphs import nodes as gn, protos


class NotExact(Exception):
    """numpy cannot give TensorFlow's exact bits for this node (or does not know its op)."""


# Ops that only pass their input on.
_PASS_THROUGH = {"Identity", "StopGradient", "Snapshot", "PreventGradient"}
_FLOATS = {"float32", "float64"}
_INTS = {"int32", "int64"}
# Ops whose folded value is defined as float64 arithmetic rounded once (module doc), on both
# backends, instead of the processor-dependent result of TensorFlow's vector kernel.
_DEFINED = {"Rsqrt", "Reciprocal", "Inv"}


def numpy_ops() -> frozenset[str]:
    """The ops ``evaluate`` can compute with numpy (under the conditions of the module doc).
    All are pure: same inputs, same output, no state."""
    return frozenset(_OPS) | _PASS_THROUGH


def split_ref(ref: str) -> tuple[str, int]:
    """'a' -> ('a', 0), 'a:2' -> ('a', 2)."""
    name, _, port = ref.lstrip("^").partition(":")
    return name, int(port) if port else 0


def evaluate(graph_def, tensors, strict: bool = False) -> dict | None:
    """{tensor: ndarray} for ``tensors`` ('node' or 'node:k', every one computable from Consts
    alone). numpy computes what it can exactly; the rest is run by TensorFlow in one session.
    None when TensorFlow was needed and cannot load this graph (unknown ops): the caller folds
    nothing then. A kernel failing in the session (a Reshape to an impossible shape, ...) is
    None too, or raises TensorFlow's error when ``strict``."""
    tensors = list(dict.fromkeys(tensors))
    if not tensors:
        return {}
    if protos.prefer_tensorflow():
        return _tensorflow_values(graph_def, tensors, strict)
    evaluator = _Numpy(gn.node_map(graph_def))
    values, left = {}, []
    for ref in tensors:
        try:
            values[ref] = evaluator.value(ref)
        except NotExact as exc:
            left.append((ref, str(exc)))
    if not left:
        return values
    reasons = sorted({reason for _, reason in left})
    console.detail(
        f"constant folding: {len(left)} of {len(tensors)} sub-graph(s) computed by TensorFlow "
        f"(numpy cannot give its exact bits: {'; '.join(reasons[:4])}{'; ...' if len(reasons) > 4 else ''})"
    )
    with console.spinner(f"folding {len(left)} constant sub-graph(s) with TensorFlow"):
        rest = _tensorflow_values(graph_def, [ref for ref, _ in left], strict)
    if rest is None:
        return None
    values.update(rest)
    return {ref: values[ref] for ref in tensors}


def _tensorflow_values(graph_def, tensors: list[str], strict: bool) -> dict | None:
    """The tensors as TensorFlow's session computes them, Rsqrt / Reciprocal / Inv excepted
    (their defined values replace them first); None when TensorFlow cannot."""
    sub = _ancestors(graph_def, [split_ref(t)[0] for t in tensors])
    if not _apply_definitions(sub, strict):
        return None
    return _session_values(sub, tensors, strict)


def _session_values(graph_def, tensors: list[str], strict: bool) -> dict | None:
    import tensorflow as tf

    try:
        graph = gn.import_graph(graph_def)
    except ModelError as exc:
        console.detail(f"constant folding skipped: {exc.message}")
        return None
    try:
        with tf.compat.v1.Session(graph=graph) as sess:
            values = sess.run([f"{name}:{port}" for name, port in map(split_ref, tensors)])
    except (ValueError, TypeError, KeyError, tf.errors.OpError) as exc:
        if strict:
            raise
        console.detail(f"constant folding skipped: {exc}".splitlines()[0])
        return None
    return {ref: _np().asarray(v) for ref, v in zip(tensors, values)}


def _apply_definitions(sub, strict: bool) -> bool:
    """Replace, in ``sub`` (a copy the caller owns), every Rsqrt / Reciprocal / Inv node whose
    input is in the definition's domain by a Const of its defined value. Their inputs are
    computed by TensorFlow, innermost first (an Rsqrt of an Rsqrt needs two rounds; batch
    norms need one). False when TensorFlow could not compute them."""
    left_to_tf: set[str] = set()
    while True:
        nodes = gn.node_map(sub)
        pending = {n.name for n in sub.node if n.op in _DEFINED and n.name not in left_to_tf}
        if not pending:
            return True
        ready = {}
        for name in sorted(pending):
            data = [i for i in nodes[name].input if not i.startswith("^")]
            if len(data) != 1 or split_ref(data[0])[0] not in nodes:
                left_to_tf.add(name)  # malformed: TensorFlow reports it its own way
            elif not _reaches(nodes, split_ref(data[0])[0], pending):
                ready[name] = data[0]
        if not ready:
            left_to_tf |= pending  # a cycle: not a constant sub-graph, TensorFlow decides
            continue
        refs = list(dict.fromkeys(ready.values()))
        inputs = _session_values(_ancestors(sub, [split_ref(r)[0] for r in refs]), refs, strict)
        if inputs is None:
            return False
        for node in sub.node:
            if node.name not in ready:
                continue
            try:
                _check_type(node, "T", [inputs[ready[node.name]]], _FLOATS)
                value = _defined_value(node.op, inputs[ready[node.name]])
            except NotExact:
                left_to_tf.add(node.name)
                continue
            name, device = node.name, node.device
            node.Clear()
            node.name, node.op, node.device = name, "Const", device
            node.attr["dtype"].type = protos.dtype_of_numpy(value.dtype)
            node.attr["value"].tensor.CopyFrom(protos.make_tensor(value))


def _reaches(nodes: dict, start: str, targets: set) -> bool:
    """Whether ``start`` or anything it is computed from is one of ``targets``."""
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name in seen or name not in nodes:
            continue
        if name in targets:
            return True
        seen.add(name)
        todo.extend(gn.base_name(i) for i in nodes[name].input)
    return False


def _ancestors(graph_def, names: list[str]):
    """The part of the graph ``names`` are computed from (data and control inputs), in graph
    order: TensorFlow loads a few constants, not the whole model, and ops it does not know
    elsewhere in the graph do not stop it."""
    nodes = gn.node_map(graph_def)
    keep, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in keep or name not in nodes:
            continue
        keep.add(name)
        todo.extend(gn.base_name(i) for i in nodes[name].input)
    out = protos.GraphDef()
    out.node.extend(n for n in graph_def.node if n.name in keep)
    out.library.CopyFrom(graph_def.library)
    out.versions.CopyFrom(graph_def.versions)
    return out


def _np():
    import numpy as np

    return np


class _Numpy:
    """Memoised numpy evaluation of node outputs."""

    def __init__(self, nodes: dict):
        self.nodes = nodes
        self.cache: dict[tuple[str, int], object] = {}
        self.failed: dict[str, str] = {}

    def value(self, ref: str):
        key = split_ref(ref)
        if key in self.cache:
            return self.cache[key]
        # Iterative post-order: constant chains can be long, recursion depth is not ours to spend.
        stack, visiting = [(key[0], False)], set()
        while stack:
            name, ready = stack.pop()
            if name in self.failed:
                raise NotExact(self.failed[name])
            if (name, 0) in self.cache:
                continue
            node = self.nodes.get(name)
            if node is None:
                raise NotExact(f"input '{name}' is not in the graph")
            data_inputs = [i for i in node.input if not i.startswith("^")]
            if not ready:
                if name in visiting:
                    raise NotExact(f"a cycle through '{name}'")
                if node.op != "Const" and node.op not in _PASS_THROUGH and node.op not in _OPS:
                    self.failed[name] = f"{node.op}: no numpy kernel"
                    raise NotExact(self.failed[name])
                visiting.add(name)
                stack.append((name, True))
                stack.extend((split_ref(i)[0], False) for i in data_inputs if split_ref(i) not in self.cache)
                continue
            visiting.discard(name)
            try:
                outputs = self._compute(node, [self._input(i) for i in data_inputs])
            except NotExact as exc:
                self.failed[name] = f"{node.op}: {exc}" if str(exc) else node.op
                raise NotExact(self.failed[name]) from None
            for port, out in enumerate(outputs):
                self.cache[(name, port)] = out
        if key not in self.cache:
            raise NotExact(f"output {key[1]} of {self.nodes[key[0]].op}")
        return self.cache[key]

    def _input(self, ref: str):
        key = split_ref(ref)
        if key not in self.cache:
            raise NotExact(f"output {key[1]} of '{key[0]}'")
        return self.cache[key]

    def _compute(self, node, inputs) -> list:
        np = _np()
        if node.op == "Const":
            if "value" not in node.attr:
                raise NotExact("no value")
            try:
                # Read-only: no kernel writes into its inputs, and a weight read through an
                # Identity is not copied once more.
                value = protos.to_ndarray(node.attr["value"].tensor, writable=False)
            except (protos.UnsupportedTensor, ValueError) as exc:
                raise NotExact(str(exc)) from None
            if "dtype" in node.attr and node.attr["dtype"].type != node.attr["value"].tensor.dtype:
                raise NotExact("dtype attr and value disagree")
            return [value]
        if node.op in _PASS_THROUGH:
            _check_type(node, "T", inputs[:1], allow_any=True)
            return [inputs[0]]
        fn = _OPS.get(node.op)
        if fn is None:
            raise NotExact("no numpy kernel")
        with np.errstate(all="ignore"):
            try:
                out = fn(node, inputs)
            except NotExact:
                raise
            except (ValueError, TypeError, IndexError, KeyError, OverflowError, MemoryError) as exc:
                # TensorFlow would report (or compute) this in its own way: let it.
                raise NotExact(f"{type(exc).__name__}") from None
        return [np.asarray(o) for o in out]


# ---------------------------------------------------------------------------------------------
# per-op kernels: each checks the attrs and input types TensorFlow would check, and that its
# inputs and result are in the range where numpy's bits are TensorFlow's.


def _type_name(node, key: str) -> str:
    if key not in node.attr:
        raise NotExact(f"no {key} attr")
    try:
        return protos.numpy_dtype(node.attr[key].type).name
    except ValueError:
        raise NotExact(f"{key} has no numpy type") from None


def _check_type(node, key: str, inputs, allowed=None, allow_any: bool = False) -> str:
    """The type of attr ``key`` (one of ``allowed`` unless ``allow_any``); every input must be
    of it. A node without the attr passes when ``allow_any`` (nothing to check against)."""
    if key not in node.attr and allow_any:
        return ""
    name = _type_name(node, key)
    if not allow_any and name not in (allowed or ()):
        raise NotExact(f"type {name}")
    if any(x.dtype.name != name for x in inputs):
        raise NotExact("input type differs from the attr")
    return name


def _check_floats(*arrays) -> None:
    """TensorFlow's kernels flush denormals to zero and NaN bits are not portable: refuse both."""
    np = _np()
    for a in arrays:
        if a.dtype.kind != "f" or a.size == 0:
            continue
        finite = np.abs(a[np.isfinite(a)])
        if np.isnan(a).any():
            raise NotExact("NaN")
        if ((finite > 0) & (finite < np.finfo(a.dtype).tiny)).any():
            raise NotExact("denormal values (TensorFlow flushes them to zero)")


def _binary(fn, allowed):
    def kernel(node, ins):
        if len(ins) != 2:
            raise NotExact("arity")
        dtype = _check_type(node, "T", ins, allowed)
        a, b = ins
        _check_floats(a, b)
        out = fn(a, b)
        if out.dtype.name != dtype:
            raise NotExact("result type")
        _check_floats(out)
        return [out]

    return kernel


def _unary(fn, allowed):
    def kernel(node, ins):
        if len(ins) != 1:
            raise NotExact("arity")
        _check_type(node, "T", ins, allowed)
        _check_floats(ins[0])
        out = fn(ins[0])
        if out.dtype != ins[0].dtype:
            raise NotExact("result type")
        _check_floats(out)
        return [out]

    return kernel


def _defined_kernel(node, ins):
    if len(ins) != 1:
        raise NotExact("arity")
    _check_type(node, "T", ins, _FLOATS)
    return [_defined_value(node.op, ins[0])]


def _defined_value(op: str, x):
    """Rsqrt / Reciprocal / Inv of ``x`` as the module doc defines them: float64 arithmetic,
    rounded once to ``x``'s type. NotExact outside the definition's domain (TensorFlow's kernel
    gives the value then)."""
    np = _np()
    _check_floats(x)
    if not np.isfinite(x).all():
        raise NotExact("infinite values")
    if op == "Rsqrt" and not (x > 0).all():
        raise NotExact("zero or negative values")
    if op != "Rsqrt" and (x == 0).any():
        raise NotExact("zero values")
    wide = x.astype(np.float64)
    out = np.asarray((1.0 / np.sqrt(wide) if op == "Rsqrt" else 1.0 / wide).astype(x.dtype))
    _check_floats(out)  # 1 / x of a huge x is denormal: TensorFlow flushes it
    return out


def _min_max(fn):
    def kernel(node, ins):
        np = _np()
        a, b = ins
        if a.dtype.kind == "f":
            both = np.broadcast_arrays(a, b)
            if ((both[0] == 0) & (both[1] == 0) & (np.signbit(both[0]) != np.signbit(both[1]))).any():
                raise NotExact("+0 against -0")
        return _binary(fn, _FLOATS | _INTS)(node, ins)

    return kernel


def _cast(node, ins):
    np = _np()
    (x,) = ins
    src, dst = _type_name(node, "SrcT"), _type_name(node, "DstT")
    if x.dtype.name != src:
        raise NotExact("input type differs from SrcT")
    if node.attr["Truncate"].b if "Truncate" in node.attr else False:
        raise NotExact("Truncate")
    exact = {"float32", "float64", "int32", "int64", "int8", "uint8", "int16", "uint16", "bool"}
    if src not in exact or dst not in exact:
        raise NotExact(f"{src} -> {dst}")
    _check_floats(x)
    if x.dtype.kind == "f" and np.dtype(dst).kind in "iu":
        # C's float -> int conversion truncates; outside the target's range it is undefined.
        if not np.isfinite(x).all():
            raise NotExact("inf to an integer")
        t = np.trunc(x)
        info = np.iinfo(dst)
        if x.size and (t.min() < info.min or t.max() > info.max):
            raise NotExact("out of the integer range")
    if x.dtype.kind in "iu" and np.dtype(dst).kind == "f" and x.size:
        # Exact only while every integer is representable (vectorised int64 conversions round
        # in two steps on some builds).
        if np.abs(x.astype(np.float64)).max() > 2 ** np.finfo(dst).nmant:
            raise NotExact("integer too large to convert exactly")
    out = x != 0 if dst == "bool" else x.astype(dst)
    _check_floats(out)
    return [out]


def _ints_of(x) -> list[int]:
    np = _np()
    if x.dtype.kind not in "iu":
        raise NotExact("index tensor is not integer")
    return [int(v) for v in np.asarray(x).reshape(-1)]


def _reshape(node, ins):
    np = _np()
    x, shape = ins
    if shape.ndim > 1:
        raise NotExact("shape of rank > 1")
    dims = _ints_of(shape)
    if dims.count(-1) > 1 or any(d < -1 for d in dims):
        raise NotExact("shape")
    if -1 in dims:
        rest = int(np.prod([d for d in dims if d != -1], dtype=np.int64))
        if rest == 0 or x.size % rest:
            raise NotExact("shape")
    elif int(np.prod(dims, dtype=np.int64)) != x.size:
        raise NotExact("shape")
    return [x.reshape(dims)]


def _expand_dims(node, ins):
    np = _np()
    x, dim = ins
    d = _ints_of(dim)
    if len(d) != 1 or not -x.ndim - 1 <= d[0] <= x.ndim:
        raise NotExact("dim")
    return [np.expand_dims(x, d[0])]


def _squeeze(node, ins):
    (x,) = ins
    dims = list(node.attr["squeeze_dims"].list.i) if "squeeze_dims" in node.attr else []
    if not dims:
        return [x.reshape([d for d in x.shape if d != 1])]
    axes = set()
    for d in dims:
        if not -x.ndim <= d < x.ndim:
            raise NotExact("squeeze_dims")
        axes.add(d % x.ndim)
    if any(x.shape[a] != 1 for a in axes):
        raise NotExact("squeezing a dimension that is not 1")
    return [x.reshape([s for i, s in enumerate(x.shape) if i not in axes])]


def _transpose(node, ins):
    np = _np()
    x, perm = ins
    p = _ints_of(perm)
    if sorted(p) != list(range(x.ndim)):
        raise NotExact("perm")
    return [np.array(np.transpose(x, p), order="C")]


def _pack(node, ins):
    np = _np()
    if not ins or ("N" in node.attr and node.attr["N"].i != len(ins)):
        raise NotExact("N")
    _check_type(node, "T", ins, allow_any=True)
    if any(x.shape != ins[0].shape for x in ins):
        raise NotExact("shapes differ")
    axis = node.attr["axis"].i if "axis" in node.attr else 0
    if not -ins[0].ndim - 1 <= axis <= ins[0].ndim:
        raise NotExact("axis")
    return [np.stack(ins, axis)]


def _concat(node, ins):
    np = _np()
    values, axis_t = ins[:-1], ins[-1]
    if not values or ("N" in node.attr and node.attr["N"].i != len(values)):
        raise NotExact("N")
    _check_type(node, "T", values, allow_any=True)
    (axis,) = _ints_of(axis_t) if axis_t.size == 1 else (None,)
    rank = values[0].ndim
    if axis is None or rank == 0 or not -rank <= axis < rank or any(v.ndim != rank for v in values):
        raise NotExact("axis")
    return [np.concatenate(values, axis % rank)]


def _fill(node, ins):
    np = _np()
    dims_t, value = ins
    if dims_t.ndim != 1 or value.ndim != 0:
        raise NotExact("dims")
    dims = _ints_of(dims_t)
    if any(d < 0 for d in dims):
        raise NotExact("negative dims")
    return [np.full(dims, value, dtype=value.dtype)]


def _shape(node, ins):
    np = _np()
    out = _type_name(node, "out_type") if "out_type" in node.attr else "int32"
    if out not in _INTS:
        raise NotExact("out_type")
    return [np.array(ins[0].shape, dtype=out)]


def _strided_slice(node, ins):
    x, begin_t, end_t, strides_t = ins
    mask = {k: node.attr[k].i if k in node.attr else 0 for k in
            ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask")}
    if mask["ellipsis_mask"] or mask["new_axis_mask"]:
        raise NotExact("ellipsis or new axis")
    begin, end, strides = _ints_of(begin_t), _ints_of(end_t), _ints_of(strides_t)
    if not len(begin) == len(end) == len(strides) or len(begin) > x.ndim or 0 in strides:
        raise NotExact("spec")
    key = []
    for i, (b, e, s) in enumerate(zip(begin, end, strides)):
        if mask["shrink_axis_mask"] >> i & 1:
            if s < 0 or not -x.shape[i] <= b < x.shape[i]:
                raise NotExact("shrink index")
            key.append(b)
        else:
            key.append(slice(None if mask["begin_mask"] >> i & 1 else b, None if mask["end_mask"] >> i & 1 else e, s))
    return [_np().array(x[tuple(key)], order="C")]


def _kernels() -> dict:
    import operator

    def sqrt(x):
        return _np().sqrt(x)

    def maximum(a, b):
        return _np().maximum(a, b)

    def minimum(a, b):
        return _np().minimum(a, b)

    return {
        "Add": _binary(operator.add, _FLOATS | _INTS),
        "AddV2": _binary(operator.add, _FLOATS | _INTS),
        "Sub": _binary(operator.sub, _FLOATS | _INTS),
        "Mul": _binary(operator.mul, _FLOATS | _INTS),
        "RealDiv": _binary(operator.truediv, _FLOATS),
        "Div": _binary(operator.truediv, _FLOATS),
        "Maximum": _min_max(maximum),
        "Minimum": _min_max(minimum),
        "Neg": _unary(operator.neg, _FLOATS | _INTS),
        "Square": _unary(lambda x: x * x, _FLOATS | _INTS),
        "Sqrt": _unary(sqrt, _FLOATS),
        "Rsqrt": _defined_kernel,
        "Reciprocal": _defined_kernel,
        "Inv": _defined_kernel,
        "Cast": _cast,
        "Reshape": _reshape,
        "ExpandDims": _expand_dims,
        "Squeeze": _squeeze,
        "Transpose": _transpose,
        "Pack": _pack,
        "ConcatV2": _concat,
        "Fill": _fill,
        "Shape": _shape,
        "StridedSlice": _strided_slice,
    }


_OPS = _kernels()
