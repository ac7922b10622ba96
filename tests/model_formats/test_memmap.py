"""memmap: byte layout as TF's converter writes it, round trip, corrupt files, the CLI, and the
real test: TensorFlow's own C++ MemmappedEnv loads and runs what we wrote."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from mobilebuild.errors import ModelError
from mobilebuild.graphs import io, memmap, quantize


def _directory(path):
    from tensorflow.core.util import memmapped_file_system_pb2 as mmfs

    data = path.read_bytes()
    (offset,) = struct.unpack("<Q", data[-8:])
    directory = mmfs.MemmappedFileSystemDirectory()
    directory.ParseFromString(data[offset:-8])
    return data, offset, list(directory.element)


@pytest.fixture(scope="module")
def mixed_package(graphs, tmp_path_factory):
    path = tmp_path_factory.mktemp("mm") / "mixed.mm"
    stats = memmap.write_package(graphs["mixed"].graph_def, path, min_conversion_tensor_size=1000)
    return path, stats


def test_byte_layout(graphs, mixed_package):
    import tensorflow as tf

    path, stats = mixed_package
    data, dir_offset, elements = _directory(path)
    names = [e.name for e in elements]
    # One region per Const of >= 1000 bytes, in graph order, then the GraphDef last.
    big = [n for n in graphs["mixed"].graph_def.node if n.op == "Const" and len(tf.make_ndarray(n.attr["value"].tensor).tobytes()) >= 1000]
    assert names == [memmap.PACKAGE_PREFIX + n.name.replace("/", "_") for n in big] + ["memmapped_package://."]
    assert stats.converted == len(big) == 3
    offsets = [e.offset for e in elements]
    assert offsets == sorted(offsets)
    for e in elements[:-1]:
        assert e.offset % 64 == 0, f"{e.name} at {e.offset} is not 64-byte aligned"
    # Padding before each region is zeros, regions follow each other without gaps beyond it.
    previous_end = 0
    for e in elements:
        assert e.offset - previous_end < 64 and data[previous_end:e.offset] == b"\0" * (e.offset - previous_end)
        previous_end = e.offset + e.length
    graph_el = elements[-1]
    assert graph_el.offset + graph_el.length == dir_offset  # GraphDef right before the directory
    gd = io.parse_graph_def(data[graph_el.offset:dir_offset])
    originals = {n.name: n for n in graphs["mixed"].graph_def.node}
    for node in gd.node:
        if node.op != "ImmutableConst":
            continue
        assert set(node.attr) == {"dtype", "shape", "memory_region_name"}
        region = next(e for e in elements if e.name == node.attr["memory_region_name"].s.decode())
        expected = tf.make_ndarray(originals[node.name].attr["value"].tensor)
        assert data[region.offset:region.offset + region.length] == expected.tobytes()
        assert tf.TensorShape(node.attr["shape"].shape).as_list() == list(expected.shape)
    # Small Consts stay inline.
    assert {n.op for n in gd.node if n.name == "fc/biases"} == {"Const"}


def test_region_names():
    taken = set()
    assert memmap.region_name_for("conv1/weights:0-x", taken) == "memmapped_package://conv1_weights_0_x"
    assert memmap.region_name_for("a/b", taken) == "memmapped_package://a_b"
    assert memmap.region_name_for("a_b", taken) == "memmapped_package://a_b_"
    assert memmap.region_name_for("a.b", taken) == "memmapped_package://a.b"


def test_round_trip_and_python_run(graphs, mixed_package, run_graph):
    path, _ = mixed_package
    g = graphs["mixed"]
    assert io.detect_format(path) == io.MEMMAPPED
    gd, regions = memmap.read_package(path)
    assert len(regions) == 3 and all(length > 0 for _, length in regions.values())
    plain = memmap.inline_regions(gd, path, regions)
    assert "ImmutableConst" not in {n.op for n in plain.node}
    x = g.sample(4)
    np.testing.assert_array_equal(run_graph(plain, g.input, x, "logits"), run_graph(g.graph_def, g.input, x, "logits"))


def test_reads_directories_without_lengths(graphs, mixed_package, tmp_path, run_graph):
    """Older TF writers left `length` out: each region then runs to the next offset."""
    from tensorflow.core.util import memmapped_file_system_pb2 as mmfs

    path, _ = mixed_package
    data, offset, elements = _directory(path)
    old = mmfs.MemmappedFileSystemDirectory()
    for e in elements:
        el = old.element.add()
        el.offset, el.name = e.offset, e.name
    legacy = tmp_path / "legacy.mm"
    legacy.write_bytes(data[:offset] + old.SerializeToString() + struct.pack("<Q", offset))
    gd, regions = memmap.read_package(legacy)
    g = graphs["mixed"]
    x = g.sample(2)
    np.testing.assert_array_equal(
        run_graph(memmap.inline_regions(gd, legacy, regions), g.input, x, "logits"), run_graph(g.graph_def, g.input, x, "logits")
    )


def test_min_conversion_size(graphs, tmp_path):
    path = tmp_path / "m.mm"
    stats = memmap.write_package(graphs["mixed"].graph_def, path)  # default 10000 bytes
    _, _, elements = _directory(path)
    assert stats.converted == 1 and len(elements) == 2  # only fc (46080 B); conv2 (9216 B) stays inline
    stats0 = memmap.write_package(graphs["mixed"].graph_def, tmp_path / "all.mm", 0)
    assert stats0.converted > 3  # every numeric Const, the int32 shape ones too


def _corrupt_copies(path, tmp_path):
    data = path.read_bytes()
    (offset,) = struct.unpack("<Q", data[-8:])
    yield "offset past end", data[:-8] + struct.pack("<Q", len(data) * 2)
    yield "directory garbage", data[:offset] + b"\xff" * (len(data) - 8 - offset) + data[-8:]
    yield "truncated", data[: len(data) // 2] + data[-8:]
    _, _, elements = _directory(path)
    from tensorflow.core.util import memmapped_file_system_pb2 as mmfs

    bad = mmfs.MemmappedFileSystemDirectory()
    for e in elements:
        el = bad.element.add()
        el.CopyFrom(e)
    bad.element[0].length = offset  # first region runs over the others
    raw = bad.SerializeToString()
    yield "overlapping regions", data[:offset] + raw + struct.pack("<Q", offset)
    nograph = mmfs.MemmappedFileSystemDirectory()
    for e in elements[:-1]:
        nograph.element.add().CopyFrom(e)
    yield "no graph region", data[:offset] + nograph.SerializeToString() + struct.pack("<Q", offset)


def test_corrupt_packages_raise_model_error(mixed_package, tmp_path, cli):
    path, _ = mixed_package
    for what, data in _corrupt_copies(path, tmp_path):
        bad = tmp_path / f"{what.replace(' ', '_')}.mm"
        bad.write_bytes(data)
        if io.detect_format(bad) != io.MEMMAPPED:
            # Too broken to even look memmapped: it is then refused as a non-GraphDef.
            with pytest.raises(ModelError):
                io.load_graph_def(bad)
            continue
        with pytest.raises(ModelError) as exc:
            memmap.read_package(bad)
        assert exc.value.hint, what
        out = tmp_path / f"{bad.stem}.pb"
        r = cli("model", "quantize", bad, "-o", out, "--mode", "weights")
        assert r.code == 1 and "Traceback" not in r.output, (what, r.output)
        assert not out.exists()


def test_cli_memmap(cli, graphs, tmp_path, run_graph):
    g = graphs["keras"]
    out = tmp_path / "k.mm"
    r = cli("model", "memmap", g.path, "-o", out, "--min-conversion-tensor-size", "2000")
    assert r.code == 0, r.output
    assert "memmapped" in r.stderr and str(out) in r.stderr
    gd, regions = memmap.read_package(out)
    assert regions
    x = g.sample(3)
    np.testing.assert_allclose(
        run_graph(memmap.inline_regions(gd, out, regions), g.input, x, g.outputs[0]),
        run_graph(g.graph_def, g.input, x, g.outputs[0]), rtol=1e-6, atol=1e-7,
    )
    mtime = out.stat().st_mtime_ns
    assert cli("model", "memmap", g.path, "-o", out, "--min-conversion-tensor-size", "2000").code == 0
    assert out.stat().st_mtime_ns == mtime  # unchanged package: file left alone
    # A memmapped package is accepted as input too (it is inlined first).
    again = tmp_path / "again.mm"
    assert cli("model", "memmap", out, "-o", again, "--min-conversion-tensor-size", "2000").code == 0
    assert again.read_bytes() == out.read_bytes()


def test_cli_memmap_bad_arguments(cli, graphs, tmp_path):
    g = graphs["mixed"]
    r = cli("model", "memmap", g.path, "-o", g.path)
    assert r.code == 1 and "is the input" in r.stderr
    r = cli("model", "memmap", g.path, "-o", tmp_path / "no" / "x.mm")
    assert r.code == 1 and "does not exist" in r.stderr
    r = cli("model", "memmap", g.path, "-o", tmp_path / "x.mm", "--min-conversion-tensor-size", "-5")
    assert r.code == 1 and ">= 0" in r.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "name,mode",
    [("mixed", None), ("keras", None), ("mixed", "weights"), ("keras", "eightbit")],
)
def test_cpp_memmapped_env_loads_and_runs(graphs, memmapped_runner, tmp_path, name, mode, run_graph):
    """TF's C++ MemmappedEnv (what the iOS app uses) opens our package, reads the GraphDef from
    `memmapped_package://.`, maps the ImmutableConst regions and runs: same numbers as Python
    running the same GraphDef. Quantized graphs carry quint8 regions."""
    g = graphs[name]
    gd = g.graph_def if mode is None else quantize.quantize_graph_def(g.graph_def, mode, output_names=g.outputs)
    package = tmp_path / f"{name}.mm"
    stats = memmap.write_package(gd, package, min_conversion_tensor_size=1000)
    assert stats.converted >= 2
    x = g.sample(5, seed=7)
    output = "logits" if "logits" in g.outputs else g.outputs[0]
    expected = run_graph(gd, g.input, x, output)
    got = memmapped_runner.run(package, g.input, output, x, expected.shape, tmp_path)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2", "1.3", "1.4"])
def test_cli_memmap_for_old_runtime(cli, graphs, tmp_path, version):
    """--tf-version: the package's GraphDef (ImmutableConst included) fits the op set of every
    bundled runtime, checked against the op definitions of the real mobile build directly."""
    import json
    from pathlib import Path

    ops_dir = Path(__file__).resolve().parents[2] / "toolchains/tf-mobile-ops"
    ops = json.loads((ops_dir / f"v{version}.0.opdefs.json").read_text())["ops"]
    out = tmp_path / "k.mm"
    r = cli("model", "memmap", graphs["keras"].path, "-o", out, "--min-conversion-tensor-size", "1000", "--tf-version", version)
    assert r.code == 0, r.output
    assert f"rewritten for TF {version}" in r.stderr
    gd, regions = memmap.read_package(out)
    assert regions and "ImmutableConst" in {n.op for n in gd.node}
    for node in gd.node:
        assert node.op in ops and ops[node.op]["has_kernel"], node.op
        assert {a for a in node.attr if not a.startswith("_")} <= set(ops[node.op]["attrs"]), node.name


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2", "1.3", "1.4"])
@pytest.mark.parametrize("mode", quantize.MODES)
def test_cli_quantized_memmapped_package_for_every_runtime(cli, graphs, tmp_path, mode, version, run_graph):
    """What the iOS app of a 1.x tree gets: quantized, then memory-mapped, both for that runtime.
    `model check` passes on the package, every node fits the real op definitions, and the
    package computes what the quantized .pb computes."""
    import json
    from pathlib import Path

    g = graphs["mixed"]
    q, mm = tmp_path / "q.pb", tmp_path / "q.mmap"
    r = cli("model", "quantize", g.path, "-o", q, "--mode", mode, "--tf-version", version, "--min-const-bytes", "256")
    assert r.code == 0, r.output
    r = cli("model", "memmap", q, "-o", mm, "--min-conversion-tensor-size", "256", "--tf-version", version)
    assert r.code == 0, r.output
    r = cli("--json", "model", "check", mm, "--tf-version", version)
    assert r.code == 0 and json.loads(r.stdout)["loads"] is True, r.output
    ops_dir = Path(__file__).resolve().parents[2] / "toolchains/tf-mobile-ops"
    ops = json.loads((ops_dir / f"v{version}.0.opdefs.json").read_text())["ops"]
    gd, regions = memmap.read_package(mm)
    assert regions
    for node in gd.node:
        assert node.op in ops and ops[node.op]["has_kernel"], (node.name, node.op)
        assert {a for a in node.attr if not a.startswith("_")} <= set(ops[node.op]["attrs"]), node.name
    x = g.sample(4)
    out = g.outputs[0]
    plain = memmap.inline_regions(gd, mm, regions)
    np.testing.assert_allclose(run_graph(plain, g.input, x, out), run_graph(io.load_graph_def(q), g.input, x, out), rtol=1e-5, atol=1e-6)
