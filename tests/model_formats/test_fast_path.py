"""The graph commands that execute nothing run without TensorFlow, and give the same bytes and
figures as the TensorFlow path; quantize reproduces TensorFlow's reference quantize_graph tool.

The fast path is checked in a fresh interpreter (this test process has TensorFlow loaded by
the graph fixtures); the TensorFlow path is the same commands with
MOBILEBUILD_GRAPH_BACKEND=tensorflow, which makes every step that has both paths take
TensorFlow's: its message classes, its tensor codec, its QuantizeV2 kernel, its shape inference.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mobilebuild import defaults
from mobilebuild.graphs import io, memmap, protos, quantize

GOLDEN = Path(__file__).parent / "golden"
REPO = Path(__file__).resolve().parents[2]

# Run commands in one fresh interpreter; report each exit code and whether TensorFlow got imported.
_PROBE = r"""
import json, sys
from mobilebuild.cli import hoist_global_flags, run
codes = []
for args in json.loads(sys.argv[1]):
    codes.append(run(hoist_global_flags(args)))
sys.stdout.flush()
print(json.dumps({"codes": codes, "tensorflow": "tensorflow" in sys.modules}), file=sys.stderr)
"""


def _commands(model: Path, out: Path) -> list[list[str]]:
    m = str(model)
    return [
        ["--json", "model", "inspect", m],
        ["--json", "model", "inspect", m, "--tf-version", "1.1"],
        ["model", "downgrade", m, "-o", str(out / "down.pb"), "--tf-version", "1.1"],
        ["--json", "model", "check", str(out / "down.pb"), "--tf-version", "1.1"],
        ["model", "memmap", m, "-o", str(out / "model.mm"), "--min-conversion-tensor-size", "1000"],
        ["model", "memmap", m, "-o", str(out / "down.mm"), "--tf-version", "1.1"],
        ["model", "quantize", m, "-o", str(out / "weights.pb"), "--mode", "weights"],
        ["model", "quantize", m, "-o", str(out / "rounded.pb"), "--mode", "weights_rounded"],
        ["model", "quantize", m, "-o", str(out / "rounded4.pb"), "--mode", "weights_rounded", "--bitdepth", "4"],
        ["model", "quantize", m, "-o", str(out / "eightbit.pb"), "--mode", "eightbit"],
    ]


def _fresh(commands, env_extra=None):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), NO_COLOR="1")
    env.pop("MOBILEBUILD_GRAPH_BACKEND", None)
    env.update(env_extra or {})
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(commands)], capture_output=True, text=True, env=env, timeout=600
    )
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    return proc, report


def _json_objects(stdout: str) -> list[dict]:
    decoder, objects, pos = json.JSONDecoder(), [], 0
    text = stdout.strip()
    while pos < len(text):
        obj, end = decoder.raw_decode(text, pos)
        objects.append(obj)
        pos = end
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return objects


@pytest.fixture(scope="module")
def both_paths(graphs, tmp_path_factory):
    """The commands on the built-in model and on a Keras graph, run (a) in a fresh process
    without TensorFlow and (b) in a fresh process on the TensorFlow path."""
    results = {}
    for name, model in [("default", defaults.default_model()), ("keras", graphs["keras"].path)]:
        for path in ("fast", "tensorflow"):
            out = tmp_path_factory.mktemp(f"{name}_{path}")
            env = {"MOBILEBUILD_GRAPH_BACKEND": "tensorflow"} if path == "tensorflow" else {}
            commands = _commands(model, out)
            # --eightbit-extended folds constants first (the Keras batch norm's Rsqrt included,
            # by the folder's float64 definition): no TensorFlow for that either.
            commands.append(["model", "quantize", str(model), "-o", str(out / "extended.pb"), "--mode", "eightbit", "--eightbit-extended"])
            proc, report = _fresh(commands, env)
            results[name, path] = (proc, report, out)
    return results


@pytest.mark.parametrize("name", ["default", "keras"])
def test_commands_that_execute_nothing_do_not_import_tensorflow(both_paths, name):
    proc, report, _ = both_paths[name, "fast"]
    assert report["codes"] == [0] * len(report["codes"]), proc.stderr
    assert report["tensorflow"] is False, proc.stderr
    _, tf_report, _ = both_paths[name, "tensorflow"]
    assert tf_report["tensorflow"] is True  # the other path really is the TensorFlow one


@pytest.mark.parametrize("name", ["default", "keras"])
def test_fast_path_and_tensorflow_path_are_byte_identical(both_paths, name):
    fast_proc, _, fast_out = both_paths[name, "fast"]
    tf_proc, _, tf_out = both_paths[name, "tensorflow"]
    files = sorted(p.name for p in fast_out.iterdir())
    assert files == sorted(p.name for p in tf_out.iterdir()) and len(files) == 8
    for f in files:
        assert (fast_out / f).read_bytes() == (tf_out / f).read_bytes(), f
    # inspect (twice) and check report the same figures: shapes, classes, mean/std, runtime.
    fast_json, tf_json = _json_objects(fast_proc.stdout), _json_objects(tf_proc.stdout)
    assert len(fast_json) == 3
    for a, b in zip(fast_json, tf_json):
        a.pop("model", None), b.pop("model", None), a.pop("path", None), b.pop("path", None)
        assert a == b


def test_inspect_figures_are_todays(both_paths):
    proc, _, _ = both_paths["default", "fast"]
    report = _json_objects(proc.stdout)[0]
    info = json.loads((defaults.default_model().parent / "model.json").read_text())
    app = report["app"]
    assert (app["input_name"], app["input_size"], app["mean"], app["std"], app["num_classes"]) == (
        info["input_name"], info["input_size"], info["mean"], info["std"], info["num_classes"],
    )
    assert report["inputs"][0]["shape"] == [None, 32, 32, 3]
    assert report["outputs"][0]["shape"] == [None, 10]


@pytest.mark.parametrize("mode", ["weights", "weights_rounded"])
def test_weights_modes_reproduce_the_reference_tool(mode):
    """Golden files: TensorFlow's v1.4 quantize_graph.py run on the built-in model (output node
    final_result) under today's TensorFlow. Every node, constant bytes included, is the same."""
    ours = quantize.quantize_graph_def(io.load_graph_def(defaults.default_model()), mode, output_names=["final_result"])
    reference = io.parse_graph_def((GOLDEN / f"digits_{mode}.pb").read_bytes())
    assert io.serialize(ours) == io.serialize(reference)


# Inputs committed next to the reference's outputs, so the comparison does not depend on today's
# TensorFlow building the same graph: the retrain.py-shaped graph cut at Mul
# (helpers.graphs.build_retrain_graph), conftest's "mixed" and "keras" graphs, a graph with
# FakeQuantWithMinMaxVars after a conv and after a Relu, and a GraphDef version 8 graph with
# BatchNormWithGlobalNormalization (the op newer graphs can no longer hold).
EIGHTBIT_GOLDEN = {
    "digits": (None, ["final_result"]),
    "retrain_cut": ("retrain_cut.pb", ["final_result"]),
    "mixed": ("mixed.pb", ["logits", "probs"]),
    "keras": ("keras.pb", ["Identity"]),
    "fakequant": ("fakequant.pb", ["probs"]),
    "oldbn": ("oldbn.pb", ["bn/Relu"]),
}


@pytest.mark.parametrize("name", sorted(EIGHTBIT_GOLDEN))
def test_eightbit_reproduces_the_reference_tool(name):
    """Golden files: the eightbit code of TensorFlow's v1.4 quantize_graph.py run under today's
    TensorFlow. The same nodes in the same order, names, attrs and quint8 weights: the same bytes."""
    source, outputs = EIGHTBIT_GOLDEN[name]
    graph_def = io.load_graph_def(GOLDEN / source if source else defaults.default_model())
    ours = quantize.quantize_graph_def(graph_def, "eightbit", output_names=outputs)
    reference = io.parse_graph_def((GOLDEN / f"{name}_eightbit.pb").read_bytes())
    assert [(n.name, n.op) for n in ours.node] == [(n.name, n.op) for n in reference.node]
    assert io.serialize(ours) == io.serialize(reference)


def test_eightbit_golden_input_is_the_retrain_graph_cut_at_mul(tmp_path):
    """The committed retrain input is what the test helper builds today, cut where retrain.py
    models are fed (same nodes and ops; the weights are seeded)."""
    from helpers.graphs import build_retrain_graph

    from mobilebuild.graphs.optimize import cut_graph

    g = build_retrain_graph(tmp_path)
    cut, _ = cut_graph(protos.ours(g.graph_def), ["Mul"], [g.output_name])
    committed = io.load_graph_def(GOLDEN / "retrain_cut.pb")
    assert [(n.name, n.op, list(n.input)) for n in cut.node] == [(n.name, n.op, list(n.input)) for n in committed.node]


def test_weights_rounded_uses_bucket_centres():
    import numpy as np

    x = np.array([0.0, 0.3, 0.6, 1.0], np.float32)
    assert quantize.bucket_centres(x, 2).tolist() == [0.25, 0.25, 0.75, 0.75]
    assert quantize.bucket_centres(np.full(3, 2.0, np.float32), 4).tolist() == [2.0, 2.0, 2.0]


def test_weights_quantizes_small_biases_like_the_reference(graphs):
    q = quantize.quantize_graph_def(graphs["mixed"].graph_def, "weights", output_names=graphs["mixed"].outputs)
    nodes = {n.name: n for n in q.node}
    assert nodes["fc/biases"].op == "Dequantize"
    assert nodes["fc/biases_quint8_const"].attr["value"].tensor.dtype == protos.DT_QUINT8
    # --min-const-bytes keeps small constants in float when asked.
    kept = quantize.quantize_graph_def(graphs["mixed"].graph_def, "weights", output_names=graphs["mixed"].outputs, min_const_bytes=1024)
    assert {n.name: n.op for n in kept.node}["fc/biases"] == "Const"


def test_quantize_v2_min_first_matches_the_kernel(monkeypatch):
    """MIN_FIRST quint8 (eightbit's weights) done in numpy gives the bytes of TensorFlow's
    QuantizeV2 kernel, values on and a hair off each rounding half included."""
    import numpy as np

    rng = np.random.default_rng(6)
    cases = []
    for _ in range(60):
        x = (rng.normal(size=int(rng.integers(1, 800))) * 10 ** rng.uniform(-4, 3)).astype(np.float32)
        x = np.abs(x) if rng.random() < 0.25 else x
        cases.append((x, *quantize.weight_range(x)))
    for lo, hi in [(-1.0, 1.0), (-31.0, 13.0), (0.0, 255.0)]:
        halves = ((np.arange(-300, 300) + 0.5) * (hi - lo) / 255.0).astype(np.float32)
        x = np.concatenate([halves, np.nextafter(halves, np.float32(np.inf)), np.nextafter(halves, np.float32(-np.inf))])
        cases.append((x, lo, hi))
    cases.append((np.zeros(3, np.float32), *quantize.weight_range(np.zeros(3, np.float32))))
    fast = [quantize._quantize_min_first(x, lo, hi) for x, lo, hi in cases]
    monkeypatch.setenv("MOBILEBUILD_GRAPH_BACKEND", "tensorflow")
    for (x, lo, hi), ours in zip(cases, fast):
        assert np.array_equal(ours, quantize._quantize_min_first(x, lo, hi)), (lo, hi)


def test_quantize_v2_arithmetic_matches_the_kernel(monkeypatch):
    """MIN_COMBINED quint8 done in numpy gives the bytes of TensorFlow's QuantizeV2 kernel."""
    import numpy as np

    rng = np.random.default_rng(5)
    cases = []
    for _ in range(40):
        x = (rng.normal(size=int(rng.integers(1, 500))) * 10 ** rng.uniform(-4, 2)).astype(np.float32)
        cases.append((x, *quantize.weight_range(x)))
    # Values a hair from a rounding boundary (found in MobileNet's weights): the scale must be
    # divided in float32 as the kernel does, not in double.
    for triple in ([0.040822417, -0.15308508, 0.15308468], [-0.045027155, -0.07654603, 0.07654565]):
        x = np.array(triple, np.float32)
        cases.append((x, *quantize.weight_range(x)))
    cases.append((np.array([0.0025], np.float32), *quantize.weight_range(np.array([0.0025], np.float32))))
    cases.append((np.zeros(4, np.float32), *quantize.weight_range(np.zeros(4, np.float32))))
    fast = [quantize._quantize_min_combined(x, lo, hi) for x, lo, hi in cases]
    monkeypatch.setenv("MOBILEBUILD_GRAPH_BACKEND", "tensorflow")
    for (x, lo, hi), ours in zip(cases, fast):
        assert np.array_equal(ours, quantize._quantize_min_combined(x, lo, hi))


def test_streamed_memmap_equals_the_in_memory_writer(graphs, tmp_path):
    """The CLI's node-by-node conversion of a file and the writer of a GraphDef in memory give
    the same package, and a second run leaves the file (and its mtime) alone."""
    g = graphs["keras"]
    streamed, written = tmp_path / "s.mm", tmp_path / "w.mm"
    a = memmap.convert_file(g.path, streamed, 256)
    b = memmap.write_package(io.load_graph_def(g.path), written, 256)
    assert streamed.read_bytes() == written.read_bytes()
    assert a.as_dict() == b.as_dict() and a.converted >= 4
    before = streamed.stat().st_mtime_ns
    memmap.convert_file(g.path, streamed, 256)
    assert streamed.stat().st_mtime_ns == before


def test_streamed_memmap_refuses_garbage_like_a_full_parse(tmp_path):
    from mobilebuild.errors import ModelError

    bad = tmp_path / "bad.pb"
    bad.write_bytes(defaults.default_model().read_bytes()[:-7])
    with pytest.raises(ModelError) as streamed:
        memmap.convert_file(bad, tmp_path / "x.mm")
    with pytest.raises(ModelError) as parsed:
        io.parse_graph_def(bad.read_bytes(), str(bad))
    assert streamed.value.message == parsed.value.message
    assert list(tmp_path.iterdir()) == [bad]


def test_static_shapes_match_tensorflows(graphs):
    """Where the fast path knows the ops (all of these graphs), every node's shape and type is
    what TensorFlow's shape inference says."""
    from mobilebuild.graphs import nodes as gn, shapes

    for g in [*graphs.values(), None]:
        graph_def = protos.ours(g.graph_def if g else io.load_graph_def(defaults.default_model()))
        ours = shapes.infer(gn.topological_order(graph_def))
        assert ours is not None
        assert ours == {k: v for k, v in gn.tensorflow_specs(graph_def).items()}, g and g.name


def test_descriptors_come_from_the_installed_tensorflow():
    """The private pool holds TensorFlow's own .proto files, read from its package."""
    pool = protos._pool()
    graph = pool.FindMessageTypeByName("tensorflow.GraphDef")
    assert graph.file.name == "tensorflow/core/framework/graph.proto"
    assert pool.FindMessageTypeByName("tensorflow.MemmappedFileSystemDirectory").fields_by_name["element"]


@pytest.fixture(scope="module")
def optimized_both_ways(graphs, tmp_path_factory):
    """`model optimize` in fresh processes: the built-in model on each path, the Keras graph on
    the fast one (its TensorFlow path runs in the test's own process: one TensorFlow start-up
    less)."""
    results = {}
    for name, model, path in [("default", defaults.default_model(), "fast"), ("default", defaults.default_model(), "tensorflow"),
                              ("keras", graphs["keras"].path, "fast")]:
        out = tmp_path_factory.mktemp(f"optimize_{name}_{path}") / "opt.pb"
        env = {"MOBILEBUILD_GRAPH_BACKEND": "tensorflow"} if path == "tensorflow" else {}
        proc, report = _fresh([["--verbose", "model", "optimize", str(model), "-o", str(out)]], env)
        assert report["codes"] == [0], proc.stderr
        results[name, path] = (proc, report, out.read_bytes())
    return results


def test_optimize_gives_the_tensorflow_paths_bytes(optimized_both_ways, graphs, monkeypatch):
    from mobilebuild.graphs.optimize import optimize_graph

    assert optimized_both_ways["default", "fast"][2] == optimized_both_ways["default", "tensorflow"][2]
    assert optimized_both_ways["default", "tensorflow"][1]["tensorflow"] is True
    monkeypatch.setenv("MOBILEBUILD_GRAPH_BACKEND", "tensorflow")
    keras = optimize_graph(io.load_graph_def(graphs["keras"].path))
    assert optimized_both_ways["keras", "fast"][2] == io.serialize(keras.graph_def)


def test_optimize_imports_no_tensorflow(optimized_both_ways):
    """The built-in model (FusedBatchNorm folded into its convolutions) and the Keras graph
    (decomposed batch norm: Rsqrt of a 12-channel vector, folded in float64): no TensorFlow."""
    for name in ("default", "keras"):
        proc, report, _ = optimized_both_ways[name, "fast"]
        assert report["tensorflow"] is False, proc.stderr
        assert "computed by TensorFlow" not in proc.stderr, proc.stderr
        assert "optimize_for_inference runs" not in proc.stderr  # the graph passes were ours


def test_optimized_keras_graph_computes_the_models_outputs(optimized_both_ways, graphs):
    """Folding the batch norm (its scale rounded once from float64) changes the outputs by no
    more than float32 rounding: same classes, 1e-5 relative."""
    import numpy as np
    from helpers.graphs import assert_close, run_graph

    g = graphs["keras"]
    folded = protos.GraphDef.FromString(optimized_both_ways["keras", "fast"][2])
    x = np.random.default_rng(11).uniform(0, 1, (16,) + tuple(g.input_shape)).astype(np.float32)
    assert "Rsqrt" not in {n.op for n in folded.node}
    for out in g.outputs:
        ours, original = run_graph(folded, {g.input: x}, out), run_graph(g.graph_def, {g.input: x}, out)
        assert_close(ours, original)
        assert (ours.argmax(-1) == original.argmax(-1)).all()


@pytest.mark.parametrize("flow", ["android", "android --optimize", "android --optimize retrain", "ios --memmap",
                                  "android --optimize keras", "ios --memmap keras"])
def test_app_flow_prepares_a_new_model_without_tensorflow(tmp_path, flow, request):
    """First run of an app flow (empty cache, so the model is prepared: inspected, cut at its
    normalisation, optimized if asked, fitted to the tree's runtime, written; for `ios --memmap`
    also quantized and memory-mapped) imports no TensorFlow: on a Keras 3 graph too (its batch
    norm folded without it)."""
    from helpers.graphs import build_retrain_graph
    from helpers.tftrees import ACTIVITY, ios_camera_dir, make_ndk, make_sdk, make_tf_tree

    if flow.startswith("ios"):
        tree = make_tf_tree(tmp_path / "tf", "1.4")
        argv = ["ios", "--tf-src", str(tree), "--memmap"]
    else:
        tree = make_tf_tree(tmp_path / "tf", "1.1")
        argv = ["android", "--generate-only", "--tf-src", str(tree), "--sdk", str(make_sdk(tmp_path / "sdk")),
                "--ndk", str(make_ndk(tmp_path / "ndk"))] + (["--optimize"] if "--optimize" in flow else [])
    if flow.endswith("retrain"):
        g = build_retrain_graph(tmp_path, size=48, classes=3)
        labels = tmp_path / "labels.txt"
        labels.write_text("a\nb\nc\n")
        argv += ["--model", str(g.path), "--labels", str(labels)]
    if flow.endswith("keras"):
        g = request.getfixturevalue("graphs")["keras"]
        labels = tmp_path / "labels.txt"
        labels.write_text("".join(f"class{i}\n" for i in range(6)))
        argv += ["--model", str(g.path), "--labels", str(labels), "--mean", "128", "--std", "128", "--input-size", "20"]
    proc, report = _fresh([argv], {"MOBILEBUILD_CACHE": str(tmp_path / "cache"), "MOBILEBUILD_HOME": str(tmp_path / "home")})
    assert report == {"codes": [0], "tensorflow": False}, proc.stderr
    assert "reused" not in proc.stderr
    if flow.startswith("ios"):
        text = (tree / ios_camera_dir("1.4") / "CameraExampleViewController.mm").read_text()
        assert "const bool model_uses_memory_mapping = true;" in text
    else:
        size = {"retrain": 48, "keras": 20}.get(flow.split()[-1], 32)
        assert f"INPUT_SIZE = {size};" in (tree / ACTIVITY).read_text()
