"""TensorFlow memmapped packages: the file format of convert_graphdef_memmapped_format.

Layout (what TF's MemmappedFileSystemWriter produces and MemmappedEnv reads):
  [zero padding][tensor bytes]...   one region per converted Const, each starting at a
                                    multiple of 64 (old TF aligned to 32; 64 satisfies both)
  [GraphDef]                        region `memmapped_package://.`, not aligned
  [MemmappedFileSystemDirectory]    protobuf, elements {offset, name, length} by offset
  [uint64 LE]                       offset of the directory

Converted nodes become `ImmutableConst` with only `dtype`, `shape` and `memory_region_name`,
so a phone maps the weights instead of copying them into the heap.
TensorFlow is imported inside the functions, never at module import.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

from mobilebuild.errors import ModelError
from mobilebuild.fsutil import check_output_path, write_if_changed
from mobilebuild.graphs.protos import parse_graph_def

PACKAGE_PREFIX = "memmapped_package://"
GRAPHDEF_REGION = PACKAGE_PREFIX + "."
ALIGNMENT = 64
DEFAULT_MIN_CONVERSION_TENSOR_SIZE = 10000
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.]")
# A directory larger than this means the trailing offset is garbage (io.looks_memmapped
# uses the same bound), so we refuse it instead of reading gigabytes.
_MAX_DIRECTORY_BYTES = 64 * 1024 * 1024


@dataclass
class PackageStats:
    converted: int = 0  # Const nodes turned into ImmutableConst
    kept_consts: int = 0  # Const nodes left inline (too small or not memcpy-able)
    region_bytes: int = 0  # tensor bytes stored in regions
    graph_bytes: int = 0  # size of the GraphDef region
    file_bytes: int = 0
    regions: dict[str, tuple[int, int]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "converted_consts": self.converted,
            "kept_consts": self.kept_consts,
            "region_bytes": self.region_bytes,
            "graph_bytes": self.graph_bytes,
            "file_bytes": self.file_bytes,
        }


def region_name_for(node_name: str, taken: set[str]) -> str:
    """TF's naming: the node name with every char outside [A-Za-z0-9_.] replaced by `_`,
    prefixed, with `_` appended until it is unique."""
    name = PACKAGE_PREFIX + _UNSAFE_NAME_CHARS.sub("_", node_name)
    while name in taken:
        name += "_"
    taken.add(name)
    return name


def _memcpy_dtypes():
    """Dtypes whose tensors are raw fixed-size bytes (TF's DataTypeCanUseMemcpy)."""
    from tensorflow.core.framework import types_pb2 as t

    return {
        t.DT_FLOAT, t.DT_DOUBLE, t.DT_INT32, t.DT_UINT32, t.DT_UINT8, t.DT_UINT16, t.DT_INT16,
        t.DT_INT8, t.DT_COMPLEX64, t.DT_COMPLEX128, t.DT_INT64, t.DT_UINT64, t.DT_BOOL,
        t.DT_QINT8, t.DT_QUINT8, t.DT_QINT16, t.DT_QUINT16, t.DT_QINT32, t.DT_BFLOAT16, t.DT_HALF,
    }


def _tensor_bytes(tensor_proto) -> bytes:
    """The tensor's raw little-endian bytes, whether stored as tensor_content or as *_val."""
    import numpy as np
    import tensorflow as tf

    if tensor_proto.tensor_content:
        return bytes(tensor_proto.tensor_content)
    value = tf.make_ndarray(tensor_proto)
    return np.ascontiguousarray(value).tobytes()


def check_min_conversion_tensor_size(size: int) -> None:
    """No TensorFlow needed: the CLI calls this before it loads a model."""
    if size < 0:
        raise ModelError(
            f"--min-conversion-tensor-size must be >= 0, got {size}",
            f"give a size in bytes (TF's default is {DEFAULT_MIN_CONVERSION_TENSOR_SIZE})",
        )


def convert_graph(graph_def, min_conversion_tensor_size: int = DEFAULT_MIN_CONVERSION_TENSOR_SIZE):
    """(converted GraphDef, [(region name, bytes)]) without touching the disk."""
    import tensorflow as tf

    check_min_conversion_tensor_size(min_conversion_tensor_size)
    memcpy_ok = _memcpy_dtypes()
    out = tf.compat.v1.GraphDef()
    out.CopyFrom(graph_def)
    taken: set[str] = set()
    regions: list[tuple[str, bytes]] = []
    kept = 0
    for node in out.node:
        if node.op != "Const":
            continue
        dtype = node.attr["dtype"].type
        tensor = node.attr["value"].tensor
        if dtype not in memcpy_ok:
            kept += 1
            continue
        data = _tensor_bytes(tensor)
        if len(data) < min_conversion_tensor_size:
            kept += 1
            continue
        name = region_name_for(node.name, taken)
        regions.append((name, data))
        shape = tf.TensorShape(tensor.tensor_shape).as_proto()
        node.op = "ImmutableConst"
        node.attr.clear()
        node.attr["dtype"].type = dtype
        node.attr["shape"].shape.CopyFrom(shape)
        node.attr["memory_region_name"].s = name.encode("utf-8")
    return out, regions, kept


def write_package(graph_def, out_path, min_conversion_tensor_size: int = DEFAULT_MIN_CONVERSION_TENSOR_SIZE, *inputs) -> PackageStats:
    """Write ``graph_def`` as a memmapped package at ``out_path`` (temp file + rename; an
    identical package already there is left alone, so builds stay incremental).
    ``inputs`` are paths the output must not overwrite."""
    from tensorflow.core.util import memmapped_file_system_pb2 as mmfs

    out_p = check_output_path(out_path, *inputs)
    converted, regions, kept = convert_graph(graph_def, min_conversion_tensor_size)
    stats = PackageStats(converted=len(regions), kept_consts=kept)
    directory = mmfs.MemmappedFileSystemDirectory()
    parts: list[bytes] = []
    offset = 0
    for name, data in regions:
        pad = (-offset) % ALIGNMENT
        parts += [b"\0" * pad, data]
        offset += pad
        _add_element(directory, name, offset, len(data))
        stats.regions[name] = (offset, len(data))
        stats.region_bytes += len(data)
        offset += len(data)
    graph_bytes = converted.SerializeToString(deterministic=True)
    parts.append(graph_bytes)
    _add_element(directory, GRAPHDEF_REGION, offset, len(graph_bytes))
    stats.graph_bytes = len(graph_bytes)
    offset += len(graph_bytes)
    parts += [directory.SerializeToString(deterministic=True), struct.pack("<Q", offset)]
    package = b"".join(parts)
    del parts, regions  # the tensors now live in ``package`` only
    write_if_changed(out_p, package)
    stats.file_bytes = len(package)
    return stats


def _add_element(directory, name: str, offset: int, length: int) -> None:
    element = directory.element.add()
    element.offset = offset
    element.name = name
    element.length = length


def read_package(path) -> tuple[object, dict[str, tuple[int, int]]]:
    """(GraphDef, {region name: (offset, length)}) of a memmapped package. The GraphDef still
    has its ImmutableConst nodes; ``inline_regions`` turns them back into Consts."""
    from google.protobuf.message import DecodeError
    from tensorflow.core.util import memmapped_file_system_pb2 as mmfs

    p = Path(path)
    size = p.stat().st_size
    hint = "the file is damaged or truncated; convert the model again with `mobilebuild model memmap`"
    if size < 8:
        raise ModelError(f"{p} is too short to be a memmapped package", hint)
    with open(p, "rb") as f:
        f.seek(size - 8)
        (dir_offset,) = struct.unpack("<Q", f.read(8))
        if dir_offset > size - 8 or size - 8 - dir_offset > _MAX_DIRECTORY_BYTES:
            raise ModelError(f"{p}: memmapped directory offset {dir_offset} is outside the file", hint)
        f.seek(dir_offset)
        raw = f.read(size - 8 - dir_offset)
    directory = mmfs.MemmappedFileSystemDirectory()
    try:
        directory.ParseFromString(raw)
    except (DecodeError, RuntimeWarning, ValueError) as exc:
        raise ModelError(f"{p}: the memmapped directory does not parse ({exc})".replace("\n", " "), hint) from exc
    elements = list(directory.element)
    if not elements:
        raise ModelError(f"{p}: the memmapped directory lists no regions", hint)
    regions: dict[str, tuple[int, int]] = {}
    graph_span = None
    previous_end = 0
    for i, el in enumerate(elements):
        if not el.name.startswith(PACKAGE_PREFIX):
            raise ModelError(f"{p}: memmapped region {el.name!r} lacks the {PACKAGE_PREFIX} prefix", hint)
        # Old writers leave length out (proto3: reads as 0): a region then runs to the next one
        # (or the directory), alignment padding included.
        end_default = elements[i + 1].offset if i + 1 < len(elements) else dir_offset
        length = el.length or end_default - el.offset
        if el.offset < previous_end or length < 0 or el.offset + length > dir_offset:
            raise ModelError(
                f"{p}: memmapped region {el.name!r} (offset {el.offset}, length {length}) overlaps another or runs past the directory",
                hint,
            )
        previous_end = el.offset + length
        if el.name == GRAPHDEF_REGION:
            graph_span = (el.offset, length)
        elif el.name in regions:
            raise ModelError(f"{p}: memmapped region {el.name!r} is listed twice", hint)
        else:
            regions[el.name] = (el.offset, length)
    if graph_span is None:
        raise ModelError(f"{p}: the memmapped package has no GraphDef region ({GRAPHDEF_REGION})", hint)
    with open(p, "rb") as f:
        f.seek(graph_span[0])
        graph_def = parse_graph_def(f.read(graph_span[1]), f"{p} (GraphDef region)")
    for node in graph_def.node:
        if node.op == "ImmutableConst":
            name = node.attr["memory_region_name"].s.decode("utf-8", "replace")
            if name not in regions:
                raise ModelError(f"{p}: node {node.name} points at region {name!r}, which the directory lacks", hint)
    return graph_def, regions


def inline_regions(graph_def, path, regions: dict[str, tuple[int, int]]):
    """A plain frozen GraphDef: every ImmutableConst reading a package region becomes a Const
    with the region's bytes, so Python (which cannot hand a MemmappedEnv to a session) runs it."""
    import numpy as np
    import tensorflow as tf
    from tensorflow.core.framework import tensor_pb2

    out = tf.compat.v1.GraphDef()
    out.CopyFrom(graph_def)
    with open(path, "rb") as f:
        for node in out.node:
            if node.op != "ImmutableConst":
                continue
            name = node.attr["memory_region_name"].s.decode("utf-8", "replace")
            if name not in regions:
                continue
            offset, length = regions[name]
            f.seek(offset)
            data = f.read(length)
            dtype = tf.dtypes.as_dtype(node.attr["dtype"].type)
            shape = tf.TensorShape(node.attr["shape"].shape)
            expected = int(np.prod(shape.as_list(), dtype=np.int64)) * dtype.size
            if len(data) < expected:
                raise ModelError(
                    f"{path}: region {name!r} holds {len(data)} bytes, node {node.name} needs {expected}",
                    "the file is damaged; convert the model again with `mobilebuild model memmap`",
                )
            data = data[:expected]  # a length-less (old) directory counts the padding in
            tensor = tensor_pb2.TensorProto(dtype=dtype.as_datatype_enum, tensor_shape=shape.as_proto(), tensor_content=data)
            node.op = "Const"
            node.attr.clear()
            node.attr["dtype"].type = dtype.as_datatype_enum
            node.attr["value"].tensor.CopyFrom(tensor)
    return out
