"""--mean / --std / --input-size are checked once, the same way, by every command that takes
them: no NaN scores, no crash in the TFLite calibrator, nothing written."""

from __future__ import annotations

import json

import pytest

from mobilebuild import defaults

BAD = [
    (("--std", "0"), "--std 0 would divide every pixel by zero"),
    (("--std", "nan"), "--std nan is not a number"),
    (("--mean", "inf"), "--mean inf is not a number"),
    (("--mean", "0", "--std", "0"), "--std 0 would divide"),
]


def _one_error(r, text):
    assert r.code == 1, r.output
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {text}"] or (len(errors) == 1 and text in errors[0]), r.stderr
    assert "hint:" in r.stderr and "Traceback" not in r.output
    assert "nan" not in r.stdout.lower() and "RuntimeWarning" not in r.output


@pytest.mark.parametrize("args,text", BAD)
def test_label_refuses(cli, args, text):
    _one_error(cli("model", "label", *args), text)


@pytest.mark.parametrize("args,text", BAD[:2])
def test_compare_refuses(cli, args, text):
    _one_error(cli("model", "compare", *args), text)


def test_label_tflite_with_zero_std_refuses(cli, tmp_path):
    r = cli("model", "label", tmp_path / "x.tflite", "--image", next(defaults.sample_images_dir().glob("*/*")), "--mean", "0", "--std", "0")
    _one_error(r, "--std 0 would divide")


def test_input_size_and_top_k(cli):
    _one_error(cli("model", "label", "--input-size", "0"), "--input-size 0 must be a positive number")
    _one_error(cli("model", "label", "--top-k", "0"), "--top-k 0 shows nothing")


@pytest.mark.parametrize("std", ["0", "nan"])
def test_tflite_int8_refuses_before_the_calibrator(cli, tmp_path, std):
    out = tmp_path / "m.tflite"
    r = cli("model", "tflite", "-o", out, "--quantize", "int8", "--representative-images", defaults.sample_images_dir(), "--std", std)
    _one_error(r, f"--std {std}")
    assert not out.exists()


def test_json_failure_names_the_value(cli):
    r = cli("--json", "model", "label", "--std", "nan")
    assert r.code == 1
    assert json.loads(r.stdout)["error"].startswith("--std nan")


def test_tflite_line_shows_the_values_used(cli, tmp_path):
    """Given --std, the representative-images line shows that value, not the graph's."""
    out = tmp_path / "m.tflite"
    r = cli("model", "tflite", "-o", out, "--quantize", "int8", "--representative-images", defaults.sample_images_dir(), "--std", "64")
    assert r.code == 0, r.stderr
    line = next(line for line in r.stderr.splitlines() if line.startswith("representative images"))
    assert "/ 64 " in line and "std given" in line and "mean read from the graph" in line, line


def test_non_finite_pixels_from_a_graph_value_are_refused(tmp_path):
    """A tiny std (as a graph could carry) overflows float32: refused, not fed on."""
    from mobilebuild.errors import ModelError
    from mobilebuild.graphs.preprocess import load_image

    with pytest.raises(ModelError, match="not finite"):
        load_image(next(defaults.sample_images_dir().glob("*/*")), 8, 0.0, 1e-45)
