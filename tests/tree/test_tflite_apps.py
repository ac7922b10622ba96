"""`android --app tflite` and `ios --app tflite` on trees shaped like the real tags (1.5, 1.7,
1.13, 2.0, 2.5): a custom float and a custom quantized model go in; the BUILD takes our files;
every model written loads in the app's TFLite runtime (op versions checked against the table);
a model that cannot fit is refused before the tree is touched; restore is byte-exact and a
second run rewrites nothing."""

from __future__ import annotations

import json

import pytest

from helpers import tflite_models as TM
from helpers import tflitetrees as TT
from helpers.tftrees import make_ndk, make_sdk, tree_digest, tree_mtimes
from mobilebuild.graphs import tflite, tflite_ops

VERSIONS = ("1.5", "1.7", "1.13", "2.0", "2.5")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    base = tmp_path_factory.mktemp("tflapp")
    pb = TM.build_classifier_graph(base, "avg", name="flowers.pb")
    images = TM.write_images(base / "images")
    labels = TM.write_labels(base / "flowers_labels.txt")
    dynamic = base / "flowers_dynamic.tflite"
    tflite.convert(pb, dynamic, "dynamic")
    quant = base / "flowers_quant.tflite"
    tflite.convert(pb, quant, "uint8", images, mean=127.5, std=127.5)
    return {"pb": pb, "images": images, "labels": labels, "dynamic": dynamic, "quant": quant}


@pytest.fixture
def sdk_ndk(tmp_path):
    return (make_sdk(tmp_path / "sdk", platforms=(23,), build_tools=("25.0.2",)), make_ndk(tmp_path / "ndk"))


def _android(cli, tree, sdk_ndk, *args):
    sdk, ndk = sdk_ndk
    return cli("android", "--generate-only", "--tf-src", tree, "--sdk", sdk, "--ndk", ndk, *args)


def _model_args(inputs, kind):
    args = ["--model", inputs["pb"], "--labels", inputs["labels"]]
    if kind == "quant":
        args += ["--quantize", "uint8", "--representative-images", inputs["images"]]
    return args


@pytest.mark.parametrize("kind", ["float", "quant"])
@pytest.mark.parametrize("version", VERSIONS)
def test_android_tflite_demo_takes_a_custom_model(cli, tmp_path, sdk_ndk, inputs, version, kind):
    tree = TT.make_tflite_tree(tmp_path / "tf", version)
    before = tree_digest(tree)
    main, java = TT.demo_main(version), TT.java_dir(version)
    r = _android(cli, tree, sdk_ndk, "--app", "tflite", *_model_args(inputs, kind))
    if version == "1.5" and kind == "float":
        # 1.5's only classifier feeds uint8 pixels: a float model is refused, nothing written
        assert r.code == 1 and "feeds uint8 pixels" in r.stderr and "--quantize uint8" in r.stderr
        assert tree_digest(tree) == before
        return
    assert r.code == 0, r.stderr
    build = (tree / main / "BUILD").read_text()
    assert '        "flowers.tflite",\n        "flowers_labels.txt",\n    ],\n' in build
    assert "@tflite_" not in build and "assets/BUILD" not in build  # nothing from the network
    assert build.count("assets = [") == 1 and 'name = "TfLiteCameraDemo"' in build
    model = tree / main / "flowers.tflite"
    assert (tree / main / "flowers_labels.txt").read_bytes() == inputs["labels"].read_bytes()
    info = tflite_ops.read_tflite(model)
    assert not tflite_ops.check_model(info, tflite_ops.load_runtime(version))
    assert info.quantized_input == (kind == "quant" or version == "1.5")
    if version == "1.5":
        text = (tree / java / "ImageClassifier.java").read_text()
        assert '  private static final String MODEL_PATH = "flowers.tflite";\n' in text
        assert '  private static final String LABEL_PATH = "flowers_labels.txt";\n' in text
        assert "  static final int DIM_IMG_SIZE_X = 24;\n  static final int DIM_IMG_SIZE_Y = 24;\n" in text
    else:
        chosen = {"quant": "ImageClassifierQuantizedMobileNet",
                  "float": "ImageClassifierFloatMobileNet" if version in ("2.0", "2.5") else "ImageClassifierFloatInception"}[kind]
        text = (tree / java / f"{chosen}.java").read_text()
        assert '    return "flowers.tflite";\n' in text and '    return "flowers_labels.txt";\n' in text
        assert text.count("    return 24;\n") == 2
        if kind == "float" and version in ("2.0", "2.5"):
            assert "  private static final float IMAGE_MEAN = 127.5f;\n" in text
        if kind == "float" and version in ("1.7", "1.13"):
            # FloatInception's int IMAGE_MEAN: an unknown normalisation gets the 128 it can hold
            assert "  private static final int IMAGE_MEAN = 128;\n" in text
        fragment = (tree / java / "Camera2BasicFragment.java").read_text()
        constructed = [line.strip() for line in fragment.splitlines() if "= new ImageClassifier" in line]
        assert constructed and all(f"new {chosen}(getActivity())" in line for line in constructed)
        assert len(constructed) == (2 if version in ("2.0", "2.5") else 1)

    mtimes = tree_mtimes(tree)
    r = _android(cli, tree, sdk_ndk, "--app", "tflite", *_model_args(inputs, kind))
    assert r.code == 0 and "nothing rewritten" in r.stderr, r.stderr
    assert tree_mtimes(tree) == mtimes
    assert cli("restore", "--tf-src", tree).code == 0
    assert tree_digest(tree) == before


def test_a_model_the_runtime_cannot_load_is_refused_before_the_tree_is_touched(cli, tmp_path, sdk_ndk, inputs):
    tree = TT.make_tflite_tree(tmp_path / "tf", "2.5")
    before = tree_digest(tree)
    # today's dynamic-range quantization writes FULLY_CONNECTED 12; TF 2.5 has up to 9
    r = _android(cli, tree, sdk_ndk, "--model", inputs["dynamic"], "--labels", inputs["labels"])
    assert r.code == 1
    assert "FULLY_CONNECTED version 12: the TFLite runtime of TF 2.5.0 has FULLY_CONNECTED versions 1-9 only" in r.stderr
    assert tree_digest(tree) == before
    # int8 cannot be made with older kernels for 1.13: refused with the ops named
    tree13 = TT.make_tflite_tree(tmp_path / "tf13", "1.13")
    before13 = tree_digest(tree13)
    r = _android(cli, tree13, sdk_ndk, "--app", "tflite", "--model", inputs["pb"], "--labels", inputs["labels"],
                 "--quantize", "int8", "--representative-images", inputs["images"])
    assert r.code == 1 and "CONV_2D version 3" in r.stderr and "--quantize uint8" in r.stderr
    assert tree_digest(tree13) == before13


def test_a_quantized_tflite_goes_in_as_it_is_and_tflite_is_the_default_app(cli, tmp_path, sdk_ndk, inputs):
    tree = TT.make_tflite_tree(tmp_path / "tf", "1.13")
    r = _android(cli, tree, sdk_ndk, "--model", inputs["quant"], "--labels", inputs["labels"], "--json")
    assert r.code == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["app"] == "tflite" and data["classifier"] == "ImageClassifierQuantizedMobileNet"
    assert data["model"]["quantized"] and data["model"]["tflite_runtime"] == "v1.13.1"
    assert (tree / TT.demo_main("1.13") / "flowers_quant.tflite").read_bytes() == inputs["quant"].read_bytes()
    # a float .tflite records no normalisation: --mean/--std are asked for, nothing is written
    float_model = tmp_path / "f.tflite"
    tflite.convert(inputs["pb"], float_model)
    before = tree_digest(tree)
    r = _android(cli, tree, sdk_ndk, "--model", float_model, "--labels", inputs["labels"])
    assert r.code == 1 and "--mean and --std" in r.stderr
    assert tree_digest(tree) == before


def test_dry_run_changes_nothing_and_2_4_plus_defaults_to_tflite(cli, tmp_path, sdk_ndk, inputs):
    tree = TT.make_tflite_tree(tmp_path / "tf", "2.5")
    before = tree_digest(tree)
    r = _android(cli, tree, sdk_ndk, "--dry-run", "--model", inputs["pb"], "--labels", inputs["labels"])
    assert r.code == 0, r.stderr
    assert '+        "flowers.tflite",' in r.stdout and "copy " in r.stdout
    assert tree_digest(tree) == before


IOS_VERSIONS = ("1.7", "1.13", "2.0", "2.5")


@pytest.mark.parametrize("kind", ["float", "quant"])
@pytest.mark.parametrize("version", IOS_VERSIONS)
def test_ios_tflite_example(cli, tmp_path, inputs, version, kind):
    tree = TT.make_tflite_tree(tmp_path / "tf", version)
    before = tree_digest(tree)
    cam = TT.ios_dir(version)
    r = cli("--json", "ios", "--app", "tflite", "--tf-src", tree, *_model_args(inputs, kind))
    assert r.code == 0, r.stderr
    data = json.loads(r.stdout)
    text = (tree / cam / "CameraExampleViewController.mm").read_text()
    model = tree / cam / "data" / "flowers.tflite"
    info = tflite_ops.read_tflite(model)
    runtime = {"1.7": "1.13.1", "1.13": "1.12.0", "2.0": "1.13.1", "2.5": "1.13.1"}[version]
    assert data["model"]["tflite_runtime"] == tflite_ops.load_runtime(runtime).tag  # the Podfile's pod
    assert not tflite_ops.check_model(info, tflite_ops.load_runtime(runtime))
    assert (tree / cam / "data" / "flowers_labels.txt").exists()
    assert 'model_file_type = @"tflite";' in text and 'labels_file_name = @"flowers_labels";' in text
    assert "wanted_input_width = 24;" in text and "wanted_input_channels = 3;" in text
    # the interpreter's input is resized to the model's shape, not the stock 224
    assert "    std::vector<int> sizes = {1, 24, 24, 3};\n" in text and "224" not in text
    if version == "1.7":
        assert 'static NSString* model_file_name = @"flowers";' in text
    else:
        # the GPU branch names a float model (the GPU delegate runs no other), the other ours
        gpu_name = "flowers_float" if kind == "quant" else "flowers"
        assert f'#if TFLITE_USE_GPU_DELEGATE\n// GPU Delegate only supports float model now.\nNSString* model_file_name = @"{gpu_name}";\n#else\nNSString* model_file_name = @"flowers";\n#endif' in text
        if kind == "quant":
            gpu_model = tflite_ops.read_tflite(tree / cam / "data" / "flowers_float.tflite")
            assert gpu_model.inputs[0].dtype == "FLOAT32"
            assert not tflite_ops.check_model(gpu_model, tflite_ops.load_runtime(runtime))
        assert "#if TFLITE_USE_GPU_DELEGATE" in text and "#else" in text
        assert 'const std::string input_layer_name = "input";' in text
        assert 'const std::string output_layer_name = "output";' in text
        assert "const float input_mean = " in text
    mtimes = tree_mtimes(tree)
    r = cli("ios", "--app", "tflite", "--tf-src", tree, *_model_args(inputs, kind))
    assert r.code == 0 and "nothing rewritten" in r.stderr
    assert tree_mtimes(tree) == mtimes
    assert cli("restore", "--tf-src", tree).code == 0
    assert tree_digest(tree) == before


def test_app_choice_errors_and_ios_copy(cli, tmp_path, sdk_ndk, inputs):
    from helpers.tftrees import make_tf_tree

    old = make_tf_tree(tmp_path / "tf14", "1.4")
    r = _android(cli, old, sdk_ndk, "--app", "tflite")
    assert r.code == 1 and "no TFLite demo apps" in r.stderr and "ship from TensorFlow 1.5" in r.stderr
    tree = TT.make_tflite_tree(tmp_path / "tf", "2.0")
    before = tree_digest(tree)
    r = _android(cli, tree, sdk_ndk, "--app", "tflight")
    assert r.code == 1 and "unknown --app 'tflight'" in r.stderr
    r = _android(cli, tree, sdk_ndk, "--app", "tflite", "--quantize", "eightbit")
    assert r.code == 1 and "unknown --quantize value 'eightbit'" in r.stderr
    # --out: a patched copy of the iOS example; the tree stays as it is
    out = tmp_path / "MyCamera"
    r = cli("ios", "--app", "tflite", "--tf-src", tree, "--out", out, "--model", inputs["pb"], "--labels", inputs["labels"])
    assert r.code == 0, r.stderr
    assert 'NSString* model_file_name = @"flowers";' in (out / "CameraExampleViewController.mm").read_text()
    assert (out / "data" / "flowers.tflite").is_file() and (out / "Podfile").is_file()
    assert tree_digest(tree) == before
