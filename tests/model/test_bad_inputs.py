"""Every bad input of issue 2 for the model commands: one-line error + hint, exit 1, nothing written."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.graphs import jpeg_bytes, one_line_error

BAD_MODELS = ["missing", "random", "truncated", "jpeg", "empty", "directory"]


@pytest.fixture
def bad_model(tmp_path, default_graph):
    def _make(kind):
        p = tmp_path / "in" / f"{kind}.pb"
        p.parent.mkdir(exist_ok=True)
        if kind == "random":
            p.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
        elif kind == "truncated":
            data = default_graph.path.read_bytes()
            p.write_bytes(data[: len(data) // 3])
        elif kind == "jpeg":
            p.write_bytes(jpeg_bytes(16))
        elif kind == "empty":
            p.write_bytes(b"")
        elif kind == "directory":
            p.mkdir()
        return p

    return _make


def _commands(model, out, image):
    return {
        "inspect": ["model", "inspect", model],
        "inspect-tf": ["model", "inspect", model, "--tf-version", "1.1"],
        "check": ["model", "check", model, "--tf-version", "1.1"],
        "downgrade": ["model", "downgrade", model, "-o", out, "--tf-version", "1.1"],
        "optimize": ["model", "optimize", model, "-o", out],
        "label": ["model", "label", model, "--image", image],
        "compare": ["model", "compare", model, model, "--images", image.parent],
    }


@pytest.mark.parametrize("kind", BAD_MODELS)
@pytest.mark.parametrize("command", ["inspect", "inspect-tf", "check", "downgrade", "optimize", "label", "compare"])
def test_bad_model_files(kind, command, bad_model, cli, tmp_path):
    from mobilebuild import defaults

    model = bad_model(kind) if kind != "missing" else tmp_path / "in" / "missing.pb"
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    image = defaults.sample_images_dir() / "one" / "one_0.png"
    r = cli(*_commands(model, out_dir / "o.pb", image)[command])
    line = one_line_error(r)
    expected = {
        "missing": "not found",
        "random": "not a TensorFlow GraphDef",
        "truncated": "not a TensorFlow GraphDef",
        "jpeg": "is a JPEG image",
        "empty": "is empty",
        "directory": "is a directory",
    }[kind]
    assert expected in line, line
    assert list(out_dir.iterdir()) == []


@pytest.mark.parametrize("command", ["downgrade", "optimize"])
def test_output_problems(command, cli, default_graph, tmp_path):
    from mobilebuild import defaults

    image = defaults.sample_images_dir() / "one" / "one_0.png"
    before = default_graph.path.stat().st_mtime_ns
    line = one_line_error(cli(*_commands(default_graph.path, default_graph.path, image)[command]))
    assert "is the input file" in line
    assert default_graph.path.stat().st_mtime_ns == before
    line = one_line_error(cli(*_commands(default_graph.path, tmp_path / "no" / "dir" / "o.pb", image)[command]))
    assert "output directory does not exist" in line
    assert not (tmp_path / "no").exists()


def test_unknown_tf_version(cli, default_graph, tmp_path):
    line = one_line_error(cli("model", "downgrade", default_graph.path, "-o", tmp_path / "o.pb", "--tf-version", "0.12"))
    assert "no op set bundled for TensorFlow 0.12" in line
    assert not (tmp_path / "o.pb").exists()


def test_no_partial_file_when_a_refusal_happens_late(small, cli, tmp_path):
    """The refusal comes after parsing and rewriting most nodes: still nothing on disk."""
    out = tmp_path / "o.pb"
    one_line_error(cli("model", "optimize", small("half_pixel_resize").path, "-o", out, "--tf-version", "1.3"))
    assert list(tmp_path.iterdir()) == []


def test_label_model_error_for_labels_file_problems(cli, default_graph, tmp_path):
    from mobilebuild import defaults

    image = defaults.sample_images_dir() / "one" / "one_0.png"
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    assert "is empty" in one_line_error(cli("model", "label", default_graph.path, "-i", image, "--labels", empty))
    assert "labels file not found" in one_line_error(
        cli("model", "label", default_graph.path, "-i", image, "--labels", tmp_path / "nope.txt")
    )
    assert "--top-k" in one_line_error(cli("model", "label", default_graph.path, "-i", image, "--top-k", "0"))


def test_model_help_does_not_import_tensorflow():
    import subprocess
    import sys

    code = (
        "import sys; from mobilebuild.cli import run; rc = run(['model', '--help']);"
        "print('TF' if 'tensorflow' in sys.modules else 'noTF', file=sys.stderr); sys.exit(rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and "noTF" in proc.stderr
    assert "inspect" in proc.stdout and "downgrade" in proc.stdout and "compare" in proc.stdout


def test_graph_with_an_op_todays_tf_lacks(small, cli, tmp_path):
    """A custom op: inspect and check still work, optimize keeps it, running it is a clear error."""
    import tensorflow as tf

    g = small("plain")
    gd = tf.compat.v1.GraphDef()
    gd.CopyFrom(g.graph_def)
    softmax = next(n for n in gd.node if n.name == "out")
    custom = gd.node.add(name="custom", op="MyVendorOp", input=list(softmax.input))
    custom.attr["T"].type = tf.float32.as_datatype_enum
    softmax.input[0] = "custom"
    path = tmp_path / "custom.pb"
    path.write_bytes(gd.SerializeToString())
    r = cli("--json", "model", "inspect", path, "--tf-version", "1.1")
    assert r.code == 0, r.output
    import json

    data = json.loads(r.stdout)
    assert "MyVendorOp" in data["runtime"]["missing_ops"]
    assert data["app"]["output_name"] == "out"
    out = tmp_path / "opt.pb"
    assert cli("model", "optimize", path, "-o", out).code == 0
    from mobilebuild.graphs import io

    assert "MyVendorOp" in {n.op for n in io.load_graph_def(out).node}
    from mobilebuild import defaults

    image = defaults.sample_images_dir() / "one" / "one_0.png"
    line = one_line_error(cli("model", "label", path, "-i", image, "--mean", "0", "--std", "1", "--input-size", "8"))
    assert "cannot load this graph" in line and "MyVendorOp" in line
    line = one_line_error(cli("model", "downgrade", path, "-o", tmp_path / "d.pb", "--tf-version", "1.1"))
    assert "MyVendorOp has no counterpart" in line
