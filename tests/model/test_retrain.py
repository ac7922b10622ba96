"""`mobilebuild retrain`: a tiny locally made base (no download), a generated photo folder;
the output graph in retrain.py's shape, bottlenecks cached by content, the split rule, bad input."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers.graphs import one_line_error, run_graph
from helpers.keras_models import feature_extractor

COLOURS = {"Red Roses": (200, 40, 40), "green": (40, 190, 60), "Sky-Blue": (50, 70, 210)}
PREFIX = {"Red Roses": "red", "green": "green", "Sky-Blue": "blue"}
FAST = ["--how-many-training-steps", "150", "--learning-rate", "0.5", "--train-batch-size", "20",
        "--validation-percentage", "15", "--testing-percentage", "25"]


def _image_bytes(rgb, seed: int, fmt: str) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    arr = np.clip(np.array(rgb)[None, None, :] + rng.normal(0, 35, (40, 48, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


def make_photo_folder(root: Path, per_class: int = 14) -> Path:
    """Three colour classes (JPEG and PNG mixed, odd sizes: the graph resizes), folder names with
    capitals and punctuation (labels are lower-cased as retrain.py does)."""
    for k, (folder, rgb) in enumerate(COLOURS.items()):
        d = root / folder
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            fmt = "PNG" if i % 3 == 0 else "JPEG"
            (d / f"{PREFIX[folder]}{i}.{'png' if fmt == 'PNG' else 'jpg'}").write_bytes(_image_bytes(rgb, 100 * k + i, fmt))
    (root / "README.txt").write_text("files beside the class folders are not images of a class\n")
    return root


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory):
    path = tmp_path_factory.mktemp("base") / "tiny_base.keras"
    feature_extractor(size=32, features=16).save(path)
    return path


@pytest.fixture(scope="session")
def photos(tmp_path_factory):
    return make_photo_folder(tmp_path_factory.mktemp("photos") / "photos")


@pytest.fixture(scope="session")
def retrained(tmp_path_factory, tiny_base, photos):
    """One retrain run shared by the tests that only read its results."""
    from mobilebuild.cli import hoist_global_flags, run

    import contextlib

    out = tmp_path_factory.mktemp("retrained")
    args = ["--json", "retrain", "--image-dir", str(photos), "--base", str(tiny_base), "--output-graph", str(out / "retrained_graph.pb"),
            "--output-labels", str(out / "retrained_labels.txt"), "--bottleneck-dir", str(out / "bottlenecks"), *FAST,
            "--export", "tflite", "--export", "keras"]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = run(hoist_global_flags(args))
    assert code == 0, buf.getvalue()
    return out, json.loads(buf.getvalue()), args


def test_output_graph_has_retrain_py_shape(retrained):
    from mobilebuild.graphs import io as model_io
    from mobilebuild.graphs.inspect import app_info

    out, result, _ = retrained
    gd = model_io.load_graph_def(out / "retrained_graph.pb")
    nodes = {n.name: n for n in gd.node}
    assert nodes["DecodeJpeg/contents"].op == "Placeholder" and nodes["DecodeJpeg"].op == "DecodeJpeg"
    for name, op in (("Cast", "Cast"), ("ExpandDims", "ExpandDims"), ("ResizeBilinear", "ResizeBilinear"), ("Sub", "Sub"), ("Mul", "Mul"), ("final_result", "Softmax")):
        assert nodes[name].op == op, name
    assert [n.name for n in gd.node if n.op == "Placeholder"] == ["DecodeJpeg/contents"]
    app = app_info(gd)
    assert (app.input_name, app.output_name, app.input_size, app.mean, app.std, app.num_classes) == ("Mul", "final_result", 32, 127.5, 127.5, 3)
    # folder order as retrain.py sorts them (byte order: capitals first), names lower-cased
    assert (out / "retrained_labels.txt").read_text() == "red roses\nsky blue\ngreen\n"
    assert result["labels"] == ["red roses", "sky blue", "green"]


def test_accuracy_is_reported_and_real(retrained, photos):
    """The graph, run from JPEG/PNG bytes, classifies the held-out images as the report says."""
    from mobilebuild.graphs import io as model_io

    out, result, _ = retrained
    assert result["test_images"] > 0 and result["test_accuracy"] is not None
    assert result["test_accuracy"] >= 0.9, result
    gd = model_io.load_graph_def(out / "retrained_graph.pb")
    labels = result["labels"]
    correct = total = 0
    for folder in COLOURS:
        for image in sorted((photos / folder).iterdir()):
            probs = run_graph(gd, {"DecodeJpeg/contents": image.read_bytes()}, "final_result")
            correct += labels[int(np.argmax(probs))] == folder.lower().replace("-", " ")
            total += 1
    assert correct / total >= 0.9
    assert result["bottlenecks"]["computed"] == result["images"]["total"] == 42


def test_second_run_recomputes_nothing_and_rewrites_nothing(retrained, capsys):
    from helpers.cli import run_in_process

    out, first, args = retrained
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.is_file()}
    r = run_in_process(capsys, *args)
    assert r.code == 0, r.stderr
    again = json.loads(r.stdout)
    assert again["bottlenecks"]["computed"] == 0 and again["bottlenecks"]["cached"] == 42
    assert again["test_accuracy"] == first["test_accuracy"]
    for name in ("retrained_graph.pb", "retrained_labels.txt"):
        assert (out / name).stat().st_mtime_ns == before[name]


def test_a_changed_image_is_recomputed(tmp_path, tiny_base, photos, cli):
    folder = tmp_path / "photos"
    shutil.copytree(photos, folder)
    common = ["retrain", "--image-dir", folder, "--base", tiny_base, "--output-graph", tmp_path / "g.pb",
              "--output-labels", tmp_path / "l.txt", "--bottleneck-dir", tmp_path / "b", *FAST]
    assert cli(*common).code == 0
    (folder / "green" / "green1.jpg").write_bytes(_image_bytes((40, 190, 60), 999, "JPEG"))
    r = cli("--json", *common)
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["bottlenecks"]["computed"] == 1


def test_exports_compute_what_the_graph_computes(retrained, photos):
    import keras

    from mobilebuild.graphs import io as model_io
    from mobilebuild.graphs.tflite import TfliteRunner

    out, result, _ = retrained
    assert set(result["exports"]) == {"tflite", "keras"}
    image = sorted((photos / "green").iterdir())[1]
    gd = model_io.load_graph_def(out / "retrained_graph.pb")
    want = run_graph(gd, {"DecodeJpeg/contents": image.read_bytes()}, "final_result")
    resized = run_graph(gd, {"DecodeJpeg/contents": image.read_bytes()}, "ResizeBilinear")
    model = keras.models.load_model(out / "retrained_graph.keras", compile=False)
    np.testing.assert_allclose(model.predict(resized, verbose=0), want, atol=1e-5)
    lite = TfliteRunner(out / "retrained_graph.tflite")
    np.testing.assert_allclose(lite.run((resized - 127.5) / 127.5), want, atol=1e-4)


def test_split_follows_the_file_name_rule():
    from mobilebuild.graphs.retrain import which_set

    names = [f"photo{i}.jpg" for i in range(2000)]
    sets = [which_set(n, 10, 10) for n in names]
    share = {k: sets.count(k) / len(sets) for k in ("training", "validation", "testing")}
    assert 0.07 < share["validation"] < 0.13 and 0.07 < share["testing"] < 0.13
    # the same file name always lands in the same set, and _nohash_ variants go together
    assert [which_set(n, 10, 10) for n in names] == sets
    for i in range(50):
        assert which_set(f"speaker{i}_nohash_0.jpg", 10, 10) == which_set(f"speaker{i}_nohash_7.jpg", 10, 10) == which_set(f"speaker{i}", 10, 10)
    # more validation never moves a validation image elsewhere
    assert all(which_set(n, 20, 10) == "validation" for n, s in zip(names, sets) if s == "validation")


def test_label_rule():
    from mobilebuild.graphs.retrain import label_of

    assert label_of("Red Roses") == "red roses" and label_of("Sky-Blue") == "sky blue" and label_of("a__b") == "a b"


# ---- bad input -----------------------------------------------------------------------------------


def _bad(cli, tmp_path, folder, base, *extra):
    r = cli("retrain", "--image-dir", folder, "--base", base, "--output-graph", tmp_path / "out" / "g.pb",
            "--output-labels", tmp_path / "out" / "l.txt", "--bottleneck-dir", tmp_path / "b", *FAST, *extra)
    line = one_line_error(r)
    assert not (tmp_path / "out" / "g.pb").exists() and not (tmp_path / "out" / "l.txt").exists()
    assert [p.name for p in (tmp_path / "out").iterdir()] == []  # no temp files left either
    return line


@pytest.fixture
def folder(tmp_path, photos):
    d = tmp_path / "photos"
    shutil.copytree(photos, d)
    (tmp_path / "out").mkdir()
    return d


def test_one_class(folder, tmp_path, tiny_base, cli):
    for extra in ("green", "Sky-Blue"):
        shutil.rmtree(folder / extra)
    assert "only one class folder (Red Roses)" in _bad(cli, tmp_path, folder, tiny_base)


def test_empty_class(folder, tmp_path, tiny_base, cli):
    (folder / "empty").mkdir()
    assert "class folder 'empty' has no images" in _bad(cli, tmp_path, folder, tiny_base)


def test_non_image_file_is_refused_by_name(folder, tmp_path, tiny_base, cli):
    (folder / "green" / "notes.txt").write_text("not a photo")
    assert "not a JPEG or PNG image" in (line := _bad(cli, tmp_path, folder, tiny_base)) and "notes.txt" in line


def test_corrupt_jpeg_is_refused_by_name(folder, tmp_path, tiny_base, cli):
    good = (folder / "green" / "green1.jpg").read_bytes()
    (folder / "green" / "green1.jpg").write_bytes(good[: len(good) // 3])
    line = _bad(cli, tmp_path, folder, tiny_base)
    assert "cannot decode" in line and "green1.jpg" in line


def test_bottleneck_cache_of_another_base(folder, tmp_path, tiny_base, cli):
    other = tmp_path / "other.keras"
    feature_extractor(size=32, features=16, seed=99).save(other)
    r = cli("retrain", "--image-dir", folder, "--base", other, "--output-graph", tmp_path / "o1.pb",
            "--output-labels", tmp_path / "o1.txt", "--bottleneck-dir", tmp_path / "b", *FAST)
    assert r.code == 0, r.stderr
    assert "written by another base" in _bad(cli, tmp_path, folder, tiny_base)


def test_unknown_base_and_bad_percentages(folder, tmp_path, cli):
    assert "unknown base 'resnet9000'" in _bad(cli, tmp_path, folder, "resnet9000")
    assert "leaves no images for training" in _bad(cli, tmp_path, folder, "resnet9000", "--testing-percentage", "50", "--validation-percentage", "50")


def test_named_base_weights_are_verified(folder, tmp_path, cli, monkeypatch):
    """The base's weights come through the downloader with the published digest: a source
    serving other bytes is refused (and nothing is written)."""
    from helpers.httpserver import FaultyServer

    with FaultyServer() as srv:
        srv.add("/keras-applications/tiny_no_top.h5", b"not the weights" * 100)
        table = tmp_path / "bases.toml"
        table.write_text(
            '[tiny]\napplication = "MobileNetV2"\nsize = 32\nmean = 127.5\nstd = 127.5\n'
            f'url = "{srv.url("/keras-applications/tiny_no_top.h5")}"\nbytes = 1500\nmd5 = "{"0" * 32}"\n'
        )
        monkeypatch.setenv("MOBILEBUILD_RETRAIN_BASES", str(table))
        monkeypatch.setenv("MOBILEBUILD_RETRIES", "1")
        line = _bad(cli, tmp_path, folder, "tiny")
    assert "md5" in line or "tiny_no_top.h5" in line


def test_a_classifier_as_base_gives_its_last_layer_input(photos, tmp_path, cli):
    """The built-in digits classifier (a frozen .pb normalising with Sub/Mul itself) as base:
    its bottleneck is the input of its final MatMul, its own mean/std move into the new graph."""
    from mobilebuild import defaults
    from mobilebuild.graphs import io as model_io, nodes as gn

    r = cli("--json", "retrain", "--image-dir", photos, "--base", defaults.default_model(), "--output-graph", tmp_path / "g.pb",
            "--output-labels", tmp_path / "l.txt", "--bottleneck-dir", tmp_path / "b", *FAST)
    assert r.code == 0, r.stderr
    assert "its bottleneck is 'AvgPool'" in r.stderr
    data = json.loads(r.stdout)
    assert (data["base"]["size"], data["base"]["mean"], data["base"]["std"]) == (32, 128.0, 128.0)
    gd = model_io.load_graph_def(tmp_path / "g.pb")
    nodes = gn.node_map(gd)
    assert "base/final_result" not in nodes and nodes["final_result"].op == "Softmax"
    assert gn.tensor_specs(gd)["bottleneck"][0] == [1, 64]
