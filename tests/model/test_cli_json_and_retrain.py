"""Every model command with --json: the machine result alone on stdout. And the retrain.py-shaped
graph (DecodeJpeg -> ... -> Mul -> ...) taken through the CLI the way a user would."""

from __future__ import annotations

import json

import pytest

from helpers.graphs import TAGS, assert_close, one_line_error, run_graph


def _json_commands(model, tmp_path, image):
    images = image.parent.parent
    return {
        "inspect": ["model", "inspect", model, "--tf-version", "1.1"],
        "check": ["model", "check", model, "--tf-version", "1.2"],
        "downgrade": ["model", "downgrade", model, "-o", tmp_path / "d.pb", "--tf-version", "1.0"],
        "optimize": ["model", "optimize", model, "-o", tmp_path / "o.pb", "--tf-version", "1.1"],
        "quantize": ["model", "quantize", model, "-o", tmp_path / "q.pb", "--mode", "weights_rounded"],
        "memmap": ["model", "memmap", model, "-o", tmp_path / "m.mmap"],
        "tflite": ["model", "tflite", model, "-o", tmp_path / "t.tflite"],
        "label": ["model", "label", model, "--image", image, "--top-k", "2"],
        "compare": ["model", "compare", model, model, "--images", images, "--labels-from-dirs"],
    }


@pytest.mark.parametrize("command", ["inspect", "check", "downgrade", "optimize", "quantize", "memmap", "tflite", "label", "compare"])
def test_json_stdout_holds_only_the_result(command, cli, default_graph, tmp_path):
    from mobilebuild import defaults

    image = defaults.sample_images_dir() / "one" / "one_0.png"
    r = cli("--json", *_json_commands(default_graph.path, tmp_path, image)[command])
    assert r.code == 0, r.output
    data = json.loads(r.stdout)  # fails on any human line mixed in
    assert isinstance(data, dict) and data
    # a command that writes a file names it in its result
    for path in ("d.pb", "o.pb", "q.pb", "m.mmap", "t.tflite"):
        if (tmp_path / path).exists():
            assert data.get("output") == str(tmp_path / path)


def test_json_failure_is_one_object_with_error_and_hint(cli, tmp_path):
    r = cli("--json", "model", "quantize", tmp_path / "missing.pb", "-o", tmp_path / "o.pb", "--mode", "weights")
    one_line_error(r)
    failure = json.loads(r.stdout)
    assert "missing.pb" in failure["error"] and failure["hint"] and failure["exit_code"] == 1
    assert not (tmp_path / "o.pb").exists()


def test_check_json_on_failure_is_still_json(cli, retrain):
    r = cli("--json", "model", "check", retrain.path, "--tf-version", "1.0")
    assert r.code == 1
    data = json.loads(r.stdout)
    assert data["loads"] is False and "DecodeJpeg" in {p["op"] for p in data["problems"]}


def test_retrain_graph_through_the_cli(cli, retrain, tmp_path):
    """inspect says what to feed; check fails; downgrade refuses (image decoding) pointing at
    optimize; optimize --tf-version cuts at Mul and the result passes check for every tag and
    computes what the original computes from Mul."""
    from mobilebuild.graphs import io

    r = cli("--json", "model", "inspect", retrain.path)
    app = json.loads(r.stdout)["app"]
    assert (app["input_name"], app["input_size"], app["mean"], app["std"]) == ("Mul", 64, 128, 128)

    line = one_line_error(cli("model", "check", retrain.path, "--tf-version", "1.1"))
    assert "would not load" in line

    r = cli("model", "downgrade", retrain.path, "-o", tmp_path / "d.pb", "--tf-version", "1.1")
    line = one_line_error(r)
    assert "DecodeJpeg" in line and "model optimize" in r.stderr
    assert not (tmp_path / "d.pb").exists()

    out = tmp_path / "o.pb"
    r = cli("model", "optimize", retrain.path, "-o", out, "--tf-version", "1.0")
    assert r.code == 0, r.output
    assert "cut at Mul" in r.stderr and "feed Mul" in r.stderr
    for tag in TAGS:
        r = cli("model", "check", out, "--tf-version", tag.lstrip("v").rsplit(".", 1)[0])
        assert r.code == 0, (tag, r.output)
    optimized = io.load_graph_def(out)
    assert not {"DecodeJpeg", "Cast", "ResizeBilinear"} & {n.op for n in optimized.node}
    x = retrain.sample_input(batch=1)
    assert_close(run_graph(optimized, {"Mul": x}, "final_result"), run_graph(retrain.graph_def, {"Mul": x}, "final_result"))

    # the optimized graph downgrades to nothing more; label runs it (normalisation given, as
    # the cut graph no longer holds it)
    r = cli("model", "downgrade", out, "-o", tmp_path / "d2.pb", "--tf-version", "1.0")
    assert r.code == 0 and "nothing to rewrite" in r.stderr, r.output
    from mobilebuild import defaults

    image = defaults.sample_images_dir() / "one" / "one_0.png"
    line = one_line_error(cli("model", "label", out, "--image", image))
    assert "normalisation" in line
    r = cli("--json", "model", "label", out, "--image", image, "--mean", "128", "--std", "128", "--top-k", "5")
    assert r.code == 0, r.output
    ours = [p["score"] for p in json.loads(r.stdout)["results"][0]["predictions"]]
    r = cli("--json", "model", "label", retrain.path, "--image", image, "--top-k", "5")
    theirs = [p["score"] for p in json.loads(r.stdout)["results"][0]["predictions"]]
    assert_close(sorted(ours), sorted(theirs), rtol=1e-4)


def test_retrain_graph_to_tflite_is_cut_at_mul(cli, retrain, tmp_path):
    """TFLite has no DecodeJpeg either: with no --input-names the converter is fed Mul."""
    out = tmp_path / "r.tflite"
    r = cli("--json", "model", "tflite", retrain.path, "-o", out)
    assert r.code == 0, r.output
    data = json.loads(r.stdout)
    assert data["inputs"] == ["Mul"] and data["input_shape"] == [1, 64, 64, 3]
    from mobilebuild.graphs.tflite import TfliteRunner

    x = retrain.sample_input(batch=1)
    assert_close(TfliteRunner(out).run(x), run_graph(retrain.graph_def, {"Mul": x}, "final_result"), rtol=1e-4)


@pytest.mark.slow
def test_tflite_failure_is_one_line_in_a_real_process(retrain, tmp_path):
    """The MLIR converter prints its diagnostics from C++ to fd 2; the user sees only our
    error line and hint (the converter's log with --verbose)."""
    from helpers.cli import run_subprocess

    out = tmp_path / "x.tflite"
    r = run_subprocess("model", "tflite", retrain.path, "-o", out, "--input-names", "DecodeJpeg/contents")
    assert r.code == 1
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 2 and lines[0].startswith("error:") and lines[1].lstrip().startswith("hint:"), r.stderr
    assert "TFLite has no kernel for DecodeJpeg" in lines[0]
    assert not out.exists()
    r = run_subprocess("--verbose", "model", "tflite", retrain.path, "-o", out, "--input-names", "DecodeJpeg/contents")
    assert r.code == 1 and "converter:" in r.stderr and "neither a custom op nor a flex op" in r.stderr


@pytest.mark.slow
def test_litert_delegate_chatter_only_with_verbose(default_graph, tmp_path):
    """LiteRT prints 'Created TensorFlow Lite XNNPACK delegate' from C++ at every load.
    (`model inspect` reads a .tflite without LiteRT; `model label` runs it.)"""
    from helpers.cli import run_subprocess
    from mobilebuild import defaults
    from mobilebuild.graphs import tflite

    out = tmp_path / "d.tflite"
    tflite.convert(default_graph.path, out)
    image = next(defaults.sample_images_dir().glob("*/*"))
    args = ("model", "label", out, "--image", image, "--labels", defaults.default_labels(), "--mean", "0", "--std", "1")
    r = run_subprocess(*args)
    assert r.code == 0 and "XNNPACK" not in r.stderr + r.stdout, r.stderr
    r = run_subprocess("--verbose", *args)
    assert r.code == 0 and "litert: INFO: Created TensorFlow Lite XNNPACK delegate" in r.stderr, r.stderr


@pytest.mark.parametrize(
    "command",
    ["downgrade", "optimize", "quantize", "quantize-eightbit-1.0", "memmap", "memmap-1.1", "tflite", "downgrade-memmapped"],
)
def test_second_run_leaves_the_output_alone(command, cli, default_graph, tmp_path):
    """Idempotent: the same command again writes nothing (the file keeps its old mtime)."""
    import os

    from mobilebuild.graphs import memmap

    model = default_graph.path
    if command == "downgrade-memmapped":
        model = tmp_path / "in.mmap"
        memmap.write_package(default_graph.graph_def, model, 1000)
    out = tmp_path / "out.bin"
    args = {
        "downgrade": ["downgrade", model, "-o", out, "--tf-version", "1.0"],
        "downgrade-memmapped": ["downgrade", model, "-o", out, "--tf-version", "1.0"],
        "optimize": ["optimize", model, "-o", out, "--tf-version", "1.1"],
        "quantize": ["quantize", model, "-o", out, "--mode", "weights"],
        "quantize-eightbit-1.0": ["quantize", model, "-o", out, "--mode", "eightbit", "--tf-version", "1.0"],
        "memmap": ["memmap", model, "-o", out],
        "memmap-1.1": ["memmap", model, "-o", out, "--tf-version", "1.1"],
        "tflite": ["tflite", model, "-o", out],
    }[command]
    assert cli("model", *args).code == 0
    first = out.read_bytes()
    os.utime(out, ns=(1_000_000_000, 1_000_000_000))
    r = cli("model", *args)
    assert r.code == 0, r.output
    assert out.stat().st_mtime_ns == 1_000_000_000 and out.read_bytes() == first
