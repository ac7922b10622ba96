"""`android` / `ios` take a Keras file or a SavedModel directly: frozen -> cut -> downgraded -> app.
The Android demo's IMAGE_MEAN is an int: a model normalising with 127.5 keeps that inside its
graph and the app feeds raw pixels (mean 0, std 1); iOS's float mean takes 127.5 as it is."""

from __future__ import annotations

import pytest

from helpers.graphs import assert_close, run_graph
from helpers.keras_models import image_classifier, save_all
from helpers.tftrees import ACTIVITY, ANDROID_ASSETS, ios_camera_dir, tree_digest


@pytest.fixture(scope="session")
def keras_app_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("kerasapp")
    files = save_all(image_classifier(size=16, classes=3), d, name="flowers")
    labels = d / "flowers_labels.txt"
    labels.write_text("daisy\nrose\ntulip\n")
    return files, labels


def test_android_with_a_keras_file(cli, tf_tree, sdk, ndk, keras_app_model):
    from mobilebuild.graphs import io

    files, labels = keras_app_model
    tree = tf_tree("1.1")
    before = tree_digest(tree)
    r = cli("android", "--generate-only", "--tf-src", tree, "--sdk", sdk, "--ndk", ndk, "--model", files.keras, "--labels", labels)
    assert r.code == 0, r.stderr
    text = (tree / ACTIVITY).read_text()
    assert "  private static final int IMAGE_MEAN = 0;\n" in text
    assert "  private static final float IMAGE_STD = 1.0f;\n" in text
    assert '  private static final String INPUT_NAME = "image";\n' in text
    assert '  private static final String OUTPUT_NAME = "probs";\n' in text
    assert '  private static final String MODEL_FILE = "file:///android_asset/flowers.pb";\n' in text
    assert "IMAGE_MEAN is an int" in r.stderr and "raw pixels" in r.stderr
    asset = tree / ANDROID_ASSETS / "flowers.pb"
    assert io.detect_format(asset) == io.GRAPHDEF and not (tree / ANDROID_ASSETS / "flowers.keras").exists()
    # the app's graph from raw pixels == the Keras model
    pixels = files.pixels(2, seed=9)
    assert_close(run_graph(io.load_graph_def(asset), {"image": pixels}, "probs"), files.model.predict(pixels, verbose=0))
    assert cli("restore", "--tf-src", tree).code == 0
    assert tree_digest(tree) == before


def test_ios_with_a_savedmodel_directory(cli, tf_tree, keras_app_model):
    files, labels = keras_app_model
    tree = tf_tree("1.3")
    r = cli("ios", "--tf-src", tree, "--model", files.savedmodel, "--labels", labels)
    assert r.code == 0, r.stderr
    camera = tree / ios_camera_dir("1.3")
    text = (camera / "CameraExampleViewController.mm").read_text()
    assert 'static NSString* model_file_name = @"flowers_savedmodel";\n' in text
    assert 'static NSString* model_file_type = @"pb";\n' in text
    assert "const float input_mean = 127.5f;\nconst float input_std = 127.5f;\n" in text
    assert 'output_layer_name = "output_0";' in text
    assert (camera / "data" / "flowers_savedmodel.pb").is_file()


def test_android_with_a_directory_that_is_no_savedmodel(cli, tf_tree, sdk, ndk, keras_app_model, tmp_path):
    from helpers.graphs import one_line_error

    _, labels = keras_app_model
    tree = tf_tree("1.1")
    before = tree_digest(tree)
    (tmp_path / "empty").mkdir()
    line = one_line_error(cli("android", "--generate-only", "--tf-src", tree, "--sdk", sdk, "--ndk", ndk, "--model", tmp_path / "empty", "--labels", labels))
    assert "not a SavedModel" in line
    assert tree_digest(tree) == before
