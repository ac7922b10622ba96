"""Every bad input of the model commands: one-line error + hint, exit 1, nothing written."""

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
        "quantize": ["model", "quantize", model, "-o", out, "--mode", "weights"],
        "memmap": ["model", "memmap", model, "-o", out],
        "tflite": ["model", "tflite", model, "-o", out],
        "label": ["model", "label", model, "--image", image],
        "compare": ["model", "compare", model, model, "--images", image.parent],
    }


EVERY_COMMAND = ["inspect", "inspect-tf", "check", "downgrade", "optimize", "quantize", "memmap", "tflite", "label", "compare"]
WRITERS = ["downgrade", "optimize", "quantize", "memmap", "tflite"]


@pytest.mark.parametrize("kind", BAD_MODELS)
@pytest.mark.parametrize("command", EVERY_COMMAND)
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


@pytest.mark.parametrize("command", WRITERS)
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


@pytest.fixture(scope="module")
def damaged_packages(tmp_path_factory, default_graph):
    """A real memmapped package of the default model, damaged three ways: its directory
    scrambled, the trailer pointing outside the file, the last bytes cut off."""
    import struct

    from mobilebuild.graphs import memmap

    d = tmp_path_factory.mktemp("damaged")
    good = d / "good.mmap"
    memmap.write_package(default_graph.graph_def, good, 1000)
    data = good.read_bytes()
    (offset,) = struct.unpack("<Q", data[-8:])
    scrambled = bytearray(data)
    for i in range(offset, len(data) - 8):
        scrambled[i] ^= 0x5A
    (d / "directory.mmap").write_bytes(bytes(scrambled))
    (d / "trailer.mmap").write_bytes(data[:-8] + struct.pack("<Q", len(data) * 3))
    (d / "truncated.mmap").write_bytes(data[:-20])
    return d


@pytest.mark.parametrize("damage", ["directory", "trailer", "truncated"])
@pytest.mark.parametrize("command", EVERY_COMMAND)
def test_damaged_memmapped_package(damage, command, damaged_packages, cli, tmp_path):
    from mobilebuild import defaults

    image = defaults.sample_images_dir() / "one" / "one_0.png"
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    line = one_line_error(cli(*_commands(damaged_packages / f"{damage}.mmap", out_dir / "o.pb", image)[command]))
    assert "memmapped" in line and ("does not parse" in line or "outside the file" in line), line
    assert list(out_dir.iterdir()) == []


@pytest.fixture(scope="module")
def tflite_file(tmp_path_factory, default_graph):
    from mobilebuild.graphs import tflite

    out = tmp_path_factory.mktemp("tfl") / "digits.tflite"
    tflite.convert(default_graph.path, out)
    return out


@pytest.mark.parametrize("command", ["check", "downgrade", "optimize", "quantize", "memmap", "tflite"])
def test_tflite_input_is_said_to_be_unsupported(command, tflite_file, cli, tmp_path):
    """Commands that rewrite or check GraphDefs say clearly that a .tflite is not for them."""
    from mobilebuild import defaults

    image = defaults.sample_images_dir() / "one" / "one_0.png"
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    line = one_line_error(cli(*_commands(tflite_file, out_dir / "o.pb", image)[command]))
    assert "needs a frozen GraphDef" in line or "already a .tflite" in line or (
        # `check` reads a .tflite too: against a TFLite runtime, which 1.x releases before 1.5 lack
        command == "check" and "no TFLite runtime in TensorFlow 1." in line), line
    assert list(out_dir.iterdir()) == []


def test_tflite_input_for_inspect_with_tf_version_says_not_tf_mobile(tflite_file, cli):
    import json

    r = cli("--json", "model", "inspect", tflite_file, "--tf-version", "1.1")
    assert r.code == 0, r.output
    data = json.loads(r.stdout)
    assert data["runtime"]["loads"] is False
    assert "TensorFlow Lite" in data["runtime"]["summary"][0]
    assert data["op_counts"].get("CONV_2D") == 3 and data["node_count"] == sum(data["op_counts"].values())


@pytest.mark.parametrize("command", ["inspect", "check", "downgrade", "optimize", "quantize", "memmap", "label"])
def test_savedmodel_directory_is_said_to_be_unsupported(command, cli, tmp_path):
    """A SavedModel is only read by `model tflite`; every other command says so."""
    from mobilebuild import defaults

    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"\x08\x01")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    image = defaults.sample_images_dir() / "one" / "one_0.png"
    line = one_line_error(cli(*_commands(saved, out_dir / "o.pb", image)[command]))
    assert "savedmodel" in line.lower(), line
    assert list(out_dir.iterdir()) == []


@pytest.mark.parametrize("command", ["quantize", "tflite", "optimize"])
def test_unknown_node_names_suggest_the_closest(command, cli, default_graph, tmp_path):
    out = tmp_path / "o.pb"
    flag = {"quantize": ["--mode", "weights"], "tflite": [], "optimize": []}[command]
    r = cli("model", command, default_graph.path, "-o", out, "--output-names", "final_reslt", *flag)
    line = one_line_error(r)
    assert "final_reslt" in line and "final_result" in r.stderr, r.stderr
    assert not out.exists()


@pytest.mark.parametrize("command", ["label", "compare"])
def test_unknown_node_name_for_running_commands(command, cli, default_graph, tmp_path):
    from mobilebuild import defaults

    image = defaults.sample_images_dir() / "one" / "one_0.png"
    args = _commands(default_graph.path, tmp_path / "o.pb", image)[command]
    r = cli(*args, "--output-name", "final_reslt")
    line = one_line_error(r)
    assert "final_reslt" in line and "final_result" in r.stderr, r.stderr


def test_unknown_modes_fail_before_anything_is_read(cli, tmp_path):
    """A bad --mode / --quantize is a usage mistake: named with the valid values, nothing written."""
    missing = tmp_path / "nope.pb"
    line = one_line_error(cli("model", "quantize", missing, "-o", tmp_path / "o.pb", "--mode", "int4"))
    assert "int4" in line
    line = one_line_error(cli("model", "tflite", missing, "-o", tmp_path / "o.tflite", "--quantize", "float16"))
    assert "float16" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["inspect", "optimize", "quantize", "memmap"])
def test_tf_src_without_tf_version(command, cli, default_graph, tmp_path):
    """--tf-src alone would silently be ignored: it is refused, nothing written."""
    out = tmp_path / "o.pb"
    args = {"inspect": [], "optimize": ["-o", out], "quantize": ["-o", out, "--mode", "weights"], "memmap": ["-o", out]}[command]
    line = one_line_error(cli("model", command, default_graph.path, *args, "--tf-src", tmp_path))
    assert "--tf-src needs --tf-version" in line
    assert not out.exists()


@pytest.mark.parametrize("command", ["quantize", "memmap"])
def test_quantize_and_memmap_use_the_op_set_of_tf_src(command, cli, default_graph, tmp_path):
    """A tree whose op list holds nothing: the bundled v1.2 op set would accept the default
    model, the tree's own does not, so the refusal proves the tree was read."""
    tree = tmp_path / "tf"
    (tree / "tensorflow/contrib/makefile").mkdir(parents=True)
    (tree / "tensorflow/contrib/makefile/tf_op_files.txt").write_text("")
    out = tmp_path / "o.pb"
    args = ["-o", out, "--mode", "weights"] if command == "quantize" else ["-o", out]
    line = one_line_error(cli("model", command, default_graph.path, *args, "--tf-version", "1.2", "--tf-src", tree))
    assert "has no counterpart" in line
    assert not out.exists()
    assert cli("model", command, default_graph.path, *args, "--tf-version", "1.2").code == 0


def test_label_input_size_must_be_positive(cli, default_graph):
    from mobilebuild import defaults

    image = defaults.sample_images_dir() / "one" / "one_0.png"
    line = one_line_error(cli("model", "label", default_graph.path, "-i", image, "--input-size", "0"))
    assert "--input-size 0 must be a positive" in line


@pytest.mark.parametrize("content", [b"\x08\x01", b"\x00\xff" * 700])
def test_tflite_of_a_damaged_savedmodel(content, cli, tmp_path):
    """`tflite` reads SavedModels; one without a serving graph or with a corrupt saved_model.pb
    is a clear error, not a crash."""
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(content)
    out = tmp_path / "o.tflite"
    line = one_line_error(cli("model", "tflite", saved, "-o", out))
    assert "does not load as a SavedModel" in line
    assert not out.exists()
