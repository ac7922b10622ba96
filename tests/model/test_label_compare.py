"""`model label` and `model compare` on the built-in model, real images, all formats."""

from __future__ import annotations

import json
import shutil

import pytest

from helpers.graphs import jpeg_bytes, one_line_error


def test_label_default_model_no_arguments(cli):
    r = cli("model", "label")
    assert r.code == 0, r.output
    blocks = [b for b in r.stdout.split("\n") if b.endswith(".png")]
    assert len(blocks) == 10
    # the first prediction after each image line is that image's class folder most of the time
    lines = r.stdout.splitlines()
    right = 0
    for i, line in enumerate(lines):
        if line.endswith(".png"):
            truth = line.split("/")[-2]
            right += lines[i + 1].split()[-1] == truth
    assert right >= 9


def test_label_json_top_k_and_labels(cli, default_graph):
    from mobilebuild import defaults

    img = defaults.sample_images_dir() / "seven" / "seven_0.png"
    r = cli("--json", "model", "label", default_graph.path, "--image", img, "--top-k", "3")
    assert r.code == 0, r.output
    data = json.loads(r.stdout)
    assert data["input_name"] == "Mul" and data["mean"] == 128.0 and data["labels"].endswith("labels.txt")
    preds = data["results"][0]["predictions"]
    assert len(preds) == 3 and preds[0]["label"] == "seven"
    assert preds[0]["score"] >= preds[1]["score"] >= preds[2]["score"]


def test_label_feeding_raw_input_gives_same_answer(cli, default_graph):
    from mobilebuild import defaults

    img = defaults.sample_images_dir() / "four" / "four_1.png"
    a = json.loads(cli("--json", "model", "label", default_graph.path, "-i", img).stdout)
    b = json.loads(cli("--json", "model", "label", default_graph.path, "-i", img, "--input-name", "input").stdout)
    assert b["mean"] == 0.0 and b["std"] == 1.0
    pa, pb = a["results"][0]["predictions"], b["results"][0]["predictions"]
    assert [p["index"] for p in pa] == [p["index"] for p in pb]
    assert abs(pa[0]["score"] - pb[0]["score"]) < 1e-5


def test_label_retrain_graph_jpeg(cli, retrain, tmp_path):
    img = tmp_path / "photo.jpg"
    img.write_bytes(jpeg_bytes(80, seed=3))
    labels = tmp_path / "retrained_labels.txt"
    labels.write_text("daisy\ndandelion\nroses\nsunflowers\ntulips\n")
    r = cli("--json", "model", "label", retrain.path, "--image", img, "--labels", labels)
    assert r.code == 0, r.output
    data = json.loads(r.stdout)
    assert data["input_name"] == "Mul" and data["input_size"] == 64
    assert {p["label"] for p in data["results"][0]["predictions"]} == {"daisy", "dandelion", "roses", "sunflowers", "tulips"}
    assert abs(sum(p["score"] for p in data["results"][0]["predictions"]) - 1.0) < 1e-4


def test_label_labels_mismatch_and_bad_image(cli, default_graph, tmp_path):
    from mobilebuild import defaults

    img = defaults.sample_images_dir() / "one" / "one_0.png"
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\n")
    line = one_line_error(cli("model", "label", default_graph.path, "--image", img, "--labels", labels))
    assert "has 3 lines but the model outputs 10 classes" in line
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    line = one_line_error(cli("model", "label", default_graph.path, "--image", bad))
    assert "cannot decode image" in line
    line = one_line_error(cli("model", "label", default_graph.path, "--image", tmp_path / "missing.png"))
    assert "image not found" in line
    line = one_line_error(cli("model", "label", default_graph.path, "--image", tmp_path))
    assert "is a directory" in line


def test_label_plain_graph_needs_mean_std(cli, keras3, tmp_path):
    from mobilebuild import defaults

    img = defaults.sample_images_dir() / "one" / "one_0.png"
    r = cli("model", "label", keras3.path, "--image", img)
    one_line_error(r)
    assert "--mean" in r.stderr
    r = cli("--json", "model", "label", keras3.path, "--image", img, "--mean", "127.5", "--std", "127.5")
    assert r.code == 0, r.output
    assert len(json.loads(r.stdout)["results"][0]["predictions"]) == 4


def test_compare_no_arguments_is_default_vs_eightbit(cli):
    r = cli("--json", "model", "compare")
    assert r.code == 0, r.output
    data = json.loads(r.stdout)
    assert data["images"] == 30
    assert data["a"]["accuracy"] >= 0.9 and data["b"]["accuracy"] >= 0.85
    assert data["top1_agreement"] >= 0.9
    assert data["size_ratio"] > 2.0
    assert data["a"]["latency_ms"] > 0 and data["b"]["latency_ms"] > 0


def test_compare_model_with_itself_and_memmapped(cli, default_graph, tmp_path):
    from mobilebuild import defaults
    from mobilebuild.graphs import memmap

    pkg = tmp_path / "digits.mmap"
    memmap.write_package(default_graph.graph_def, pkg, 1024)
    r = cli("--json", "model", "compare", default_graph.path, pkg, "--images", defaults.sample_images_dir(), "--labels-from-dirs")
    assert r.code == 0, r.output
    data = json.loads(r.stdout)
    assert data["b"]["format"] == "memmapped"
    assert data["top1_agreement"] == 1.0 and data["max_abs_diff"] < 1e-5
    assert data["accuracy_drop"] == 0.0


def test_compare_with_tflite(cli, default_graph, tmp_path):
    from mobilebuild import defaults
    from mobilebuild.graphs import tflite

    lite = tmp_path / "digits.tflite"
    tflite.convert(default_graph.path, lite)
    r = cli("model", "compare", default_graph.path, lite, "--images", defaults.sample_images_dir(), "--labels-from-dirs")
    assert r.code == 0, r.output
    assert "top-1 agreement  100.0%" in r.stdout
    assert "(tflite," in r.stdout


def test_compare_bad_inputs(cli, default_graph, retrain, tmp_path):
    from mobilebuild import defaults

    line = one_line_error(cli("model", "compare", default_graph.path, default_graph.path, "--images", tmp_path / "none"))
    assert "image directory not found" in line
    line = one_line_error(cli("model", "compare", default_graph.path, default_graph.path, "--images", tmp_path))
    assert "no images" in line
    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copy(defaults.sample_images_dir() / "one" / "one_0.png", flat / "x.png")
    line = one_line_error(cli("model", "compare", default_graph.path, default_graph.path, "--images", flat, "--labels-from-dirs"))
    assert "not inside a class folder" in line
    line = one_line_error(cli("model", "compare", default_graph.path, retrain.path, "--images", flat))
    assert "different shapes" in line or "normalisation" in line or "input" in line
    line = one_line_error(cli("model", "compare", default_graph.path))
    assert "two models" in line


@pytest.mark.parametrize("name", ["zero", "nine"])
def test_sample_images_are_class_folders_named_like_labels(name):
    from mobilebuild import defaults
    from mobilebuild.graphs.label import read_labels

    labels = read_labels(defaults.default_labels())
    assert name in labels and len(labels) == 10
    assert sorted(p.name for p in defaults.sample_images_dir().iterdir()) == sorted(labels)
    assert len(list((defaults.sample_images_dir() / name).glob("*.png"))) >= 3
    total = sum(p.stat().st_size for p in defaults.DEFAULT_DIR.rglob("*") if p.is_file())
    assert total < 1_000_000


@pytest.mark.slow
def test_json_output_is_pure_in_a_real_process():
    """TensorFlow's C++ logs go to stderr; --json leaves the result alone on stdout."""
    from helpers.cli import run_subprocess

    r = run_subprocess("model", "label", "--json", "--top-k", "1")
    assert r.code == 0, r.stderr
    data = json.loads(r.stdout)
    assert len(data["results"]) == 10
    assert sum(res["predictions"][0]["label"] == res["image"].split("/")[-2] for res in data["results"]) >= 9
    r = run_subprocess("model", "check", "--tf-version", "1.1", "/nonexistent/model.pb")
    assert r.code == 1 and r.stdout == "" and "Traceback" not in r.stderr


def test_compare_labels_mismatch_and_undecodable_image(cli, default_graph, tmp_path):
    from mobilebuild import defaults

    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\n")
    r = cli("model", "compare", default_graph.path, default_graph.path, "--images", defaults.sample_images_dir(),
            "--labels-from-dirs", "--labels", labels)
    assert "has 3 lines but the model outputs 10 classes" in one_line_error(r)
    folder = tmp_path / "imgs" / "one"
    folder.mkdir(parents=True)
    (folder / "ok.png").write_bytes((defaults.sample_images_dir() / "one" / "one_0.png").read_bytes())
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    line = one_line_error(cli("model", "compare", default_graph.path, default_graph.path, "--images", folder.parent))
    assert "cannot decode image" in line and "broken.jpg" in line
