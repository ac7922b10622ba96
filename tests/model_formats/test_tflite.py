"""tflite: convert real frozen graphs (and a SavedModel / memmapped package) and run them with
LiteRT. Tolerances (max abs difference to TF on softmax outputs): none 1e-5, dynamic 0.005,
int8 0.04 (calibrated on inputs drawn like the test inputs); top-1 agreement >= 90 %."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mobilebuild.graphs import memmap, tflite


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Representative images drawn like the test inputs (uniform pixels: (p - 127.5) / 127.5
    is uniform in [-1, 1]), PNG and JPEG, two folders deep."""
    from PIL import Image

    base = tmp_path_factory.mktemp("rep")
    rng = np.random.default_rng(5)
    for i in range(12):
        img = Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8))
        sub = base / ("a" if i % 2 else "b")
        sub.mkdir(exist_ok=True)
        img.save(sub / (f"{i}.png" if i % 3 else f"{i}.jpg"), quality=95)
    (base / "notes.txt").write_text("not an image")
    return base


@pytest.fixture(scope="module")
def converted(graphs, images, tmp_path_factory):
    g = graphs["keras"]
    base = tmp_path_factory.mktemp("tfl")
    made = {}
    for mode in tflite.QUANTIZE_MODES:
        out = base / f"keras_{mode}.tflite"
        result = tflite.convert(g.path, out, mode, images if mode in tflite.CALIBRATED_MODES else None)
        made[mode] = result
    return made


@pytest.mark.parametrize("mode,atol", [("none", 1e-5), ("dynamic", 0.005), ("int8", 0.04)])
def test_convert_and_run_with_litert(graphs, converted, run_graph, mode, atol):
    g = graphs["keras"]
    result = converted[mode]
    assert result.out.read_bytes()[4:8] == b"TFL3"
    assert result.input_shape == [1, 20, 20, 3]
    runner = tflite.TfliteRunner(result.out)
    x = g.sample(16, seed=11)
    got = runner.run(x)
    ref = run_graph(g.graph_def, g.input, x, g.outputs[0])
    assert got.shape == ref.shape and got.dtype == np.float32
    assert np.abs(got - ref).max() <= atol
    agree = np.mean(got.argmax(-1) == ref.argmax(-1))
    assert agree >= (1.0 if mode == "none" else 0.9)
    if mode != "none":
        assert result.size_out < converted["none"].size_out / 2.5  # 8-bit weights
    if mode == "int8":
        assert result.representative_images == 12  # notes.txt is skipped


def test_convert_v1_graph_with_names(graphs, tmp_path, run_graph):
    g = graphs["mixed"]
    out = tmp_path / "mixed.tflite"
    result = tflite.convert(g.path, out, output_names=["probs"])
    assert result.output_names == ["probs"]
    x = g.sample(3)
    np.testing.assert_allclose(tflite.TfliteRunner(out).run(x), run_graph(g.graph_def, g.input, x, "probs"), atol=1e-5)


def test_convert_takes_tensor_names(graphs, tmp_path, run_graph):
    """`input:0` / `probs:0` name the same nodes; the converter itself rejects the suffix."""
    g = graphs["mixed"]
    out = tmp_path / "suffixed.tflite"
    result = tflite.convert(g.path, out, input_names=[f"{g.input}:0"], output_names=["probs:0"])
    assert (result.input_names, result.output_names) == ([g.input], ["probs"])
    x = g.sample(2)
    np.testing.assert_allclose(tflite.TfliteRunner(out).run(x), run_graph(g.graph_def, g.input, x, "probs"), atol=1e-5)


def test_convert_memmapped_package(graphs, tmp_path, run_graph):
    g = graphs["mixed"]
    package = tmp_path / "m.mm"
    memmap.write_package(g.graph_def, package, 1000)
    out = tmp_path / "from_mm.tflite"
    tflite.convert(package, out, output_names=["logits"])
    x = g.sample(2)
    np.testing.assert_allclose(tflite.TfliteRunner(out).run(x), run_graph(g.graph_def, g.input, x, "logits"), rtol=1e-4, atol=1e-4)


def test_convert_savedmodel(tmp_path):
    import tensorflow as tf

    class Scale(tf.Module):
        def __init__(self):
            self.w = tf.Variable(np.arange(12, dtype=np.float32).reshape(3, 4) / 10)

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32)])
        def __call__(self, x):
            return tf.nn.softmax(tf.matmul(x, self.w))

    module = Scale()
    saved = tmp_path / "saved"
    tf.saved_model.save(module, str(saved), signatures=module.__call__)
    out = tmp_path / "sm.tflite"
    result = tflite.convert(saved, out)
    assert result.input_shape == [1, 3]
    x = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
    np.testing.assert_allclose(tflite.TfliteRunner(out).run(x), module(x).numpy(), atol=1e-6)


def test_bad_arguments(graphs, tmp_path):
    g = graphs["keras"]
    with pytest.raises(tflite.TfliteModeError, match="unknown --quantize"):
        tflite.convert(g.path, tmp_path / "x.tflite", "float16")
    with pytest.raises(tflite.TfliteModeError, match="representative"):
        tflite.convert(g.path, tmp_path / "x.tflite", "int8")
    with pytest.raises(tflite.TfliteModeError, match="no images"):
        tflite.convert(g.path, tmp_path / "x.tflite", "int8", representative_images=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_runner_refuses_wrong_shapes_and_files(converted, tmp_path):
    from mobilebuild.errors import ModelError

    runner = tflite.TfliteRunner(converted["none"].out)
    with pytest.raises(ModelError, match="does not fit"):
        runner.run(np.zeros((1, 10, 10, 3), np.float32))
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"\0\0\0\0TFL3" + b"\0" * 40)
    with pytest.raises(ModelError):
        tflite.TfliteRunner(junk)


def test_cli_tflite(cli, graphs, images, tmp_path):
    g = graphs["keras"]
    out = tmp_path / "k.tflite"
    r = cli("--json", "model", "tflite", g.path, "-o", out, "--quantize", "int8", "--representative-images", images, "--mean", "127.5", "--std", "127.5")
    assert r.code == 0, r.output
    data = json.loads(r.stdout)
    assert data["quantize"] == "int8" and data["size_after"] == out.stat().st_size
    assert "tflite (int8)" in r.stderr
    mtime = out.stat().st_mtime_ns
    assert cli("model", "tflite", g.path, "-o", out, "--quantize", "int8", "--representative-images", images).code == 0
    assert out.stat().st_mtime_ns == mtime  # same model again: file untouched


def test_cli_tflite_errors(cli, graphs, tmp_path):
    g = graphs["mixed"]
    r = cli("model", "tflite", g.path, "-o", tmp_path / "x.tflite", "--quantize", "int4")
    assert r.code == 1 and "none, dynamic, int8" in r.stderr
    r = cli("model", "tflite", g.path, "-o", tmp_path / "x.tflite", "--quantize", "int8")
    assert r.code == 1 and "--representative-images" in r.stderr
    r = cli("model", "tflite", g.path, "-o", tmp_path / "x.tflite", "--input-shape", "1,a,3")
    assert r.code == 1 and "--input-shape" in r.stderr
    r = cli("model", "tflite", g.path, "-o", tmp_path / "x.tflite", "--output-names", "nope")
    assert r.code == 1 and "not in the graph" in r.stderr
    r = cli("model", "tflite", g.path, "-o", g.path)
    assert r.code == 1 and "is the input" in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_cli_default_model_int8_reads_normalisation_from_graph(cli, tmp_path):
    """No MODEL: the built-in digits model. Its graph normalises raw pixels itself, so the
    representative images go in as raw pixels; accuracy on its held-out samples stays up."""
    from PIL import Image

    from mobilebuild import defaults

    out = tmp_path / "digits.tflite"
    r = cli("model", "tflite", "-o", out, "--quantize", "int8", "--representative-images", defaults.sample_images_dir())
    assert r.code == 0, r.output
    assert "(pixel - 0) / 1, read from the graph" in r.stderr
    runner = tflite.TfliteRunner(out)
    labels = defaults.default_labels().read_text().split()
    files = defaults.sample_images()
    x = np.stack([np.asarray(Image.open(f).convert("RGB").resize((32, 32)), dtype=np.float32) for f in files])
    y = np.array([labels.index(f.parent.name) for f in files])
    accuracy = np.mean(runner.run(x).argmax(1) == y)
    assert accuracy >= 0.85, accuracy
