"""Constant folding with numpy gives TensorFlow's exact bits, or leaves the node to TensorFlow.

Each op's numpy kernel is compared bit for bit with TensorFlow's kernel (a session run of the
same GraphDef, MOBILEBUILD_GRAPH_BACKEND=tensorflow) on many random inputs, vector lengths
around the register widths (1..33 elements: scalar tails and vector bodies) and broadcasts.
Rsqrt / Reciprocal / Inv are defined by the folder (float64, rounded once) on both backends;
their values are checked against that definition and against TensorFlow's kernel (2 ulp).
"""

from __future__ import annotations

import numpy as np
import pytest

from mobilebuild.graphs import fold, protos

SIZES = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 100]


def _graph(build):
    """GraphDef of ``build()`` (called inside a fresh tf.Graph; returns the tensors to fetch)."""
    import tensorflow as tf

    g = tf.Graph()
    with g.as_default():
        outs = build(tf)
    return protos.ours(g.as_graph_def()), [t.name for t in outs]


def _both(graph_def, refs, monkeypatch):
    """(numpy's values or the NotExact it raised per tensor, TensorFlow's values)."""
    ev = fold._Numpy({n.name: n for n in graph_def.node})
    ours = {}
    for r in refs:
        try:
            ours[r] = ev.value(r)
        except fold.NotExact as exc:
            ours[r] = exc
    with monkeypatch.context() as m:
        m.setenv("MOBILEBUILD_GRAPH_BACKEND", "tensorflow")
        theirs = fold.evaluate(graph_def, refs)
    return ours, theirs


def _same_bits(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _floats(rng, n, dtype=np.float32, positive=False):
    x = rng.uniform(0.05 if positive else -1, 1, n) * 10.0 ** rng.uniform(-6, 6, n)
    return np.asarray(np.abs(x) if positive else x, dtype)


def _random_cases(seed: int):
    """(op name, builder) pairs over random sizes, types and broadcasts."""
    rng = np.random.default_rng(seed)
    cases = []
    for op in ("Add", "AddV2", "Sub", "Mul", "RealDiv", "Maximum", "Minimum"):
        for n in SIZES:
            for dtype in (np.float32, np.float64):
                a = _floats(rng, n, dtype)
                b = _floats(rng, 1 if rng.uniform() < 0.3 else n, dtype)
                cases.append((op, lambda tf, a=a, b=b, op=op: [getattr(tf.raw_ops, op)(x=tf.constant(a), y=tf.constant(b))]))
            if op not in ("RealDiv",):
                a = rng.integers(-2**31, 2**31 - 1, n, dtype=np.int64).astype(np.int32)
                b = rng.integers(-2**31, 2**31 - 1, n, dtype=np.int64).astype(np.int32)
                cases.append((op + "/int32", lambda tf, a=a, b=b, op=op: [getattr(tf.raw_ops, op)(x=tf.constant(a), y=tf.constant(b))]))
    for n in SIZES:
        x = _floats(rng, n, positive=True)
        cases.append(("Sqrt", lambda tf, x=x: [tf.sqrt(tf.constant(x))]))
        cases.append(("Neg", lambda tf, x=x: [tf.negative(tf.constant(x))]))
        cases.append(("Square", lambda tf, x=x: [tf.square(tf.constant(x))]))
        cases.append(("Rsqrt", lambda tf, x=x: [tf.math.rsqrt(tf.constant(x))]))
        cases.append(("Reciprocal", lambda tf, x=x: [tf.math.reciprocal(tf.constant(x))]))
        # Keras 3 batch norm: gamma * rsqrt(var + eps), beta - mean * that.
        var, gamma, mean, beta = (_floats(rng, n, positive=True) for _ in range(4))

        def bn(tf, var=var, gamma=gamma, mean=mean, beta=beta):
            scale = tf.math.rsqrt(tf.constant(var) + tf.constant(np.float32(1e-3))) * tf.constant(gamma)
            return [scale, tf.constant(beta) - tf.constant(mean) * scale]

        cases.append(("batch norm", bn))
        y = (rng.uniform(-3e9, 3e9, n)).astype(np.float32)
        cases.append(("Cast float->int32", lambda tf, y=y: [tf.cast(tf.constant(y), tf.int32)]))
        cases.append(("Cast float->int64", lambda tf, y=y: [tf.cast(tf.constant(y), tf.int64)]))
        cases.append(("Cast float->double", lambda tf, x=x: [tf.cast(tf.constant(x), tf.float64)]))
        cases.append(("Cast double->float", lambda tf, x=x: [tf.cast(tf.constant(x.astype(np.float64) / 3), tf.float32)]))
        i = rng.integers(-2**20, 2**20, n).astype(np.int32)
        cases.append(("Cast int->float", lambda tf, i=i: [tf.cast(tf.constant(i), tf.float32)]))
        cases.append(("Cast int->bool", lambda tf, i=i: [tf.cast(tf.constant(i % 2), tf.bool)]))
    for _ in range(12):
        shape = [int(d) for d in rng.integers(1, 5, int(rng.integers(1, 5)))]
        x = _floats(rng, int(np.prod(shape))).reshape(shape)
        perm = [int(p) for p in rng.permutation(len(shape))]
        cases.append(("Transpose", lambda tf, x=x, perm=perm: [tf.transpose(tf.constant(x), perm)]))
        cases.append(("Reshape", lambda tf, x=x: [tf.reshape(tf.constant(x), [-1]), tf.reshape(tf.constant(x), [1, -1, 1])]))
        axis = int(rng.integers(-len(shape) - 1, len(shape) + 1))
        cases.append(("ExpandDims", lambda tf, x=x, axis=axis: [tf.expand_dims(tf.constant(x), axis)]))
        cases.append(("Squeeze", lambda tf, x=x: [tf.squeeze(tf.constant(x[None, :, None]))]))
        cases.append(("Squeeze axis", lambda tf, x=x: [tf.squeeze(tf.constant(x[None]), [0])]))
        cases.append(("Pack", lambda tf, x=x, axis=axis: [tf.stack([tf.constant(x), tf.constant(-x)], axis=axis)]))
        cat_axis = int(rng.integers(-len(shape), len(shape)))
        cases.append(("ConcatV2", lambda tf, x=x, a=cat_axis: [tf.concat([tf.constant(x), tf.constant(x * 2)], a)]))
        cases.append(("Fill", lambda tf, shape=shape: [tf.fill(tf.constant(shape), tf.constant(np.float32(0.25)))]))
        cases.append(("Shape", lambda tf, x=x: [tf.shape(tf.constant(x)), tf.shape(tf.constant(x), out_type=tf.int64)]))
        b, e = int(rng.integers(-shape[0], shape[0])), int(rng.integers(-shape[0], shape[0] + 1))
        cases.append(("StridedSlice", lambda tf, x=x, b=b, e=e: [
            tf.constant(x)[b:e], tf.constant(x)[::-1], tf.constant(x)[b], tf.constant(x)[:, ::2] if x.ndim > 1 else tf.constant(x)[1:],
        ]))
        cases.append(("Identity", lambda tf, x=x: [tf.identity(tf.constant(x))]))
    return cases


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_numpy_kernels_give_tensorflows_bits(seed, monkeypatch):
    cases = _random_cases(seed)
    op_of: dict[str, str] = {}

    def build_all(tf):
        outs = []
        for op, build in cases:
            for t in build(tf):
                op_of[t.name] = op
                outs.append(t)
        return outs

    graph_def, refs = _graph(build_all)  # one graph, one TensorFlow session for every case
    ours, theirs = _both(graph_def, refs, monkeypatch)
    handled: dict[str, int] = {}
    refused: dict[str, int] = {}
    for r in refs:
        op = op_of[r]
        if isinstance(ours[r], fold.NotExact):
            refused[op] = refused.get(op, 0) + 1
            continue
        handled[op] = handled.get(op, 0) + 1
        assert _same_bits(ours[r], theirs[r]), (op, r, ours[r], theirs[r])
    # numpy computes these itself (never refuses on ordinary inputs; Rsqrt / Reciprocal of any
    # length, by their definition on both backends) ...
    for op in ("Add", "AddV2", "Sub", "Mul", "RealDiv", "Maximum", "Minimum", "Add/int32", "Mul/int32", "Sqrt",
               "Neg", "Square", "Rsqrt", "Reciprocal", "batch norm", "Cast float->double", "Cast double->float",
               "Cast int->float", "Cast int->bool", "Transpose", "Reshape", "ExpandDims", "Squeeze", "Squeeze axis",
               "Pack", "ConcatV2", "Fill", "Shape", "StridedSlice", "Identity"):
        assert op not in refused and handled.get(op), (op, refused.get(op))
    # ... float -> int only in range.
    assert handled["Cast float->int32"] and refused["Cast float->int32"]


def _tensorflows_kernel(graph_def, refs):
    """The tensors as TensorFlow's own kernels compute them (a plain session, no definitions)."""
    import tensorflow as tf

    g = tf.Graph()
    with g.as_default():
        tf.compat.v1.import_graph_def(protos.to_tf(graph_def), name="")
    with tf.compat.v1.Session(graph=g) as sess:
        return dict(zip(refs, sess.run(refs)))


def _ulps(a, b) -> int:
    """Largest distance in representable steps between same-signed finite floats."""
    ints = {np.dtype(np.float32): np.int32, np.dtype(np.float64): np.int64}[a.dtype]
    return int(np.abs(a.view(ints).astype(np.int64) - b.view(ints).astype(np.int64)).max())


def test_rsqrt_and_reciprocal_are_float64_rounded_once_on_both_backends(monkeypatch):
    """Any length: the value is float64 arithmetic rounded once (float64 tensors: float64), the
    same on both backends, and within 2 ulp of TensorFlow's processor-dependent vector kernel.
    An Rsqrt whose input only TensorFlow computes (Exp) and an Rsqrt of an Rsqrt get the same
    definition."""
    rng = np.random.default_rng(7)
    x32 = _floats(rng, 1000, positive=True)
    x64 = _floats(rng, 257, np.float64, positive=True)
    signed = _floats(rng, 64)
    small = np.float32(rng.uniform(-2, 2, 40))

    def build(tf):
        return [
            tf.math.rsqrt(tf.constant(x32), name="r32"), tf.math.reciprocal(tf.constant(x32), name="c32"),
            tf.raw_ops.Inv(x=tf.constant(signed), name="inv"),
            tf.math.rsqrt(tf.constant(x64), name="r64"), tf.math.reciprocal(tf.constant(x64), name="c64"),
            tf.math.rsqrt(tf.math.exp(tf.constant(small)), name="rexp"),
            tf.math.rsqrt(tf.math.rsqrt(tf.constant(x32)) * 3.0, name="rr"),
        ]

    graph_def, refs = _graph(build)
    wide = {"r32": 1 / np.sqrt(x32.astype(np.float64)), "c32": 1 / x32.astype(np.float64), "inv": 1 / signed.astype(np.float64)}
    ours, theirs = _both(graph_def, refs, monkeypatch)
    kernel = _tensorflows_kernel(graph_def, refs)
    for name, expected in wide.items():
        ref = f"{name}:0"
        assert _same_bits(ours[ref], expected.astype(np.float32)), name
        assert _same_bits(theirs[ref], ours[ref]), name
        assert _ulps(ours[ref], kernel[ref]) <= 2, name
    for name, expected in (("r64", 1 / np.sqrt(x64)), ("c64", 1 / x64)):
        assert _same_bits(ours[f"{name}:0"], expected) and _same_bits(theirs[f"{name}:0"], expected), name
    # Exp has no numpy kernel: TensorFlow computes it, the definition applies to its result.
    assert isinstance(ours["rexp:0"], fold.NotExact)
    exp = _tensorflows_kernel(graph_def, ["Exp:0"])["Exp:0"]
    mixed = fold.evaluate(graph_def, ["rexp:0"])["rexp:0"]
    assert _same_bits(mixed, (1 / np.sqrt(exp.astype(np.float64))).astype(np.float32))
    assert _same_bits(theirs["rexp:0"], mixed)
    inner = (1 / np.sqrt(x32.astype(np.float64))).astype(np.float32) * np.float32(3)
    assert _same_bits(ours["rr:0"], (1 / np.sqrt(inner.astype(np.float64))).astype(np.float32))
    assert _same_bits(theirs["rr:0"], ours["rr:0"])


def test_rsqrt_and_reciprocal_outside_the_definition_are_tensorflows(monkeypatch):
    """Zero, negative, infinite, denormal inputs and denormal results: TensorFlow's kernel
    gives the value (its special cases and flushing), on both backends."""
    cases = {
        "zero": np.float32([4, 0, 9, 16, 1, 2, 3, 5]),
        "negative": np.float32([4, -1, 9, 16, 1, 2, 3, 5]),
        "inf": np.float32([4, np.inf, 9, 16, 1, 2, 3, 5]),
        "denormal": np.float32([4, 1e-39, 9, 16, 1, 2, 3, 5]),
    }

    def build(tf):
        outs = [tf.math.rsqrt(tf.constant(v), name=f"r_{k}") for k, v in cases.items()]
        outs.append(tf.math.reciprocal(tf.constant(np.float32([4, 0, 9, 16, 1, 2, 3, 5])), name="c_zero"))
        outs.append(tf.math.reciprocal(tf.constant(np.float32([3e38] * 9)), name="c_huge"))
        return outs

    graph_def, refs = _graph(build)
    ours, theirs = _both(graph_def, refs, monkeypatch)
    kernel = _tensorflows_kernel(graph_def, refs)
    mixed = fold.evaluate(graph_def, refs)
    for ref in refs:
        assert isinstance(ours[ref], fold.NotExact), ref
        assert _same_bits(mixed[ref], kernel[ref]) and _same_bits(theirs[ref], kernel[ref]), ref
    assert kernel["c_huge:0"].tolist() == [0.0] * 9  # TensorFlow flushes the denormal result


def test_denormals_and_nan_are_left_to_tensorflow(monkeypatch):
    """TensorFlow flushes denormals to zero: numpy would keep them, so it does not compute them."""
    tiny = np.full(10, 1e-39, np.float32)
    small = np.full(10, 1e-20, np.float32)
    graph_def, refs = _graph(lambda tf: [
        tf.multiply(tf.constant(tiny), 2.0, name="in"), tf.multiply(tf.constant(small), tf.constant(small), name="out"),
        tf.maximum(tf.constant(np.array([np.nan, 1], np.float32)), 0.0, name="nan"), tf.reshape(tf.constant(tiny), [2, 5], name="moved"),
    ])
    ev = fold._Numpy({n.name: n for n in graph_def.node})
    for name in ("in", "out", "nan"):
        with pytest.raises(fold.NotExact):
            ev.value(name)
    assert ev.value("moved").tobytes() == tiny.tobytes()  # moving data flushes nothing
    values = fold.evaluate(graph_def, refs)
    _, theirs = _both(graph_def, refs, monkeypatch)
    assert values["in:0"].tolist() == [0.0] * 10
    assert all(_same_bits(values[r], theirs[r]) for r in refs)


def test_ops_without_a_numpy_kernel_go_to_tensorflow_and_none_when_it_cannot_run():
    graph_def, refs = _graph(lambda tf: [tf.math.exp(tf.constant(np.float32([1, 2])), name="e")])
    ev = fold._Numpy({n.name: n for n in graph_def.node})
    with pytest.raises(fold.NotExact, match="Exp"):
        ev.value("e")
    assert np.allclose(fold.evaluate(graph_def, ["e"])["e"], np.exp([1, 2]))
    # An op this TensorFlow does not know: nothing to fold with, the caller folds nothing.
    vendor = graph_def.node.add(name="v", op="MyVendorOp", input=["e"])
    vendor.attr["T"].type = protos.DT_FLOAT
    assert fold.evaluate(graph_def, ["v"]) is None
    # Elsewhere in the graph it does not matter: TensorFlow loads only what "e" is computed from.
    assert np.allclose(fold.evaluate(graph_def, ["e"])["e"], np.exp([1, 2]))


def test_numpy_path_imports_no_tensorflow():
    """evaluate() on Keras-style ReadVariableOp Identities and reshaped biases: numpy only."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from mobilebuild.graphs import fold, protos\n"
        "g = protos.GraphDef()\n"
        "c = g.node.add(name='b', op='Const'); c.attr['dtype'].type = protos.DT_FLOAT\n"
        "c.attr['value'].tensor.CopyFrom(protos.make_tensor(np.arange(8, dtype=np.float32)))\n"
        "s = g.node.add(name='s', op='Const'); s.attr['dtype'].type = protos.DT_INT32\n"
        "s.attr['value'].tensor.CopyFrom(protos.make_tensor(np.array([1, 8], np.int32)))\n"
        "i = g.node.add(name='r', op='Identity', input=['b']); i.attr['T'].type = protos.DT_FLOAT\n"
        "r = g.node.add(name='x', op='Reshape', input=['r', 's']); r.attr['T'].type = protos.DT_FLOAT\n"
        "r.attr['Tshape'].type = protos.DT_INT32\n"
        "v = fold.evaluate(g, ['x'])\n"
        "assert v['x'].shape == (1, 8), v\n"
        "print('tensorflow' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr


def test_numpy_ops_are_pure_in_tensorflows_registry():
    """optimize decides what is constant without TensorFlow for these ops: they must be
    registered and stateless there, as its op registry would say."""
    from tensorflow.python.framework import op_def_registry

    for op in fold.numpy_ops():
        op_def = op_def_registry.get(op)
        assert op_def is not None and not op_def.is_stateful, op
