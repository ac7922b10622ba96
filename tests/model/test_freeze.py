"""Keras (.keras, .h5) and SavedModel inputs: frozen once per content, then every model command
treats them as a .pb; normalisation layers read as the app's mean/std; bad ones refused."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from helpers.graphs import assert_close, one_line_error, run_graph
from helpers.keras_models import image_classifier, save_all

FORMATS = ["keras", "h5", "savedmodel"]


@pytest.fixture(scope="session")
def keras_files(tmp_path_factory):
    return save_all(image_classifier(), tmp_path_factory.mktemp("keras"))


def _path(files, fmt):
    return {"keras": files.keras, "h5": files.h5, "savedmodel": files.savedmodel}[fmt]


@pytest.mark.parametrize("fmt", FORMATS)
def test_inspect_reads_names_size_and_rescaling(fmt, keras_files, cli):
    r = cli("--json", "model", "inspect", _path(keras_files, fmt))
    assert r.code == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["format"] == fmt
    assert [i["name"] for i in data["inputs"]] == ["image"]
    app = data["app"]
    assert (app["mean"], app["std"], app["input_size"], app["num_classes"]) == (127.5, 127.5, 16, 3)
    assert app["graph_input"] == "image" and re.search(r"/rescaling(_\d+)*/add$", app["input_name"])
    # output named after the Keras layer (h5/keras) or the signature's output key (SavedModel)
    assert app["output_name"] == ("output_0" if fmt == "savedmodel" else "probs")
    assert data["frozen"]["source_format"] == fmt
    assert data["frozen"]["signature"] == ("serving_default" if fmt == "savedmodel" else None)
    if fmt != "savedmodel":
        assert data["frozen"]["normalisation_layers"] == [{"layer": "Rescaling", "name": "rescaling", "mean": 127.5, "std": 127.5}]
        assert any("Rescaling layer 'rescaling': mean 127.5, std 127.5" in n for n in app["notes"])
    ops = set(data["op_counts"])
    assert not ops & {"ReadVariableOp", "VarHandleOp", "StatefulPartitionedCall", "NoOp"}, ops


@pytest.mark.parametrize("fmt", FORMATS)
def test_frozen_graph_computes_what_keras_computes(fmt, keras_files):
    """Raw pixels into the frozen graph == model.predict (dropout off, batch norm in inference)."""
    from mobilebuild.graphs import io

    loaded = io.load_model(_path(keras_files, fmt))
    pixels = keras_files.pixels(4)
    want = keras_files.model.predict(pixels, verbose=0)
    out = "output_0" if fmt == "savedmodel" else "probs"
    assert_close(run_graph(loaded.graph_def, {"image": pixels}, out), want)


def test_frozen_once_per_content(keras_files, cli, tmp_path):
    from mobilebuild.paths import cache_dir

    first = cli("model", "inspect", keras_files.keras)
    assert first.code == 0 and "freezing" in first.stderr
    entries = list((cache_dir() / "frozen").iterdir())
    second = cli("model", "inspect", keras_files.keras)
    assert second.code == 0 and "freezing" not in second.stderr
    assert second.stdout == first.stdout
    # same bytes under another name: same entry; changed bytes: a new one
    copy = tmp_path / "copy.keras"
    copy.write_bytes(keras_files.keras.read_bytes())
    assert "freezing" not in cli("model", "inspect", copy).stderr
    assert list((cache_dir() / "frozen").iterdir()) == entries


def test_label_and_optimize_take_a_keras_file(keras_files, cli, tmp_path):
    from mobilebuild import defaults
    from mobilebuild.graphs import io

    image = defaults.sample_images_dir() / "one" / "one_0.png"
    r = cli("--json", "model", "label", keras_files.keras, "--image", image, "--top-k", "3")
    assert r.code == 0, r.stderr
    data = json.loads(r.stdout)
    assert (data["mean"], data["std"], data["input_size"]) == (127.5, 127.5, 16)
    out = tmp_path / "o.pb"
    r = cli("model", "optimize", keras_files.h5, "-o", out, "--tf-version", "1.1")
    assert r.code == 0, r.stderr
    assert io.detect_format(out) == io.GRAPHDEF


def test_tflite_of_a_keras_file(keras_files, cli, tmp_path):
    out = tmp_path / "m.tflite"
    r = cli("model", "tflite", keras_files.keras, "-o", out)
    assert r.code == 0, r.stderr
    assert out.read_bytes()[4:8] == b"TFL3"


def test_signature_flag(keras_files, cli):
    """Any command takes --signature (before or after the command); an unknown one lists those there are."""
    line = one_line_error(cli("model", "inspect", keras_files.savedmodel, "--signature", "predict"))
    assert "no signature 'predict'" in line and "serving_default" in line and "serve" in line
    r = cli("--json", "model", "inspect", keras_files.savedmodel, "--signature=serve")
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["frozen"]["signature"] == "serve"
    r = cli("--signature", "serve", "--json", "model", "inspect", keras_files.savedmodel)
    assert r.code == 0 and json.loads(r.stdout)["frozen"]["signature"] == "serve"


def test_global_value_options_are_hoisted():
    from mobilebuild.cli import hoist_global_flags

    assert hoist_global_flags(["model", "inspect", "sm", "--signature", "serve", "--json"]) == [
        "--signature", "serve", "--json", "model", "inspect", "sm"]
    assert hoist_global_flags(["model", "inspect", "sm", "--signature=x"]) == ["--signature=x", "model", "inspect", "sm"]


def test_normalization_layer_is_read_as_mean_std(tmp_path, cli):
    model = image_classifier(rescaling=None, normalization=(120.0, 3600.0), seed=5)
    path = tmp_path / "norm.keras"
    model.save(path)
    r = cli("--json", "model", "inspect", path)
    assert r.code == 0, r.stderr
    data = json.loads(r.stdout)
    assert (data["app"]["mean"], data["app"]["std"]) == (120.0, 60.0)
    assert data["frozen"]["normalisation_layers"][0]["layer"] == "Normalization"


def test_whole_mean_feeds_raw_pixels(keras_files, tmp_path):
    """The Android demo's IMAGE_MEAN is an int: a model normalising with 127.5 keeps its
    normalisation and the app feeds raw pixels (mean 0, std 1) — same numbers as Keras."""
    from mobilebuild.graphs import io
    from mobilebuild.graphs.prepare import prepare_for_app

    p = prepare_for_app(keras_files.keras, tmp_path / "app.pb", tf_version="1.1", whole_mean=True)
    assert (p.input_name, p.mean, p.std) == ("image", 0.0, 1.0)
    assert any("IMAGE_MEAN is an int" in n for n in p.notes)
    pixels = keras_files.pixels(2, seed=3)
    assert_close(run_graph(io.load_graph_def(p.path), {"image": pixels}, p.output_name), keras_files.model.predict(pixels, verbose=0))
    # without the constraint (iOS: float mean) the app feeds the normalised node
    q = prepare_for_app(keras_files.keras, tmp_path / "ios.pb", tf_version="1.1")
    assert (q.mean, q.std) == (127.5, 127.5) and re.search(r"/rescaling(_\d+)*/add$", q.input_name)


def test_whole_mean_on_a_decoding_graph_feeds_the_resized_pixels(tmp_path):
    """A retrain-shaped graph normalising with 127.5: cut after ResizeBilinear, feed raw pixels."""
    from helpers.graphs import build_retrain_graph
    from mobilebuild.graphs.prepare import prepare_for_app

    g = build_retrain_graph(tmp_path, size=24, classes=3)
    # rewrite the 128s into 127.5s (Sub by 127.5, Mul by 1/127.5)
    from mobilebuild.graphs import nodes as gn

    import tensorflow as tf

    nodes = gn.node_map(g.graph_def)
    for name, value in (("Sub", 127.5), ("Mul", 1 / 127.5)):
        const = nodes[gn.base_name(nodes[name].input[1])]
        const.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.float32(value)))
    path = tmp_path / "r127.pb"
    path.write_bytes(g.graph_def.SerializeToString())
    p = prepare_for_app(path, tmp_path / "app.pb", tf_version="1.0", whole_mean=True)
    assert (p.input_name, p.mean, p.std, p.input_size) == ("ResizeBilinear", 0.0, 1.0, 24)


# ---- bad input -----------------------------------------------------------------------------------


def test_keras_file_needing_custom_objects(tmp_path, cli):
    import keras

    @keras.saving.register_keras_serializable(package="mine")
    class Doubler(keras.layers.Layer):
        def call(self, x):
            return x * 2.0

    inp = keras.Input((8, 8, 3), name="image")
    model = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(Doubler()(inp))))
    path = tmp_path / "custom.keras"
    model.save(path)
    keras.saving.get_custom_objects().pop("mine>Doubler", None)
    line = one_line_error(cli("model", "inspect", path))
    assert "custom" in line and "Doubler" in line


def test_more_than_one_image_input(tmp_path, cli):
    import keras

    a, b = keras.Input((8, 8, 3), name="left"), keras.Input((8, 8, 3), name="right")
    x = keras.layers.Concatenate()([a, b])
    model = keras.Model([a, b], keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)))
    path = tmp_path / "two.keras"
    model.save(path)
    line = one_line_error(cli("model", "inspect", path))
    assert "2 image inputs" in line and "left" in line and "right" in line


def test_savedmodel_without_signatures(tmp_path, cli):
    import tensorflow as tf

    module = tf.Module()
    module.v = tf.Variable(1.0)
    path = tmp_path / "nosig"
    tf.saved_model.save(module, str(path))
    line = one_line_error(cli("model", "inspect", path))
    assert "has no signatures" in line


def test_h5_with_weights_only(keras_files, tmp_path, cli):
    path = tmp_path / "only.weights.h5"
    keras_files.model.save_weights(path)
    out = tmp_path / "o.pb"
    line = one_line_error(cli("model", "optimize", path, "-o", out))
    assert "weights only" in line or "does not load as a Keras model" in line
    assert not out.exists()


def test_cache_info_counts_frozen_models(keras_files, cli):
    assert cli("model", "inspect", keras_files.h5).code == 0
    r = cli("--json", "cache", "info", "frozen")
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["kinds"]["frozen"]["entries"] >= 1
