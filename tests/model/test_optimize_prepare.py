"""`model optimize` and prepare_for_app: leaner graphs, same numbers (1e-5), fit for the phone."""

from __future__ import annotations

import json

import pytest

from helpers.graphs import TAGS, assert_close, one_line_error, run_graph


def _ops(graph_def):
    return {n.op for n in graph_def.node}


def test_optimize_retrain_graph_cuts_at_mul(retrain):
    from mobilebuild.graphs.optimize import optimize_graph

    res = optimize_graph(retrain.graph_def)
    assert res.input_names == ["Mul"] and res.output_names == ["final_result"]
    ops = _ops(res.graph_def)
    assert not ops & {"DecodeJpeg", "Cast", "ExpandDims", "ResizeBilinear", "Sub", "FusedBatchNormV3"}
    mul = next(n for n in res.graph_def.node if n.name == "Mul")
    assert mul.op == "Placeholder"
    assert [d.size for d in mul.attr["shape"].shape.dim] == [-1, 64, 64, 3]
    assert any(n.startswith("cut at Mul") for n in res.notes)
    x = retrain.sample_input(batch=1)
    assert_close(run_graph(res.graph_def, {"Mul": x}, "final_result"), run_graph(retrain.graph_def, {"Mul": x}, "final_result"))
    # the cut graph takes batches now
    assert run_graph(res.graph_def, {"Mul": retrain.sample_input(batch=3)}, "final_result").shape == (3, 5)


def test_optimize_folds_keras3_batch_norm(keras3):
    from mobilebuild.graphs.optimize import optimize_graph

    assert {"Rsqrt", "AddV2", "Sub"} <= _ops(keras3.graph_def)
    res = optimize_graph(keras3.graph_def)
    ops = _ops(res.graph_def)
    assert not ops & {"Rsqrt", "AddV2", "Sub", "Mul", "NoOp"}, ops
    assert any("scale/shift chains" in n for n in res.notes)
    assert len(res.graph_def.node) < len(keras3.graph_def.node) // 2
    # The batch norms' scales are folded in float64 and rounded once: the outputs move by float32
    # rounding only, the classes not at all.
    x = keras3.sample_input(seed=1, batch=16)
    folded, original = run_graph(res.graph_def, {"image": x}, keras3.output_name), run_graph(keras3.graph_def, {"image": x}, keras3.output_name)
    assert_close(folded, original)
    assert (folded.argmax(-1) == original.argmax(-1)).all()


@pytest.mark.parametrize("which", ["compat_v1", "default_graph"])
def test_optimize_folds_fused_batch_norm(which, request):
    from mobilebuild.graphs.optimize import optimize_graph

    g = request.getfixturevalue(which)
    res = optimize_graph(g.graph_def, [g.input_name] if which == "compat_v1" else None)
    assert not _ops(res.graph_def) & {"FusedBatchNorm", "FusedBatchNormV3"}
    assert any("FusedBatchNorm" in n for n in res.notes)
    x = g.sample_input(seed=2) * (1.0 if which == "compat_v1" else 2.0)
    feed = res.input_names[0]
    assert_close(run_graph(res.graph_def, {feed: x}, g.output_name), run_graph(g.graph_def, {feed: x}, g.output_name))


def test_optimize_cli_json_tf_version_and_idempotence(keras3, cli, tmp_path):
    from mobilebuild.graphs import io, runtime_ops

    out = tmp_path / "opt.pb"
    r = cli("--json", "model", "optimize", keras3.path, "-o", out, "--tf-version", "1.1")
    assert r.code == 0, r.output
    data = json.loads(r.stdout)
    assert data["nodes_after"] < data["nodes_before"] and data["output_names"] == [keras3.output_name]
    graph = io.load_graph_def(out)
    assert runtime_ops.check_graph(graph, runtime_ops.load_opset("1.1")) == []
    x = keras3.sample_input()
    assert_close(run_graph(graph, {"image": x}, keras3.output_name), run_graph(keras3.graph_def, {"image": x}, keras3.output_name))
    mtime = out.stat().st_mtime_ns
    assert cli("model", "optimize", keras3.path, "-o", out, "--tf-version", "1.1").code == 0
    assert out.stat().st_mtime_ns == mtime


def test_optimize_unknown_node_suggests_names(retrain, cli, tmp_path):
    out = tmp_path / "o.pb"
    line = one_line_error(cli("model", "optimize", retrain.path, "-o", out, "--input-names", "Mull"))
    assert "'Mull' is not in the graph" in line
    r = cli("model", "optimize", retrain.path, "-o", out, "--output-names", "final_reslt")
    one_line_error(r)
    assert "did you mean final_result" in r.stderr
    assert not out.exists()


def test_optimize_refuses_output_equal_input_and_missing_dir(retrain, cli, tmp_path):
    before = retrain.path.read_bytes()
    line = one_line_error(cli("model", "optimize", retrain.path, "-o", retrain.path))
    assert "is the input file" in line
    assert retrain.path.read_bytes() == before
    line = one_line_error(cli("model", "optimize", retrain.path, "-o", tmp_path / "nope" / "o.pb"))
    assert "output directory does not exist" in line
    assert not (tmp_path / "nope").exists()


# ---------------------------------------------------------------------------------------------
# prepare_for_app


def test_prepare_retrain_graph(retrain, tmp_path):
    from mobilebuild.graphs import io, runtime_ops
    from mobilebuild.graphs.prepare import prepare_for_app

    before = (retrain.path.read_bytes(), retrain.path.stat().st_mtime_ns)
    out = tmp_path / "app.pb"
    p = prepare_for_app(retrain.path, out, tf_version="1.1")
    assert (p.input_name, p.output_name, p.input_size, p.mean, p.std, p.num_classes, p.channels) == (
        "Mul", "final_result", 64, 128.0, 128.0, 5, 3
    )
    assert p.path == out and not p.memory_mapped
    assert p.notes[0].startswith("cut the graph at 'Mul' (image decoding has no kernel on the phone)")
    assert any("AddV2 -> Add" in n for n in p.notes)
    graph = io.load_graph_def(out)
    assert runtime_ops.check_graph(graph, runtime_ops.load_opset("1.1")) == []
    assert "DecodeJpeg" not in _ops(graph)
    x = retrain.sample_input()
    assert_close(run_graph(graph, {"Mul": x}, "final_result"), run_graph(retrain.graph_def, {"Mul": x}, "final_result"))
    assert (retrain.path.read_bytes(), retrain.path.stat().st_mtime_ns) == before


def test_prepare_values_given_win_and_missing_ones_are_named(keras3, tmp_path):
    from mobilebuild.errors import ModelError
    from mobilebuild.graphs.prepare import prepare_for_app

    out = tmp_path / "k.pb"
    with pytest.raises(ModelError) as exc:
        prepare_for_app(keras3.path, out, tf_version="1.2")
    assert "normalisation" in exc.value.message and "--mean" in exc.value.hint
    assert not out.exists()
    p = prepare_for_app(keras3.path, out, tf_version="1.2", mean=127.5, std=127.5, input_size=24, optimize=True)
    assert (p.mean, p.std, p.input_size, p.input_name, p.num_classes) == (127.5, 127.5, 24, "image", 4)
    assert any(n.startswith("optimized: folded") for n in p.notes)
    with pytest.raises(ModelError) as exc:
        prepare_for_app(keras3.path, out, tf_version="1.2", mean=0, std=1, input_name="imag")
    assert "did you mean image" in exc.value.hint


def test_prepare_default_model_raw_input_means_no_normalisation(default_graph, tmp_path):
    from mobilebuild.graphs.prepare import prepare_for_app

    p = prepare_for_app(default_graph.path, tmp_path / "d.pb", tf_version="1.0", input_name="input")
    assert (p.input_name, p.mean, p.std, p.input_size) == ("input", 0.0, 1.0, 32)


@pytest.mark.parametrize("mode", ["weights_rounded", "weights", "eightbit"])
def test_prepare_quantized_fits_every_runtime(mode, default_graph, tmp_path):
    import numpy as np

    from mobilebuild.defaults import sample_images
    from mobilebuild.graphs import io, runtime_ops
    from mobilebuild.graphs.prepare import prepare_for_app
    from mobilebuild.graphs.preprocess import load_batch

    for tag in TAGS:
        out = tmp_path / f"{mode}_{tag}.pb"
        p = prepare_for_app(default_graph.path, out, tf_version=tag, optimize=True, quantize=mode)
        graph = io.load_graph_def(out)
        assert runtime_ops.check_graph(graph, runtime_ops.load_opset(tag)) == [], (mode, tag)
        assert any(n.startswith(f"quantized ({mode})") for n in p.notes)
        x = load_batch(sample_images(), 32, 128.0, 128.0)
        got = run_graph(graph, {"Mul": x}, "final_result")
        ref = run_graph(default_graph.graph_def, {"Mul": x}, "final_result")
        # quantized: not equal, but the same answers on real images
        assert np.mean(got.argmax(1) == ref.argmax(1)) >= 0.9, (mode, tag)


@pytest.mark.parametrize("tag", TAGS)
def test_prepare_memmapped_stays_memmapped(tag, compat_v1, tmp_path):
    from mobilebuild.graphs import io, memmap, runtime_ops
    from mobilebuild.graphs.prepare import prepare_for_app

    # a package written from a TF 2 graph (attrs and ops the old runtimes reject) comes out
    # still memmapped, its GraphDef downgraded, the same tensors memory-mapped
    g = compat_v1
    src = tmp_path / "src.mmap"
    memmap.write_package(g.graph_def, src, 64)
    out = tmp_path / "app.mmap"
    p = prepare_for_app(src, out, tf_version=tag, mean=0, std=1)
    assert p.memory_mapped and any("FusedBatchNormV3 -> FusedBatchNorm" in n for n in p.notes)
    loaded = io.load_model(out)
    assert loaded.format == io.MEMMAPPED
    assert sorted(loaded.regions) == sorted(io.load_model(src).regions)
    assert runtime_ops.check_graph(loaded.graph_def, runtime_ops.load_opset(tag)) == []
    plain = memmap.inline_regions(loaded.graph_def, out, loaded.regions)
    x = g.sample_input()
    assert_close(run_graph(plain, {"input": x}, g.output_name), run_graph(g.graph_def, {"input": x}, g.output_name))


def test_prepare_refuses_tflite_and_same_output(default_graph, tmp_path):
    from mobilebuild.errors import ModelError, UserError
    from mobilebuild.graphs.prepare import prepare_for_app

    with pytest.raises(UserError):
        prepare_for_app(default_graph.path, default_graph.path, tf_version="1.1")
    bad = tmp_path / "x.tflite"
    bad.write_bytes(b"\x1c\x00\x00\x00TFL3" + b"\x00" * 64)
    with pytest.raises(ModelError) as exc:
        prepare_for_app(bad, tmp_path / "o.pb", tf_version="1.1")
    assert "tflite" in exc.value.message


def _both_ways(graph_def, monkeypatch, *args):
    """optimize_graph's fast path and its TensorFlow path (MOBILEBUILD_GRAPH_BACKEND=tensorflow:
    TensorFlow's optimize_for_inference, its session for every constant but Rsqrt / Reciprocal,
    which both paths fold by the same float64 definition, its tensor codec)."""
    from mobilebuild.graphs import io
    from mobilebuild.graphs.optimize import optimize_graph

    fast = optimize_graph(graph_def, *args)
    with monkeypatch.context() as m:
        m.setenv("MOBILEBUILD_GRAPH_BACKEND", "tensorflow")
        slow = optimize_graph(graph_def, *args)
    return fast, slow, io.serialize(fast.graph_def) == io.serialize(slow.graph_def)


@pytest.mark.parametrize("which", ["default_graph", "retrain", "keras3", "compat_v1"])
def test_optimize_fast_path_equals_tensorflow_path(which, request, monkeypatch):
    from mobilebuild.graphs import for_inference, nodes as gn, optimize, protos

    g = request.getfixturevalue(which)
    args = ([g.input_name],) if which == "compat_v1" else ()
    fast, slow, same = _both_ways(g.graph_def, monkeypatch, *args)
    assert same and fast.notes == slow.notes and fast.nodes_after == slow.nodes_after
    # ... and the fast path was ours: optimize_for_inference reproduced, not handed to TensorFlow.
    graph_def = protos.ours(g.graph_def)
    cut, _ = optimize.cut_graph(graph_def, fast.input_names, fast.output_names)
    nodes = gn.node_map(cut)
    for_inference.optimize_for_inference(cut, fast.input_names, fast.output_names, [nodes[n].attr["dtype"].type for n in fast.input_names])


def test_mobilenet_size_graph_optimizes_and_fits_v1_1(graph_dir, monkeypatch):
    """keras.applications.MobileNet (weights=None): 27 Keras-3 batch norms folded, same numbers
    before the softmax, and the result fits the v1.1 runtime after downgrade."""
    from helpers.graphs import build_mobilenet_graph
    from mobilebuild.graphs import runtime_ops

    g = build_mobilenet_graph(graph_dir, size=128)
    softmax = next(n for n in g.graph_def.node if n.op == "Softmax")
    logits = softmax.input[0]
    res, _, same = _both_ways(g.graph_def, monkeypatch, ["input"], [logits])
    assert same  # the fast path gives the TensorFlow path's bytes
    assert not _ops(res.graph_def) & {"Rsqrt", "AddV2", "Sub", "Mul"}
    assert len(res.graph_def.node) < len(g.graph_def.node) // 2
    x = g.sample_input(seed=4, batch=4)
    folded, original = run_graph(res.graph_def, {"input": x}, logits), run_graph(g.graph_def, {"input": x}, logits)
    assert_close(folded, original)
    assert (folded.argmax(-1) == original.argmax(-1)).all()
    opset = runtime_ops.load_opset("1.1")
    down, changes = runtime_ops.downgrade_graph(res.graph_def, opset)
    assert runtime_ops.check_graph(down, opset) == []
    assert_close(run_graph(down, {"input": x}, logits), run_graph(g.graph_def, {"input": x}, logits))


def test_constant_folding_keeps_multi_output_ops_correct(tmp_path):
    """A constant Split read through :0 and :1 must not collapse into one Const."""
    import numpy as np
    import tensorflow as tf

    from mobilebuild.graphs.optimize import optimize_graph

    rng = np.random.default_rng(9)
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 6, 6, 3], name="input")
        h = tf.nn.conv2d(x, tf.constant(rng.normal(0, 1, (3, 3, 3, 4)).astype(np.float32)), 1, "SAME")
        scale, shift = tf.split(tf.constant(rng.normal(1, 0.3, (2, 4)).astype(np.float32)), 2, axis=0)
        h = h * tf.reshape(scale, [4]) + tf.reshape(shift, [4])
        tf.identity(tf.nn.relu(h), name="out")
    gd = graph.as_graph_def()
    res = optimize_graph(gd, ["input"], ["out"])
    assert "Split" not in _ops(res.graph_def)
    x = np.random.default_rng(1).normal(0, 1, (2, 6, 6, 3)).astype(np.float32)
    assert_close(run_graph(res.graph_def, {"input": x}, "out"), run_graph(gd, {"input": x}, "out"))


@pytest.mark.parametrize("mode", [None, "weights"])
def test_prepare_retrain_optimized_quantized_is_idempotent(mode, retrain, tmp_path):
    from mobilebuild.graphs import io, runtime_ops
    from mobilebuild.graphs.prepare import prepare_for_app

    out = tmp_path / "app.pb"
    p = prepare_for_app(retrain.path, out, tf_version="1.0", optimize=True, quantize=mode)
    assert p.notes[0].startswith("cut the graph at 'Mul'")
    graph = io.load_graph_def(out)
    assert runtime_ops.check_graph(graph, runtime_ops.load_opset("1.0")) == []
    assert "DecodeJpeg" not in _ops(graph)
    if mode is None:
        x = retrain.sample_input()
        assert_close(run_graph(graph, {"Mul": x}, "final_result"), run_graph(retrain.graph_def, {"Mul": x}, "final_result"))
    mtime = out.stat().st_mtime_ns
    again = prepare_for_app(retrain.path, out, tf_version="1.0", optimize=True, quantize=mode)
    assert again == p and out.stat().st_mtime_ns == mtime


def test_prepare_inception_sized_retrain_graph(tmp_path):
    """The shape retrain.py gives every Inception v3 model: Mul / 299 / 128 / 128 / final_result."""
    from helpers.graphs import build_retrain_graph
    from mobilebuild.graphs.prepare import prepare_for_app

    g = build_retrain_graph(tmp_path, size=299, classes=7, name="inception_like")
    p = prepare_for_app(g.path, tmp_path / "app.pb", tf_version="v1.4.0")
    assert (p.input_name, p.input_size, p.mean, p.std, p.output_name, p.num_classes) == ("Mul", 299, 128.0, 128.0, "final_result", 7)


def test_prepare_with_tf_src(tmp_path, retrain):
    """A tree with its op list is used; a tree without one falls back to the bundled data, saying so."""
    from mobilebuild.graphs.prepare import prepare_for_app

    tree = tmp_path / "tf"
    (tree / "tensorflow/contrib/makefile").mkdir(parents=True)
    p = prepare_for_app(retrain.path, tmp_path / "a.pb", tf_version="1.2", tf_src=tree)
    assert any("has no tensorflow/contrib/makefile/tf_op_files.txt" in n for n in p.notes)
    # the tree's own op set: here one that knows no ops at all, so nothing can load
    (tree / "tensorflow/contrib/makefile/tf_op_files.txt").write_text("")
    from mobilebuild.errors import ModelError

    with pytest.raises(ModelError) as exc:
        prepare_for_app(retrain.path, tmp_path / "b.pb", tf_version="1.2", tf_src=tree)
    assert "has no counterpart" in exc.value.message
    assert not (tmp_path / "b.pb").exists()
