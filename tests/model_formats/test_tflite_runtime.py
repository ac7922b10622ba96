"""TFLite runtime op versions: the flatbuffer reader (checked against LiteRT's own generated
schema reader), the bundled per-tag tables, `model check --tflite-runtime`, `model inspect` on a
.tflite, and `model tflite --tf-version` converting into what an old runtime has (or refusing,
the op and version named, nothing written)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import tflite_models as TM
from mobilebuild.errors import ModelError, UserError
from mobilebuild.graphs import tflite, tflite_ops


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Real conversions of one classifier: float, dynamic, int8 and uint8 (plus a MEAN variant)."""
    base = tmp_path_factory.mktemp("tflrt")
    images = TM.write_images(base / "images")
    pb = TM.build_classifier_graph(base, "avg")
    out = {"pb": pb, "images": images, "mean_pb": TM.build_classifier_graph(base, "mean")}
    for mode in tflite.QUANTIZE_MODES:
        target = base / f"{mode}.tflite"
        tflite.convert(pb, target, mode, images if mode in tflite.CALIBRATED_MODES else None, mean=127.5, std=127.5)
        out[mode] = target
    return out


def _with_litert_schema(path):
    """(op name, version) pairs and input (type, scale, zero point) as LiteRT's generated reader sees them."""
    from ai_edge_litert import schema_py_generated as S

    names = {v: k for k, v in vars(S.BuiltinOperator).items() if not k.startswith("_")}
    m = S.Model.GetRootAsModel(path.read_bytes(), 0)
    ops = []
    for i in range(m.OperatorCodesLength()):
        oc = m.OperatorCodes(i)
        ops.append((names[max(oc.DeprecatedBuiltinCode(), oc.BuiltinCode())], oc.Version()))
    sg = m.Subgraphs(0)
    t = sg.Tensors(sg.Inputs(0))
    q = t.Quantization()
    scale = q.Scale(0) if q is not None and q.ScaleLength() == 1 else None
    zero = q.ZeroPoint(0) if q is not None and q.ZeroPointLength() == 1 else None
    return ops, (t.Type(), scale, zero), list(t.ShapeAsNumpy())


@pytest.mark.parametrize("mode", tflite.QUANTIZE_MODES)
def test_reader_agrees_with_litert_schema(made, mode):
    model = tflite_ops.read_tflite(made[mode])
    ops, (ttype, scale, zero), shape = _with_litert_schema(made[mode])
    assert [(c.name, c.version) for c in model.op_codes] == ops
    inp = model.inputs[0]
    assert inp.shape == shape == [1, TM.SIZE, TM.SIZE, 3]
    assert inp.dtype == tflite_ops.tensor_type_name(ttype)
    assert inp.scale == (pytest.approx(scale) if scale is not None else None)
    assert inp.zero_point == zero
    assert sum(model.op_counts.values()) >= len(model.op_codes)


def test_what_each_mode_writes(made):
    versions = {m: {c.name: c.version for c in tflite_ops.read_tflite(made[m]).op_codes} for m in tflite.QUANTIZE_MODES}
    assert set(versions["none"].values()) == {1} and set(versions["uint8"].values()) == {1}
    assert versions["int8"]["CONV_2D"] >= 3 and "QUANTIZE" in versions["int8"]
    assert versions["dynamic"]["CONV_2D"] >= 2 and versions["dynamic"]["FULLY_CONNECTED"] >= 3
    u8 = tflite_ops.read_tflite(made["uint8"])
    assert u8.inputs[0].dtype == "UINT8" and u8.outputs[0].dtype == "UINT8"
    feed = u8.input_feed()
    # raw pixels p reach the model as (p - 127.5) / 127.5: zero point 128 (rounded), scale 1/127.5
    assert feed["zero_point"] == 128 and feed["scale"] == pytest.approx(1 / 127.5, rel=1e-4)


def test_uint8_model_is_as_close_to_the_float_one_as_int8(made):
    """The ranges measured for uint8 are as good as the converter's own int8 calibration on the
    same images (random weights give a flat softmax, so absolute errors say little alone)."""
    x = np.random.default_rng(9).uniform(-1, 1, (24, TM.SIZE, TM.SIZE, 3)).astype(np.float32)
    ref = tflite.TfliteRunner(made["none"]).run(x)
    err = {m: np.abs(tflite.TfliteRunner(made[m]).run(x) - ref).mean() for m in ("uint8", "int8")}
    assert err["uint8"] <= 1.5 * err["int8"] + 1e-3, err
    assert err["uint8"] < 0.25 * ref.mean()


def test_bundled_tables():
    tags = tflite_ops.bundled_runtimes()
    assert tags[0] == "v1.5.0" and "v1.13.1" in tags and "v2.5.0" in tags
    known = set(tflite_ops._schema()["builtin_operators"])
    for tag in tags:
        rt = tflite_ops.load_runtime(tag)
        assert set(rt.ops) <= known, tag
    assert "MEAN" not in tflite_ops.load_runtime("1.5").ops
    assert "RELU_N1_TO_1" in tflite_ops.load_runtime("1.5").ops  # spelled RELU1 in the 1.5 schema
    assert tflite_ops.load_runtime("2.5").ops["FULLY_CONNECTED"] == (1, 9)
    assert tflite_ops.load_runtime("1.13").tag == "v1.13.1"
    later = tflite_ops.load_runtime("2.15")
    assert later.tag == tags[-1] and "newer" in later.note
    with pytest.raises(UserError, match="no TFLite runtime in TensorFlow 1.4"):
        tflite_ops.load_runtime("1.4")


def test_check_names_every_missing_version(made):
    dyn = tflite_ops.read_tflite(made["dynamic"])
    problems = tflite_ops.check_model(dyn, tflite_ops.load_runtime("1.13"))
    text = [str(p) for p in problems]
    conv = next(c.version for c in dyn.op_codes if c.name == "CONV_2D")
    assert f"CONV_2D version {conv}: the TFLite runtime of TF 1.13.1 has CONV_2D version 1 only" in text
    assert all(p.kind == tflite_ops.NEWER_VERSION for p in problems)
    assert not tflite_ops.check_model(tflite_ops.read_tflite(made["uint8"]), tflite_ops.load_runtime("1.5"))
    assert not tflite_ops.check_model(tflite_ops.read_tflite(made["none"]), tflite_ops.load_runtime("1.5"))
    int8 = tflite_ops.check_model(tflite_ops.read_tflite(made["int8"]), tflite_ops.load_runtime("1.5"))
    assert any(p.op == "QUANTIZE" and p.kind == tflite_ops.UNKNOWN_OP for p in int8)


def test_damaged_file_is_one_error(made, tmp_path):
    bad = tmp_path / "cut.tflite"
    bad.write_bytes(made["none"].read_bytes()[:200])
    with pytest.raises(ModelError, match="not a readable TFLite model"):
        tflite_ops.read_tflite(bad)


def test_convert_for_an_old_runtime(made, tmp_path):
    # float on 1.5: fits as is
    r = tflite.convert(made["pb"], tmp_path / "f.tflite", "none", tf_version="1.5", mean=127.5, std=127.5)
    assert r.tflite_runtime == "v1.5.0" and r.settings == {}
    # uint8 on 1.5: version-1 kernels
    r = tflite.convert(made["pb"], tmp_path / "u.tflite", "uint8", made["images"], tf_version="1.5", mean=127.5, std=127.5)
    assert all(op.endswith(" v1") for op in r.operators)
    # MEAN has no kernel in 1.5: refused, nothing written
    target = tmp_path / "m.tflite"
    with pytest.raises(ModelError, match="MEAN version 1: the TFLite runtime of TF 1.5.0 has no MEAN kernel"):
        tflite.convert(made["mean_pb"], target, "none", tf_version="1.5")
    assert not target.exists()
    # int8 on 1.13: refused with the ops named; the hint points at uint8 / none
    with pytest.raises(ModelError) as err:
        tflite.convert(made["pb"], target, "int8", made["images"], tf_version="1.13", mean=127.5, std=127.5)
    assert "QUANTIZE version 1" in err.value.message and "CONV_2D version 3" in err.value.message
    assert "--quantize uint8" in err.value.hint
    assert not target.exists()


def test_dynamic_falls_back_to_older_kernels_where_they_fit(made, tmp_path):
    r = tflite.convert(made["pb"], tmp_path / "d.tflite", "dynamic", tf_version="2.5")
    ops = dict(op.rsplit(" v", 1) for op in r.operators)
    assert r.settings, "the default dynamic conversion writes FULLY_CONNECTED 12: older settings were needed"
    assert int(ops["FULLY_CONNECTED"]) <= 9
    assert not tflite_ops.check_model(tflite_ops.read_tflite(r.out), tflite_ops.load_runtime("2.5"))


def test_cli_check_and_inspect(made, cli):
    r = cli("model", "check", made["dynamic"], "--tflite-runtime", "1.13")
    assert r.code == 1
    assert "CONV_2D version" in r.stdout and "error:" in r.stderr and "hint:" in r.stderr
    r = cli("--json", "model", "check", made["uint8"], "--tf-version", "1.5")
    assert r.code == 0, r.output
    data = json.loads(r.stdout)
    assert data["loads"] is True and data["tflite_runtime"] == "v1.5.0"
    r = cli("model", "check", made["pb"], "--tflite-runtime", "1.13")
    assert r.code == 1 and "--tflite-runtime checks a .tflite" in r.stderr
    r = cli("--json", "model", "inspect", made["uint8"], "--tf-version", "1.13")
    assert r.code == 0, r.output
    data = json.loads(r.stdout)
    ops = {(o["op"], o["version"]) for o in data["tflite"]["operators"]}
    assert ("CONV_2D", 1) in ops and ("SOFTMAX", 1) in ops
    assert data["tflite"]["input_feed"]["zero_point"] == 128
    assert data["tflite"]["runtime"]["loads"] is True
    r = cli("model", "inspect", made["int8"], "--tf-version", "1.13")
    assert r.code == 0
    assert "would NOT load" in r.stdout and "QUANTIZE version 1" in r.stdout


def test_cli_tflite_tf_version(made, cli, tmp_path):
    out = tmp_path / "cli.tflite"
    r = cli("model", "tflite", made["pb"], "-o", out, "--quantize", "int8", "--representative-images", made["images"],
            "--tf-version", "1.13", "--mean", "127.5", "--std", "127.5")
    assert r.code == 1 and "CONV_2D version 3" in r.stderr and not out.exists()
    r = cli("model", "tflite", made["pb"], "-o", out, "--tf-version", "1.4")
    assert r.code == 1 and "no TFLite runtime in TensorFlow 1.4" in r.stderr


def test_uint8_of_a_trained_model_with_batch_norm_and_its_own_normalisation(tmp_path):
    """The built-in digits model (Sub/Mul normalisation, Conv2D + FusedBatchNorm + Relu): its
    uint8 copy feeds raw pixels (the normalisation becomes the input's scale and zero point),
    folds batch norm and Relu into the convolutions (no separate uint8 RELU, no requantize op:
    loads in 1.7), and classifies the shipped sample images as the float model does."""
    from PIL import Image

    from mobilebuild import defaults

    out = tmp_path / "digits_uint8.tflite"
    r = tflite.convert(defaults.default_model(), out, "uint8", defaults.sample_images_dir(), tf_version="1.7")
    assert all(op.endswith(" v1") for op in r.operators) and "RELU v1" not in r.operators
    model = tflite_ops.read_tflite(out)
    assert model.input_feed()["zero_point"] == 128 and model.input_feed()["std"] == pytest.approx(128.0)
    labels = defaults.default_labels().read_text().split()
    xs, ys = [], []
    for d in sorted(defaults.sample_images_dir().iterdir()):
        for f in sorted(d.iterdir()):
            xs.append(np.asarray(Image.open(f).convert("RGB").resize((32, 32)), dtype=np.float32))
            ys.append(labels.index(d.name))
    x, y = np.stack(xs), np.array(ys)
    got = tflite.TfliteRunner(out).run((x - 128.0) / 128.0)  # real values of the uint8 input = raw pixels
    assert np.mean(got.argmax(1) == y) >= 0.9
