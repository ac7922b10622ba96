"""`model inspect`: what a model is and what the app must be told, on real TF graphs."""

from __future__ import annotations

import json
import re

from helpers.graphs import jpeg_bytes, run_graph


def test_retrain_graph_app_part(retrain):
    from mobilebuild.graphs.inspect import inspect_model

    report = inspect_model(retrain.path)
    app = report.app
    assert (app.input_name, app.input_size, app.mean, app.std, app.output_name, app.num_classes) == (
        "Mul", 64, 128.0, 128.0, "final_result", 5
    )
    assert app.needs_cut and app.graph_input == "DecodeJpeg/contents" and app.channels == 3
    assert app.preprocessing == ["Cast", "ExpandDims", "ResizeBilinear", "Sub", "Mul"]
    assert any("DecodeJpeg cannot run in the mobile runtime" in n and "'Mul'" in n for n in app.notes)
    assert report.inputs == [{"name": "DecodeJpeg/contents", "dtype": "string", "shape": []}]
    assert report.outputs[0]["name"] == "final_result" and report.outputs[0]["op"] == "Softmax"
    assert report.op_counts["DecodeJpeg"] == 1 and report.node_count == len(retrain.graph_def.node)
    # parameters: conv 3x3x3x8 + 4x8 batch norm + 8x5 dense + 5 bias
    assert report.params == 3 * 3 * 3 * 8 + 4 * 8 + 8 * 5 + 5 + 2  # + the Sub/Mul scalars
    # the values read from the constants really are the graph's preprocessing
    img = jpeg_bytes(64)
    resized = run_graph(retrain.graph_def, {"DecodeJpeg/contents": img}, "ResizeBilinear")
    normalised = run_graph(retrain.graph_def, {"DecodeJpeg/contents": img}, "Mul")
    assert resized.shape == (1, app.input_size, app.input_size, 3)
    assert abs(normalised - (resized - app.mean) / app.std).max() < 1e-6


def test_default_model_app_part(default_graph):
    from mobilebuild import defaults
    from mobilebuild.graphs.inspect import inspect_model

    report = inspect_model(defaults.default_model())
    app = report.app
    info = defaults.default_info()
    assert (app.input_name, app.input_size, app.mean, app.std, app.output_name, app.num_classes) == (
        info["input_name"], info["input_size"], info["mean"], info["std"], info["output_name"], info["num_classes"]
    )
    assert not app.needs_cut and app.graph_input == "input"
    assert report.op_counts["FusedBatchNorm"] == 3
    assert info["held_out_accuracy"] >= 0.9


def test_keras3_graph_without_normalisation(keras3):
    from mobilebuild.graphs.inspect import inspect_model

    app = inspect_model(keras3.path).app
    assert app.input_name == "image" and app.input_size == 24 and app.num_classes == 4
    assert app.output_name == keras3.output_name
    assert app.mean is None and app.std is None
    assert any("--mean and --std" in n for n in app.notes)


def test_inspect_tf_version_lists_missing_ops(retrain, cli):
    r = cli("--json", "model", "inspect", retrain.path, "--tf-version", "1.1")
    assert r.code == 0, r.output
    data = json.loads(r.stdout)
    rt = data["runtime"]
    assert rt["tag"] == "v1.1.0" and rt["loads"] is False
    assert rt["missing_ops"] == ["AddV2", "DecodeJpeg", "FusedBatchNormV3"]
    assert rt["after_prepare"]["loads"] is True
    assert any("cut the graph at 'Mul'" in c for c in rt["after_prepare"]["changes"])
    assert data["app"]["input_name"] == "Mul" and data["app"]["needs_cut"] is True


def test_inspect_human_output_and_default(cli):
    r = cli("model", "inspect")
    assert r.code == 0, r.output
    assert "built-in default model" in r.stderr
    assert "input node   Mul" in r.stdout and "mean / std   128 / 128" in r.stdout
    assert "output node  final_result" in r.stdout
    r = cli("model", "inspect", "--tf-version", "1.0")
    assert r.code == 0 and "runtime TF v1.0.0: loads as is" in r.stdout


def test_inspect_refused_case_explains(cli, small):
    r = cli("--json", "model", "inspect", small("dilated_conv").path, "--tf-version", "1.2")
    data = json.loads(r.stdout)
    assert data["runtime"]["after_prepare"]["loads"] is False
    assert "dilations=[1, 2, 2, 1]" in data["runtime"]["after_prepare"]["reason"]


def test_inspect_memmapped_package(default_graph, tmp_path, cli):
    from mobilebuild.graphs import memmap

    pkg = tmp_path / "digits.mmap"
    memmap.write_package(default_graph.graph_def, pkg, 1024)
    r = cli("--json", "model", "inspect", pkg)
    assert r.code == 0, r.output
    data = json.loads(r.stdout)
    assert data["format"] == "memmapped"
    assert data["op_counts"]["ImmutableConst"] >= 3
    assert data["app"]["input_name"] == "Mul" and data["app"]["num_classes"] == 10
    assert data["params"] == 24572


def test_inspect_tflite(default_graph, tmp_path, cli):
    from mobilebuild.graphs import tflite

    out = tmp_path / "digits.tflite"
    tflite.convert(default_graph.path, out)
    r = cli("--json", "model", "inspect", out)
    assert r.code == 0, r.output
    data = json.loads(r.stdout)
    assert data["format"] == "tflite"
    assert data["app"]["input_size"] == 32 and data["app"]["num_classes"] == 10


def test_keras3_rescaling_layer_is_read_as_mean_std(tmp_path):
    """Keras 3's Rescaling(1/127.5, offset=-1) freezes to Mul + AddV2 with Cast constants:
    the app feeds the AddV2 with mean/std 127.5/127.5, and that equals feeding raw pixels."""
    import keras
    import numpy as np
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    from mobilebuild.graphs.inspect import app_info

    keras.utils.set_random_seed(8)
    inp = keras.Input((16, 16, 3), name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inp)
    x = keras.layers.Conv2D(4, 3)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(3, activation="softmax")(x)
    model = keras.Model(inp, x)
    fn = tf.function(lambda t: model(t, training=False)).get_concrete_function(tf.TensorSpec([None, 16, 16, 3], tf.float32, name="image"))
    gd = convert_variables_to_constants_v2(fn).graph.as_graph_def()
    app = app_info(gd)
    assert (app.mean, app.std, app.input_size) == (127.5, 127.5, 16)
    # Keras numbers layer scopes across the session (rescaling_1, rescaling_2, ...)
    assert re.search(r"/rescaling(_\d+)*/add$", app.input_name) and app.graph_input == "image", app.input_name
    pixels = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3)).astype(np.float32)
    raw = run_graph(gd, {"image": pixels}, app.output_name)
    fed = run_graph(gd, {app.input_name: (pixels - app.mean) / app.std}, app.output_name)
    assert np.abs(raw - fed).max() < 1e-5


def _write_graph(path, build):
    import tensorflow as tf

    g = tf.Graph()
    with g.as_default():
        build(tf)
    path.write_bytes(g.as_graph_def().SerializeToString())
    return path


def test_integer_arithmetic_is_not_read_as_normalisation(cli, tmp_path):
    """x + 1 on an int32 input is not (x - mean) / std: the app feeds the placeholder."""
    import json

    path = _write_graph(tmp_path / "ints.pb", lambda tf: tf.identity(tf.compat.v1.placeholder(tf.int32, [None, 5], name="x") + 1, name="y"))
    app = json.loads(cli("--json", "model", "inspect", path).stdout)["app"]
    assert app["input_name"] == "x" and app["mean"] is None


def test_graph_without_input_says_unknown_not_none(cli, tmp_path):
    import numpy as np

    path = _write_graph(tmp_path / "consts.pb", lambda tf: tf.identity(tf.constant(np.ones((3, 4), np.float32)) * 2.0, name="out"))
    r = cli("model", "inspect", path)
    assert r.code == 0, r.output
    assert "None" not in r.stdout
    assert "input node   ?" in r.stdout and "output node  out" in r.stdout and "classes      4" in r.stdout


def test_quantize_says_larger_when_a_tiny_graph_grows(cli, tmp_path):
    import numpy as np

    def build(tf):
        x = tf.compat.v1.placeholder(tf.float32, [None, 5], name="x")
        tf.nn.softmax(tf.matmul(x, tf.constant(np.ones((5, 3), np.float32))), name="probs")

    path = _write_graph(tmp_path / "dense.pb", build)
    r = cli("model", "quantize", path, "-o", tmp_path / "q.pb", "--mode", "eightbit")
    assert r.code == 0, r.output
    assert "x larger" in r.stderr and "x smaller" not in r.stderr
