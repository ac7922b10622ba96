"""`mobilebuild ios --memmap`: the app's copy goes optimize -> quantize -> memmap in one command,
the example is told `model_uses_memory_mapping = true`, and mean/std come from the user's graph
before the app's copy is cut at the normalised input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers.tftrees import ios_camera_dir, one_line_error, tree_digest, tree_mtimes

CLASSES = 400  # final weights of 8 x 400 floats: 12.8 kB, above the memmap default (10 kB)


@pytest.fixture(scope="module")
def wide_retrain(tmp_path_factory):
    from helpers.graphs import build_retrain_graph

    d = tmp_path_factory.mktemp("wide")
    g = build_retrain_graph(d, size=48, classes=CLASSES, name="wide_graph")
    labels = d / "wide_labels.txt"
    labels.write_text("".join(f"class{i}\n" for i in range(CLASSES)))
    return g, labels


def test_memmap_optimizes_quantizes_and_maps_the_apps_copy(cli, tf_tree, wide_retrain):
    from helpers.graphs import run_graph

    from mobilebuild.graphs import memmap

    g, labels = wide_retrain
    tree = tf_tree("1.4")
    r = cli("--json", "ios", "--tf-src", tree, "--model", g.path, "--labels", labels, "--memmap")
    assert r.code == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["model"]["memory_mapped"] is True
    notes = " ".join(res["model"]["notes"])
    assert "optimized" in notes and "quantized (weights_rounded)" in notes and "memory-mapped: 1 tensor(s)" in notes
    camera = tree / ios_camera_dir("1.4")
    text = (camera / "CameraExampleViewController.mm").read_text()
    assert "const bool model_uses_memory_mapping = true;\n" in text
    # The graph normalises with Sub 128 then Mul 1/128; the app's copy starts at Mul, without
    # them, and the example is told the values read from the original graph.
    assert "const float input_mean = 128.0f;\nconst float input_std = 128.0f;\n" in text
    assert 'const std::string input_layer_name = "Mul";' in text
    assert 'model_file_name = @"wide_graph";\nstatic NSString* model_file_type = @"pb";' in text

    package = camera / "data" / "wide_graph.pb"
    graph_def, regions = memmap.read_package(package)  # a real memmapped package
    ops = {n.op for n in graph_def.node}
    assert "ImmutableConst" in ops and len(regions) == 1
    assert not ops & {"DecodeJpeg", "Sub", "FusedBatchNorm", "FusedBatchNormV3"}  # cut and optimized
    inlined = memmap.inline_regions(graph_def, package, regions)
    weights = next(n for n in inlined.node if n.op == "Const" and len(n.attr["value"].tensor.tensor_content) >= 10000)
    values = np.frombuffer(weights.attr["value"].tensor.tensor_content, dtype=np.float32)
    assert len(np.unique(values)) <= 256  # weights_rounded: 8-bit levels, still float
    # It classifies as the original does (fed after the original's own normalisation).
    x = np.random.default_rng(3).uniform(-1, 1, (1, 48, 48, 3)).astype(np.float32)
    want = run_graph(g.graph_def, {"Mul": x}, "final_result")
    got = run_graph(inlined, {"Mul": x}, "final_result")
    assert np.argmax(got) == np.argmax(want) and np.abs(got - want).max() < 0.01

    # The same command again rewrites nothing.
    mtimes = tree_mtimes(tree)
    r = cli("ios", "--tf-src", tree, "--model", g.path, "--labels", labels, "--memmap")
    assert r.code == 0 and "nothing rewritten" in r.stderr and tree_mtimes(tree) == mtimes


def test_memmap_with_an_explicit_quantize_mode_and_refusals(cli, tf_tree, wide_retrain, tmp_path):
    from mobilebuild.graphs import memmap

    g, labels = wide_retrain
    tree = tf_tree("1.4")
    r = cli("--json", "ios", "--tf-src", tree, "--model", g.path, "--labels", labels, "--memmap", "--quantize", "weights")
    assert r.code == 0, r.stderr
    assert "quantized (weights)" in " ".join(json.loads(r.stdout)["model"]["notes"])
    graph_def, _ = memmap.read_package(tree / ios_camera_dir("1.4") / "data" / "wide_graph.pb")
    assert "Dequantize" in {n.op for n in graph_def.node}
    before = tree_digest(tree)
    r = cli("ios", "--tf-src", tree, "--model", g.path, "--labels", labels, "--memmap", "--quantize", "int3")
    one_line_error(r)
    assert "unknown quantize mode" in r.stderr
    r = cli("ios", "--tf-src", tree, "--model", g.path, "--labels", labels, "--memmap", "--app", "tflite")
    one_line_error(r)
    assert "--memmap" in r.stderr
    assert tree_digest(tree) == before
