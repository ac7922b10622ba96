"""Graphs checked against every bundled TF 1.x mobile op set, downgraded without changing
their numbers, and refused (one clear line, nothing written) when that is impossible."""

from __future__ import annotations

import json
import textwrap

import pytest


from helpers.graphs import TAGS, assert_close, one_line_error, run_graph


def _opset(tag):
    """The makefile build's op set of a tag (what the bundled v1.0 - v1.4 sets have always been)."""
    from mobilebuild.graphs import runtime_ops

    return runtime_ops.load_opset(tag, runtime="makefile")


def test_bundled_opsets_are_the_shared_facts():
    from mobilebuild.graphs import runtime_ops

    assert runtime_ops.bundled_tags() == TAGS
    v11 = _opset("1.1")
    assert v11.tag == "v1.1.0" and _opset("v1.1.0") is v11
    assert "AddV2" not in v11 and "FusedBatchNormV3" not in v11
    assert v11.ops["DecodeJpeg"].has_kernel is False
    assert set(v11.ops["Conv2D"].attrs) == {"T", "data_format", "padding", "strides", "use_cudnn_on_gpu"}
    # every op with a kernel in the opdefs is in the tag's .txt list (which also names internal
    # ops like _Arg whose definitions live outside the listed ops files)
    from mobilebuild.graphs.runtime_ops import OPS_DIR

    for tag in TAGS:
        listed = {l.strip() for l in (OPS_DIR / f"{tag}.txt").read_text().splitlines() if l.strip() and not l.startswith("#")}
        # kernels registered through file-local macros count too (listed beside the op set)
        listed |= set(json.loads((OPS_DIR / "makefile" / f"{tag}.macro_regs.json").read_text())["ops"])
        assert set(_opset(tag).kernel_ops()) <= listed, tag


def test_unknown_version_is_a_user_error():
    from mobilebuild.errors import UserError
    from mobilebuild.graphs import runtime_ops

    with pytest.raises(UserError) as exc:
        runtime_ops.load_opset("0.12")
    assert "v2.3.0" in exc.value.message and "--tf-src" in exc.value.hint


def test_opset_derived_from_a_tree(tmp_path):
    """--tf-src: the op set comes from the tree's tf_op_files.txt, its kernel registrations and
    REGISTER_OP calls (written here in the syntax of the real TF 1.x sources)."""
    from mobilebuild.graphs import runtime_ops

    (tmp_path / "tensorflow/contrib/makefile").mkdir(parents=True)
    (tmp_path / "tensorflow/core/kernels").mkdir(parents=True)
    (tmp_path / "tensorflow/core/ops").mkdir(parents=True)
    (tmp_path / "tensorflow/contrib/makefile/tf_op_files.txt").write_text(
        "tensorflow/core/kernels/conv_ops.cc\ntensorflow/core/kernels/cwise_op_add_1.cc\n"
        "tensorflow/core/ops/nn_ops.cc\ntensorflow/core/ops/math_ops.cc\n"
    )
    (tmp_path / "tensorflow/core/kernels/conv_ops.cc").write_text(
        'REGISTER_KERNEL_BUILDER(\n    Name("Conv2D").Device(DEVICE_CPU).TypeConstraint<float>("T"),\n    Conv2DOp<CPUDevice, float>);\n'
    )
    (tmp_path / "tensorflow/core/kernels/cwise_op_add_1.cc").write_text(
        'REGISTER5(BinaryOp, CPU, "Add", functor::add, float, Eigen::half, double, int32, int64);\n'
    )
    (tmp_path / "tensorflow/core/ops/nn_ops.cc").write_text(
        textwrap.dedent(
            '''
            REGISTER_OP("Conv2D")
                .Input("input: T")
                .Input("filter: T")
                .Output("output: T")
                .Attr("T: {half, float, double}")
                .Attr("strides: list(int)")
                .Attr("use_cudnn_on_gpu: bool = true")
                .Attr(GetPaddingAttrString())
                .Attr(GetConvnetDataFormatAttrString())
                .Doc(R"doc(
            Computes a 2-D convolution. REGISTER_OP("NotAnOp") in a doc string is ignored.
            )doc");
            // REGISTER_OP("Commented") is ignored too
            REGISTER_OP("DecodeJpeg")
                .Input("contents: string")
                .Attr("channels: int = 0")
                .Attr("dct_method: string = ''")
                .Output("image: uint8");
            '''
        )
    )
    (tmp_path / "tensorflow/core/ops/math_ops.cc").write_text(
        'REGISTER_OP("Add")\n    .Input("x: T").Input("y: T").Output("z: T")\n    .Attr(\n        "T: {half, float, double, uint8, int8, int16, int32, int64, complex64, "\n        "complex128, string}");\n'
    )
    opset = runtime_ops.load_opset("1.1", tf_src=tmp_path)
    assert set(opset.ops) >= {"Conv2D", "DecodeJpeg", "Add"}
    assert "Commented" not in opset.ops and "NotAnOp" not in opset.ops
    assert opset.ops["Conv2D"].has_kernel and opset.ops["Add"].has_kernel
    assert not opset.ops["DecodeJpeg"].has_kernel
    assert opset.ops["Conv2D"].attrs["use_cudnn_on_gpu"] == "true"
    assert opset.ops["Conv2D"].attrs["strides"] is None
    # attrs written by helper functions (GetPaddingAttrString() ...) count too
    assert opset.ops["Conv2D"].attrs["padding"] is None
    assert opset.ops["Conv2D"].attrs["data_format"] == "'NHWC'"
    assert set(opset.ops["Conv2D"].attrs) == set(runtime_ops.load_opset("1.1").ops["Conv2D"].attrs)
    assert opset.ops["DecodeJpeg"].attrs == {"channels": "0", "dct_method": "''"}
    assert opset.ops["Add"].attrs == {"T": None}


def test_tf_src_without_op_list_is_a_user_error(tmp_path, cli, default_graph):
    r = cli("model", "check", default_graph.path, "--tf-version", "1.1", "--tf-src", tmp_path)
    assert "tf_op_files.txt" in one_line_error(r)


@pytest.mark.parametrize("tag", TAGS)
def test_tf2_graphs_fail_every_old_opset(tag, keras3, compat_v1, retrain):
    from mobilebuild.graphs import runtime_ops

    opset = _opset(tag)
    keras_problems = runtime_ops.check_graph(keras3.graph_def, opset)
    assert any(p.kind == "unknown_op" and p.op == "AddV2" for p in keras_problems)
    assert any(p.kind == "unknown_attr" and p.op == "Conv2D" and "'dilations'" in p.detail for p in keras_problems)
    assert any(p.kind == "unknown_attr" and p.op == "MatMul" and "grad_a" in p.detail for p in keras_problems)
    v1_problems = runtime_ops.check_graph(compat_v1.graph_def, opset)
    assert {("Cast", "unknown_attr"), ("ResizeBilinear", "unknown_attr"), ("MaxPool", "unknown_attr"), ("FusedBatchNormV3", "unknown_op")} <= {
        (p.op, p.kind) for p in v1_problems
    }
    retrain_problems = runtime_ops.check_graph(retrain.graph_def, opset)
    assert ("DecodeJpeg", "no_kernel") in {(p.op, p.kind) for p in retrain_problems}


@pytest.mark.parametrize("tag", TAGS)
def test_default_model_passes_every_opset(tag, default_graph):
    from mobilebuild.graphs import runtime_ops

    assert runtime_ops.check_graph(default_graph.graph_def, _opset(tag)) == []


@pytest.mark.parametrize("tag", TAGS)
def test_downgrade_compat_v1_graph_same_outputs(tag, compat_v1):
    from mobilebuild.graphs import runtime_ops

    opset = _opset(tag)
    new, changes = runtime_ops.downgrade_graph(compat_v1.graph_def, opset)
    assert runtime_ops.check_graph(new, opset) == []
    assert any(c.startswith("FusedBatchNormV3 -> FusedBatchNorm") for c in changes)
    assert any("Truncate" in c for c in changes) and any("half_pixel_centers" in c for c in changes)
    x = compat_v1.sample_input()
    assert_close(run_graph(new, {"input": x}, "probs"), run_graph(compat_v1.graph_def, {"input": x}, "probs"))


@pytest.mark.parametrize("tag", TAGS[1:])
def test_downgrade_keras3_graph_same_outputs(tag, keras3):
    from mobilebuild.graphs import runtime_ops

    opset = _opset(tag)
    new, changes = runtime_ops.downgrade_graph(keras3.graph_def, opset)
    assert runtime_ops.check_graph(new, opset) == []
    assert "AddV2" not in {n.op for n in new.node}
    assert any(c.startswith("AddV2 -> Add") for c in changes)
    x = keras3.sample_input()
    assert_close(run_graph(new, {"image": x}, keras3.output_name), run_graph(keras3.graph_def, {"image": x}, keras3.output_name))


def test_keras3_depthwise_has_no_kernel_in_v1_0(keras3):
    """DepthwiseConv2dNative's kernel is not in v1.0.0's tf_op_files.txt: refused, named."""
    from mobilebuild.errors import ModelError
    from mobilebuild.graphs import runtime_ops

    with pytest.raises(ModelError) as exc:
        runtime_ops.downgrade_graph(keras3.graph_def, _opset("1.0"))
    assert "DepthwiseConv2dNative has no kernel" in exc.value.message
    assert "depthwise" in exc.value.message


def test_downgrade_v1_4_keeps_fused_batch_norm_v2(compat_v1):
    from mobilebuild.graphs import runtime_ops

    new, changes = runtime_ops.downgrade_graph(compat_v1.graph_def, _opset("1.4"))
    ops = {n.op for n in new.node}
    assert "FusedBatchNormV2" in ops and "FusedBatchNormV3" not in ops


def test_downgrade_drops_nothing_it_does_not_have_to(default_graph):
    from mobilebuild.graphs import runtime_ops

    new, changes = runtime_ops.downgrade_graph(default_graph.graph_def, _opset("1.1"))
    assert changes == []
    assert new == default_graph.graph_def


@pytest.mark.parametrize(
    "feature, words",
    [
        ("dilated_conv", ["'dilated'", "dilations=[1, 2, 2, 1]", "changes the result"]),
        ("half_pixel_resize", ["'resize_hp'", "half_pixel_centers=true", "changes the result"]),
        ("leaky_relu", ["'leaky'", "LeakyRelu has no counterpart"]),
    ],
)
def test_refused_cases_one_line_nothing_written(feature, words, small, cli, tmp_path):
    from mobilebuild.errors import ModelError
    from mobilebuild.graphs import runtime_ops

    g = small(feature)
    with pytest.raises(ModelError) as exc:
        runtime_ops.downgrade_graph(g.graph_def, _opset("1.1"))
    for w in words:
        assert w in exc.value.message
    out = tmp_path / "out.pb"
    line = one_line_error(cli("model", "downgrade", g.path, "-o", out, "--tf-version", "1.1"))
    assert words[0] in line
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_addv2_small_graph_downgrades(small, tmp_path, cli):
    from mobilebuild.graphs import io, runtime_ops

    g = small("addv2")
    out = tmp_path / "down.pb"
    r = cli("model", "downgrade", g.path, "-o", out, "--tf-version", "1.2")
    assert r.code == 0, r.output
    assert "AddV2 -> Add" in r.stderr
    new = io.load_graph_def(out)
    assert runtime_ops.check_graph(new, _opset("1.2")) == []
    x = g.sample_input()
    assert_close(run_graph(new, {"input": x}, "out"), run_graph(g.graph_def, {"input": x}, "out"))
    mtime = out.stat().st_mtime_ns
    assert cli("model", "downgrade", g.path, "-o", out, "--tf-version", "1.2").code == 0
    assert out.stat().st_mtime_ns == mtime  # idempotent: unchanged file not rewritten


def test_check_cli_exit_codes_and_json(cli, keras3, default_graph):
    r = cli("model", "check", keras3.path, "--tf-version", "1.1")
    line = one_line_error(r)
    assert "would not load in the TF v1.1.0 runtime" in line
    assert "unknown_op" in r.stdout and "AddV2" in r.stdout
    r = cli("--json", "model", "check", keras3.path, "--tf-version", "1.1")
    assert r.code == 1
    data = json.loads(r.stdout)
    assert data["loads"] is False and "AddV2" in data["missing_ops"]
    assert {p["kind"] for p in data["problems"]} >= {"unknown_op", "unknown_attr"}
    r = cli("model", "check", default_graph.path, "--tf-version", "1.0", "--json")
    assert r.code == 0 and json.loads(r.stdout)["loads"] is True
    r = cli("model", "check", "--tf-version", "1.3")  # no model: the built-in one
    assert r.code == 0 and "loads in the TF v1.3.0 runtime" in r.stderr


def test_check_reports_decodejpeg_without_kernel(cli, retrain):
    r = cli("--json", "model", "check", retrain.path, "--tf-version", "1.1")
    assert r.code == 1
    kinds = {(p["op"], p["kind"]) for p in json.loads(r.stdout)["problems"]}
    assert ("DecodeJpeg", "no_kernel") in kinds


def test_check_and_downgrade_memmapped_package(keras3, tmp_path, cli):
    from mobilebuild.graphs import io, memmap, runtime_ops

    pkg = tmp_path / "k.mmap"
    memmap.write_package(keras3.graph_def, pkg, 64)
    r = cli("--json", "model", "check", pkg, "--tf-version", "1.2")
    assert r.code == 1 and "AddV2" in json.loads(r.stdout)["missing_ops"]
    out = tmp_path / "k_v12.mmap"
    assert cli("model", "downgrade", pkg, "-o", out, "--tf-version", "1.2").code == 0
    loaded = io.load_model(out)
    assert loaded.format == io.MEMMAPPED
    assert runtime_ops.check_graph(loaded.graph_def, _opset("1.2")) == []
    assert "ImmutableConst" in {n.op for n in loaded.graph_def.node}
    plain = memmap.inline_regions(loaded.graph_def, out, loaded.regions)
    x = keras3.sample_input()
    assert_close(run_graph(plain, {"image": x}, keras3.output_name), run_graph(keras3.graph_def, {"image": x}, keras3.output_name))


def test_quantize_ops_of_tf2_downgrade_to_old_attrs(tmp_path):
    """TF 2's QuantizeV2 / Dequantize carry narrow_range, axis, ensure_minimum_range, round_mode,
    dtype: dropped at their old-behaviour values, same numbers."""
    import numpy as np
    import tensorflow as tf

    from mobilebuild.graphs import runtime_ops

    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="input")
        q = tf.raw_ops.QuantizeV2(input=x, min_range=-2.0, max_range=2.0, T=tf.quint8, mode="MIN_COMBINED", name="q")
        tf.raw_ops.Dequantize(input=q.output, min_range=q.output_min, max_range=q.output_max, mode="MIN_COMBINED", name="out")
    gd = graph.as_graph_def()
    for tag in ("1.0", "1.4"):
        new, changes = runtime_ops.downgrade_graph(gd, _opset(tag))
        assert runtime_ops.check_graph(new, _opset(tag)) == []
        assert any("QuantizeV2: dropped" in c and "narrow_range" in c and "ensure_minimum_range" in c for c in changes)
        x = np.linspace(-3, 3, 12, dtype=np.float32).reshape(3, 4)
        assert_close(run_graph(new, {"input": x}, "out"), run_graph(gd, {"input": x}, "out"))
    # a per-channel (axis=1) Dequantize has no old counterpart
    graph = tf.Graph()
    with graph.as_default():
        q = tf.constant(np.arange(8, dtype=np.uint8).reshape(2, 4), dtype=tf.quint8)
        tf.raw_ops.Dequantize(input=q, min_range=tf.constant([0.0] * 4), max_range=tf.constant([1.0] * 4), mode="SCALED", axis=1, name="out")
    from mobilebuild.errors import ModelError

    with pytest.raises(ModelError) as exc:
        runtime_ops.downgrade_graph(graph.as_graph_def(), _opset("1.1"))
    assert "axis=1" in exc.value.message
