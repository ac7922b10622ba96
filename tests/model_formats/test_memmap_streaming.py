"""The streamed memmap conversion's large-node path: a node bigger than what is read whole is
walked in place and its tensor bytes copied file to file through one small buffer. Forced onto
every node here (the test graphs' nodes are small), it must give the in-memory writer's bytes
and the full parser's errors."""

from __future__ import annotations

import pytest

from mobilebuild import defaults
from mobilebuild.errors import ModelError
from mobilebuild.graphs import io, memmap


@pytest.fixture
def every_node_streamed(monkeypatch):
    monkeypatch.setattr(memmap, "_READ_WHOLE", 16)  # every node through the file view
    monkeypatch.setattr(memmap, "_COPY_CHUNK", 1000)  # tensors in many pieces
    monkeypatch.setattr(memmap, "_COPY_BUFFER", [])
    monkeypatch.setattr(memmap._FileView, "_BLOCK", 7)  # headers across block edges


@pytest.mark.parametrize("name", ["default", "keras", "mixed"])
def test_large_node_path_equals_the_in_memory_writer(graphs, tmp_path, every_node_streamed, name):
    path = defaults.default_model() if name == "default" else graphs[name].path
    streamed, written = tmp_path / "s.mm", tmp_path / "w.mm"
    a = memmap.convert_file(path, streamed, 256)
    b = memmap.write_package(io.load_graph_def(path), written, 256)
    assert a.converted >= 3
    assert streamed.read_bytes() == written.read_bytes()
    assert a.as_dict() == b.as_dict()
    before = streamed.stat().st_mtime_ns
    memmap.convert_file(path, streamed, 256)
    assert streamed.stat().st_mtime_ns == before


def test_large_node_path_refuses_a_truncated_file_like_a_full_parse(tmp_path, every_node_streamed):
    bad = tmp_path / "bad.pb"
    data = defaults.default_model().read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError) as streamed:
        memmap.convert_file(bad, tmp_path / "x.mm")
    with pytest.raises(ModelError) as parsed:
        io.parse_graph_def(bad.read_bytes(), str(bad))
    assert streamed.value.message == parsed.value.message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pb"]
