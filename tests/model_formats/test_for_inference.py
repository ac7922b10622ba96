"""graphs.for_inference gives the very GraphDef TensorFlow's optimize_for_inference gives
(toco_compatible), byte for byte, on graphs that exercise every pass; where TensorFlow's passes
fail, it says NotUnderstood (and optimize runs TensorFlow's code, which fails its own way)."""

from __future__ import annotations

import numpy as np
import pytest

from mobilebuild.graphs import for_inference, io, protos


def _tensorflows(graph_def, inputs, outputs, dtypes):
    from tensorflow.python.tools import optimize_for_inference_lib

    return optimize_for_inference_lib.optimize_for_inference(
        protos.to_tf(graph_def), inputs, outputs, dtypes, toco_compatible=True
    )


def _same(graph_def, inputs, outputs):
    dtypes = [protos.DT_FLOAT] * len(inputs)
    ours = for_inference.optimize_for_inference(protos.copy(graph_def), inputs, outputs, dtypes)
    theirs = _tensorflows(protos.copy(graph_def), inputs, outputs, dtypes)
    assert io.serialize(ours) == theirs.SerializeToString(deterministic=True)
    return ours


def _every_pass_graph():
    """A TF1-style frozen graph with each thing the passes look for: batch norms after a bias
    add, after a depthwise conv (with and without scaling), decomposed into Add/Mul/Sub/Rsqrt
    (with and without gamma), CheckNumerics, StopGradient, Identities with control edges and
    colocation, a bool keras_learning_phase placeholder, and a branch the output does not need."""
    import tensorflow as tf

    rng = np.random.default_rng(11)

    def const(shape, lo=-1.0, hi=1.0, name=None):
        return tf.constant(rng.uniform(lo, hi, shape).astype(np.float32), name=name)

    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 3], name="input")
        h = tf.nn.conv2d(x, const((3, 3, 3, 8), name="c1/w"), 1, "SAME", name="c1/conv")
        h = tf.nn.bias_add(h, const(8, name="c1/b"), name="c1/bias")
        h = tf.raw_ops.FusedBatchNormV3(x=h, scale=const(8, 0.5, 1.5), offset=const(8), mean=const(8),
                                        variance=const(8, 0.2, 2.0), epsilon=1e-3, is_training=False, name="c1/bn")[0]
        h = tf.nn.relu(h)
        # CheckNumerics goes (the pass drops it and every edge from it: only a control edge survives that)
        with tf.control_dependencies([tf.raw_ops.CheckNumerics(tensor=h, message="check", name="check")]):
            h = tf.identity(h, name="checked")
        h = tf.nn.depthwise_conv2d(h, const((3, 3, 8, 2), name="d/w"), [1, 1, 1, 1], "SAME", name="d/conv")
        # BatchNormWithGlobalNormalization cannot be built by today's TensorFlow: a FusedBatchNorm
        # stands in and is rewritten below.
        h = tf.raw_ops.FusedBatchNorm(x=h, scale=const(16, 0.5, 1.5), offset=const(16), mean=const(16),
                                      variance=const(16, 0.2, 2.0), epsilon=1e-3, is_training=False, name="d/bn")[0]
        h = tf.stop_gradient(h, name="stop")
        h = tf.nn.conv2d(h, const((1, 1, 16, 4), name="c2/w"), 1, "SAME", name="c2/conv")
        h = tf.raw_ops.FusedBatchNorm(x=h, scale=const(4, 0.5, 1.5), offset=const(4), mean=const(4),
                                      variance=const(4, 0.2, 2.0), epsilon=1e-3, is_training=False, name="c2/bn")[0]
        for name, with_gamma in (("c3", True), ("c4", False)):
            h = tf.nn.conv2d(h, const((1, 1, 4, 4), name=f"{name}/w"), 1, "SAME", name=f"{name}/conv")
            var_eps = tf.raw_ops.Add(x=const(4, 0.2, 2.0, name=f"{name}/bn/var"), y=tf.constant(np.float32(1e-3), name=f"{name}/bn/eps"), name=f"{name}/bn/add")
            scale = tf.raw_ops.Rsqrt(x=var_eps, name=f"{name}/bn/Rsqrt")
            if with_gamma:
                scale = tf.raw_ops.Mul(x=scale, y=const(4, 0.5, 1.5, name=f"{name}/bn/gamma"), name=f"{name}/bn/mul")
            shifted = tf.raw_ops.Sub(x=const(4, name=f"{name}/bn/beta"), y=tf.raw_ops.Mul(x=const(4, name=f"{name}/bn/mean"), y=scale, name=f"{name}/bn/mul_2"), name=f"{name}/bn/sub")
            h = tf.raw_ops.Add(x=tf.raw_ops.Mul(x=h, y=scale, name=f"{name}/bn/mul_1"), y=shifted, name=f"{name}/bn/add_1")
        phase = tf.compat.v1.placeholder_with_default(False, [], name="keras_learning_phase")
        h = tf.raw_ops.SelectV2(condition=phase, t=h * 2.0, e=h, name="select")
        side = tf.nn.relu(x, name="side")
        with tf.control_dependencies([side]):
            gated = tf.identity(h, name="gated")  # has a control input: stays
        kept = tf.identity(gated, name="colocated")  # another node is colocated with it: stays
        h = tf.nn.relu(kept, name="after")
        tf.identity(h, name="dangling")
        tf.nn.softmax(tf.reduce_mean(tf.identity(h, name="spliced"), [1, 2]), name="out")
        tf.nn.relu(x, name="unused")
    gd = protos.ours(g.as_graph_def())
    for node in gd.node:
        if node.name == "after":
            node.attr["_class"].list.s.append(b"loc:@colocated")
        if node.name in ("d/bn", "c2/bn"):  # the old op: inputs t, m, v, beta, gamma
            x, gamma, beta, mean, var = node.input
            node.op = "BatchNormWithGlobalNormalization"
            del node.input[:]
            node.input.extend([x, mean, var, beta, gamma])
            epsilon = node.attr["epsilon"].f
            for key in list(node.attr):
                if key != "T":
                    del node.attr[key]
            node.attr["variance_epsilon"].f = epsilon
            node.attr["scale_after_normalization"].b = node.name == "d/bn"
    return gd


def test_every_pass_like_tensorflow():
    gd = _every_pass_graph()
    ours = _same(gd, ["input"], ["out"])
    ops = {n.op for n in ours.node}
    assert not ops & {"FusedBatchNormV3", "BatchNormWithGlobalNormalization", "CheckNumerics", "StopGradient", "Rsqrt"}
    names = {n.name: n for n in ours.node}
    assert names["keras_learning_phase"].op == "Const" and not {"unused", "dangling", "spliced", "checked"} & set(names)
    assert names["colocated"].op == "Identity" and names["gated"].op == "Identity"
    assert names["d/bn"].op == names["c3/bn/add_1"].op == "BiasAdd"


def test_default_mixed_and_keras_graphs_like_tensorflow(graphs):
    from mobilebuild import defaults

    _same(io.load_graph_def(defaults.default_model()), ["input"], ["final_result"])
    for g in graphs.values():
        _same(g.graph_def, [g.input], g.outputs)


@pytest.mark.parametrize("damage", ["missing input", "duplicate", "tensor as input", "missing colocation"])
def test_graphs_tensorflows_passes_refuse_are_not_understood(damage):
    gd = _every_pass_graph()
    inputs = ["input"]
    if damage == "missing input":
        gd.node[-1].input.append("nowhere")
    elif damage == "duplicate":
        gd.node.add().CopyFrom(gd.node[3])
    elif damage == "tensor as input":
        inputs = ["input:0"]
    else:
        next(n for n in gd.node if n.name == "after").attr["_class"].list.s.append(b"loc:@gone")
    with pytest.raises(for_inference.NotUnderstood):
        for_inference.optimize_for_inference(protos.copy(gd), inputs, ["out"], [protos.DT_FLOAT] * len(inputs))
    with pytest.raises(Exception):
        _tensorflows(gd, inputs, ["out"], [protos.DT_FLOAT] * len(inputs))
