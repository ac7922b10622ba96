"""Reading and writing model files: format detection and clear errors for what is not a model.

Formats: a frozen GraphDef (.pb), a TF memmapped package (GraphDef + tensor regions), a
TFLite flatbuffer, and today's model files — a Keras ``.keras`` / ``.h5`` file or a SavedModel
directory — which ``load_model`` freezes into a GraphDef (graphs/freeze.py, cached by content)
so every command treats them exactly as a ``.pb``. GraphDefs are parsed with the message
classes of ``protos``: loading a .pb or a memmapped package does not import TensorFlow
(freezing a Keras model or SavedModel does).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

from mobilebuild.errors import ModelError
from mobilebuild.fsutil import atomic_write_bytes, check_output_path
from mobilebuild.graphs import freeze, memmap, protos
from mobilebuild.graphs.protos import parse_graph_def

GRAPHDEF = "graphdef"
MEMMAPPED = "memmapped"
TFLITE = "tflite"
SAVEDMODEL = freeze.SAVEDMODEL
KERAS = freeze.KERAS
KERAS_H5 = freeze.KERAS_H5
FROZEN_ON_LOAD = (KERAS, KERAS_H5, SAVEDMODEL)

_MAGIC_HINTS = [
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"GIF8", "a GIF image"),
    (b"PK\x03\x04", "a zip archive"),
    (b"\x1f\x8b", "a gzip file"),
    (b"<!DOCTYPE", "an HTML page"),
    (b"<html", "an HTML page"),
]


@dataclass
class LoadedModel:
    path: Path
    format: str
    graph_def: object | None = None  # a GraphDef message (see protos) for graphdef/memmapped
    regions: dict[str, tuple[int, int]] | None = None  # memmapped: name -> (offset, length)
    size_bytes: int = 0
    frozen: dict | None = None  # keras/h5/savedmodel: how it was frozen (freeze.FrozenModel.info)


def require_file(path: str | os.PathLike, what: str = "model") -> Path:
    p = Path(path)
    if not p.exists():
        raise ModelError(f"{what} file not found: {p}", "check the path (relative paths are from the current directory)")
    if p.is_dir() and not (p / "saved_model.pb").is_file():
        raise ModelError(f"{what} path is a directory: {p}", f"give the {what} file itself")
    return p


def detect_format(path: str | os.PathLike) -> str:
    """Which model format ``path`` holds, by content (not by extension)."""
    p = require_file(path)
    if p.is_dir():
        return SAVEDMODEL
    size = p.stat().st_size
    if size == 0:
        raise ModelError(f"model file is empty: {p}", "re-export or re-download the model")
    with open(p, "rb") as f:
        head = f.read(16)
        if size >= 8 and head[4:8] == b"TFL3":
            return TFLITE
        if looks_memmapped(f, size):
            return MEMMAPPED
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return KERAS_H5
    if head.startswith(b"PK\x03\x04") and freeze.is_keras_zip(p):
        return KERAS
    for magic, what in _MAGIC_HINTS:
        if head.startswith(magic) or head.lower().startswith(magic.lower()):
            raise ModelError(
                f"{p} is {what}, not a TensorFlow model",
                "pass a frozen GraphDef (.pb), a Keras .keras/.h5 file, a SavedModel directory, a memmapped package or a .tflite file",
            )
    return GRAPHDEF


def looks_memmapped(f, size: int) -> bool:
    """A memmapped package ends with the directory's offset (uint64 LE) and the directory
    names regions ``memmapped_package://...``; checking the prefix string is cheap."""
    if size < 16:
        return False
    f.seek(size - 8)
    (offset,) = struct.unpack("<Q", f.read(8))
    if offset < size - 8 and size - 8 - offset <= 64 * 1024 * 1024:
        f.seek(offset)
        if b"memmapped_package://" in f.read(size - 8 - offset):
            return True
    # A damaged trailer or directory: the region names still sit near the end of the file, so
    # call it memmapped and let the package reader say what is broken (not "not a GraphDef").
    tail = min(size, 1 << 20)
    f.seek(size - tail)
    return b"memmapped_package://" in f.read(tail)


def load_graph_def(path: str | os.PathLike):
    """A GraphDef from a frozen .pb or a memmapped package (its GraphDef, ImmutableConst nodes
    pointing at the regions), or the frozen graph of a Keras file / SavedModel. TFLite is
    refused with a pointer to what works."""
    model = load_model(path)
    if model.graph_def is None:
        raise ModelError(
            f"{model.path} is a {model.format} model; this command needs a frozen GraphDef (.pb)",
            "use the .pb (or Keras model / SavedModel) the .tflite was converted from",
        )
    return model.graph_def


def load_model(path: str | os.PathLike) -> LoadedModel:
    p = require_file(path)
    fmt = detect_format(p)
    size = p.stat().st_size if p.is_file() else 0
    if fmt == GRAPHDEF:
        return LoadedModel(p, fmt, parse_graph_def(p.read_bytes(), str(p)), size_bytes=size)
    if fmt == MEMMAPPED:
        graph_def, regions = memmap.read_package(p)
        return LoadedModel(p, fmt, graph_def, regions, size_bytes=size)
    if fmt in FROZEN_ON_LOAD:
        frozen = freeze.frozen_graph(p, fmt)
        if p.is_dir():
            size = sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
        graph_def = parse_graph_def(frozen.path.read_bytes(), f"the frozen graph of {p}")
        return LoadedModel(p, fmt, graph_def, size_bytes=size, frozen=frozen.info)
    return LoadedModel(p, fmt, size_bytes=size)


def load_frozen_graph(path: str | os.PathLike):
    """(GraphDef with real Consts, LoadedModel) from a .pb or a memmapped package (its regions
    inlined, so the graph can be rewritten); other formats get load_graph_def's clear error."""
    model = load_model(path)
    if model.graph_def is None:
        load_graph_def(path)  # raises the "this command needs a frozen GraphDef" error
    if model.format == MEMMAPPED:
        return memmap.inline_regions(model.graph_def, model.path, model.regions), model
    return model.graph_def, model


def serialize(graph_def) -> bytes:
    return protos.serialize(graph_def)


def save_graph_def(graph_def, out: str | os.PathLike, *inputs: str | os.PathLike) -> Path:
    """Write atomically (temp + rename), refusing to overwrite an input."""
    out_p = check_output_path(out, *inputs)
    return atomic_write_bytes(out_p, serialize(graph_def))
