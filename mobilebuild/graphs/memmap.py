"""TensorFlow memmapped packages: the file format of convert_graphdef_memmapped_format.

Layout (what TF's MemmappedFileSystemWriter produces and MemmappedEnv reads):
  [zero padding][tensor bytes]...   one region per converted Const, each starting at a
                                    multiple of 64 (old TF aligned to 32; 64 satisfies both)
  [GraphDef]                        region `memmapped_package://.`, not aligned
  [MemmappedFileSystemDirectory]    protobuf, elements {offset, name, length} by offset
  [uint64 LE]                       offset of the directory

Converted nodes become `ImmutableConst` with only `dtype`, `shape` and `memory_region_name`,
so a phone maps the weights instead of copying them into the heap. Nothing here imports
TensorFlow: the messages come from ``protos``.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf.message import DecodeError

from mobilebuild.errors import ModelError
from mobilebuild.fsutil import check_output_path, replace_if_changed
from mobilebuild.graphs import protos

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


def check_min_conversion_tensor_size(size: int) -> None:
    """No TensorFlow needed: the CLI calls this before it loads a model."""
    if size < 0:
        raise ModelError(
            f"--min-conversion-tensor-size must be >= 0, got {size}",
            f"give a size in bytes (TF's default is {DEFAULT_MIN_CONVERSION_TENSOR_SIZE})",
        )


# ---------------------------------------------------------------------------------------------
# Writing, streamed: one node at a time, tensor bytes straight from the node's wire bytes into
# the output file. The model is never held twice: converting a file reads it node by node;
# converting a GraphDef in memory serializes one node at a time.

# Field numbers of the messages walked on the wire (graph.proto, node_def.proto, attr_value.proto,
# tensor.proto); TensorFlow has never renumbered them.
_GRAPH_NODE = 1
_NODE_OP, _NODE_ATTR = 2, 5
_ENTRY_KEY, _ENTRY_VALUE = 1, 2
_ATTR_TYPE, _ATTR_TENSOR = 6, 8
_TENSOR_DTYPE, _TENSOR_SHAPE, _TENSOR_CONTENT = 1, 2, 4


class _Malformed(Exception):
    """The bytes are not valid protobuf wire format (the full parser then says what is wrong)."""


def _varint(buf, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise _Malformed
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def _fields(buf, start: int, end: int):
    """(field number, wire type, value start, value end, field start) of each field."""
    pos = start
    while pos < end:
        field_start = pos
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _Malformed
        if wire == 0:
            _, vend = _varint(buf, pos, end)
            yield number, wire, pos, vend, field_start
            pos = vend
        elif wire == 2:
            length, pos = _varint(buf, pos, end)
            if pos + length > end:
                raise _Malformed
            yield number, wire, pos, pos + length, field_start
            pos += length
        elif wire == 1 or wire == 5:
            size = 8 if wire == 1 else 4
            if pos + size > end:
                raise _Malformed
            yield number, wire, pos, pos + size, field_start
            pos += size
        else:
            raise _Malformed


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


class _Converter:
    """Turns NodeDefs (as wire bytes) into the package's GraphDef nodes, writing the regions."""

    def __init__(self, out, min_conversion_tensor_size: int):
        self.out = out
        self.min_size = min_conversion_tensor_size
        self.offset = 0
        self.taken: set[str] = set()
        self.stats = PackageStats()
        self.elements: list[tuple[str, int, int]] = []
        self.graph_parts: list[bytes] = []  # the output GraphDef's node fields, in order

    def node(self, body, start: int, end: int) -> None:
        data = self._convert(body, start, end)
        if data is None:
            node = protos.NodeDef.FromString(bytes(body[start:end]))
            if not node.op or not node.name:
                raise _NoValidNodes
            data = node.SerializeToString(deterministic=True)
        self.graph_parts.append(b"\x0a" + _encode_varint(len(data)) + data)

    def _convert(self, body, start: int, end: int) -> bytes | None:
        """The ImmutableConst replacing a large memcpy-able Const (its tensor bytes written to
        a region), or None to keep the node as it is."""
        op = None
        attrs = []
        others = []
        for number, wire, vs, ve, fs in _fields(body, start, end):
            if number == _NODE_OP and wire == 2:
                op = bytes(body[vs:ve])
            if number == _NODE_ATTR and wire == 2:
                attrs.append((vs, ve))
            else:
                others.append((fs, ve))
        if op != b"Const":
            return None
        dtype = tensor_span = None
        for vs, ve in attrs:
            key = value = None
            for number, wire, a, b, _ in _fields(body, vs, ve):
                if number == _ENTRY_KEY and wire == 2:
                    key = bytes(body[a:b])
                elif number == _ENTRY_VALUE and wire == 2:
                    value = (a, b)
            if value is None:
                continue
            for number, wire, a, b, _ in _fields(body, *value):
                if key == b"dtype" and number == _ATTR_TYPE and wire == 0:
                    dtype = _varint(body, a, b)[0]
                elif key == b"value" and number == _ATTR_TENSOR and wire == 2:
                    tensor_span = (a, b)
        if dtype is None or tensor_span is None or not protos.can_memcpy(dtype):
            self.stats.kept_consts += 1
            return None
        content = shape = None
        for number, wire, a, b, _ in _fields(body, *tensor_span):
            if number == _TENSOR_CONTENT and wire == 2:
                content = (a, b)
            elif number == _TENSOR_SHAPE and wire == 2:
                shape = protos.TensorShapeProto.FromString(bytes(body[a:b]))
        if content is not None and content[1] > content[0]:
            data = body.span(*content) if isinstance(body, _FileView) else memoryview(body)[content[0] : content[1]]
        else:  # values in the typed *_val fields (small tensors, or old writers)
            count = 1
            for d in [] if shape is None else protos.shape_dims(shape) or []:
                count *= max(d, 0)
            if count * protos.dtype_size(dtype) < self.min_size:  # too small: not decoded at all
                self.stats.kept_consts += 1
                return None
            data = protos.tensor_bytes(protos.TensorProto.FromString(bytes(body[tensor_span[0] : tensor_span[1]])))
        if len(data) < self.min_size:
            self.stats.kept_consts += 1
            return None
        node = protos.NodeDef.FromString(b"".join(bytes(body[a:b]) for a, b in others))
        if not node.name:
            raise _NoValidNodes
        name = region_name_for(node.name, self.taken)
        self._region(name, data)
        node.op = "ImmutableConst"
        node.attr["dtype"].type = dtype
        # A Const without a tensor_shape holds a scalar.
        protos.set_shape(node.attr["shape"].shape, [] if shape is None else protos.shape_dims(shape))
        node.attr["memory_region_name"].s = name.encode("utf-8")
        return node.SerializeToString(deterministic=True)

    def _region(self, name: str, data) -> None:
        pad = (-self.offset) % ALIGNMENT
        if pad:
            self.out.write(b"\0" * pad)
            self.offset += pad
        if isinstance(data, _Span):
            _copy_span(data, self.out)
        else:
            self.out.write(data)
        self.elements.append((name, self.offset, len(data)))
        self.stats.regions[name] = (self.offset, len(data))
        self.stats.converted += 1
        self.stats.region_bytes += len(data)
        self.offset += len(data)

    def finish(self, rest_of_graph: bytes) -> PackageStats:
        """Write the GraphDef (converted nodes, then the graph's other fields), the directory
        and its offset."""
        graph_len = sum(len(p) for p in self.graph_parts) + len(rest_of_graph)
        for part in self.graph_parts:
            self.out.write(part)
        self.out.write(rest_of_graph)
        self.elements.append((GRAPHDEF_REGION, self.offset, graph_len))
        self.stats.graph_bytes = graph_len
        self.offset += graph_len
        directory = protos.MemmappedFileSystemDirectory()
        for name, offset, length in self.elements:
            _add_element(directory, name, offset, length)
        raw = directory.SerializeToString(deterministic=True)
        self.out.write(raw)
        self.out.write(struct.pack("<Q", self.offset))
        self.stats.file_bytes = self.offset + len(raw) + 8
        return self.stats


class _NoValidNodes(Exception):
    """A node without name or op: not a GraphDef (the full parser's check says so)."""


def _rest_of_graph(graph_def) -> bytes:
    """The GraphDef's fields other than its nodes, serialized (they follow the nodes, field 1)."""
    rest = protos.GraphDef()
    for fld, value in graph_def.ListFields():
        if fld.name == "node":
            continue
        if fld.message_type is not None:
            getattr(rest, fld.name).CopyFrom(value)
        else:
            setattr(rest, fld.name, value)
    return rest.SerializeToString(deterministic=True)


def write_package(graph_def, out_path, min_conversion_tensor_size: int = DEFAULT_MIN_CONVERSION_TENSOR_SIZE, *inputs) -> PackageStats:
    """Write ``graph_def`` as a memmapped package at ``out_path`` (temp file + rename; an
    identical package already there is left alone, so builds stay incremental).
    ``inputs`` are paths the output must not overwrite."""
    check_min_conversion_tensor_size(min_conversion_tensor_size)
    out_p = check_output_path(out_path, *inputs)
    graph_def = protos.ours(graph_def)
    with replace_if_changed(out_p) as target:
        conv = _Converter(target.file, min_conversion_tensor_size)
        for node in graph_def.node:
            body = node.SerializeToString(deterministic=True)
            try:
                conv.node(body, 0, len(body))
            except _NoValidNodes as exc:
                raise ModelError("the graph has a node without a name or op", "the GraphDef is damaged") from exc
            except _Malformed as exc:  # pragma: no cover - protobuf serialized it
                raise ModelError(f"node {node.name} does not serialize", "the GraphDef is damaged") from exc
        return conv.finish(_rest_of_graph(graph_def))


def convert_file(src, out_path, min_conversion_tensor_size: int = DEFAULT_MIN_CONVERSION_TENSOR_SIZE) -> PackageStats:
    """Convert the frozen GraphDef file ``src`` into a package at ``out_path`` reading it node by
    node: memory holds one node at a time plus the (small) converted graph, and a tensor's
    bytes go from the read buffer straight into the output. A file that is not a GraphDef gets
    the same error as parsing it whole would give."""
    check_min_conversion_tensor_size(min_conversion_tensor_size)
    src = Path(src)
    out_p = check_output_path(out_path, src)
    try:
        with open(src, "rb") as f, replace_if_changed(out_p) as target:
            conv = _Converter(target.file, min_conversion_tensor_size)
            rest = _stream_nodes(f, conv)
            if not conv.graph_parts:
                raise _NoValidNodes
            return conv.finish(protos.GraphDef.FromString(rest).SerializeToString(deterministic=True))
    except (_Malformed, _NoValidNodes, DecodeError, RuntimeWarning, ValueError):
        # Not what this reader expects: the full parser gives the error it gives (or, should
        # the file be fine after all, the package is written from the parsed graph).
        return write_package(protos.parse_graph_def(src.read_bytes(), str(src)), out_p, min_conversion_tensor_size, src)


def _stream_nodes(f, conv: _Converter) -> bytes:
    """Feed every top-level node of the GraphDef in ``f`` to ``conv``; the other top-level
    fields come back as wire bytes."""
    fd = f.fileno()
    size = os.fstat(fd).st_size
    pos = 0
    rest = bytearray()
    while pos < size:
        head = os.pread(fd, 20, pos)
        key, hp = _varint(head, 0, len(head))
        wire = key & 7
        if wire == 2:
            length, hp = _varint(head, hp, len(head))
            end = pos + hp + length
        elif wire == 0:
            end = pos + _varint(head, hp, len(head))[1]
        elif wire in (1, 5):
            end = pos + hp + (8 if wire == 1 else 4)
        else:
            raise _Malformed
        if end > size or key >> 3 == 0:
            raise _Malformed
        if key >> 3 == _GRAPH_NODE and wire == 2:
            if length > _READ_WHOLE:
                body = _FileView(fd, pos + hp, length)
            else:
                body = os.pread(fd, length, pos + hp)
                if len(body) != length:
                    raise _Malformed
            conv.node(body, 0, length)
        else:
            rest += os.pread(fd, end - pos, pos)
        pos = end
    return bytes(rest)


# Nodes up to this size are read whole; a larger one (a big Const, in practice) is walked
# through a _FileView, so its tensor bytes are never read into Python at all.
_READ_WHOLE = 256 * 1024


class _Span:
    """Bytes [offset, offset + length) of the open file ``fd``."""

    __slots__ = ("fd", "offset", "length")

    def __init__(self, fd: int, offset: int, length: int):
        self.fd, self.offset, self.length = fd, offset, length

    def __len__(self) -> int:
        return self.length


class _FileView:
    """A node's wire bytes, ``length`` bytes at ``base`` of the file ``fd``, read on demand:
    walking the fields reads their headers in small blocks; a field's value is read only when
    sliced, and ``span`` names bytes without reading them."""

    _BLOCK = 4096

    def __init__(self, fd: int, base: int, length: int):
        self.fd, self.base, self.length = fd, base, length
        self._start, self._block = 0, b""

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, key):
        if isinstance(key, slice):
            start, stop, step = key.indices(self.length)
            if step != 1:
                raise ValueError("no strided reads")
            if self._start <= start and stop <= self._start + len(self._block):
                return self._block[start - self._start : stop - self._start]
            return self._read(start, max(stop - start, 0))
        if not 0 <= key < self.length:
            raise IndexError(key)
        if not self._start <= key < self._start + len(self._block):
            self._start, self._block = key, self._read(key, min(self._BLOCK, self.length - key))
        return self._block[key - self._start]

    def _read(self, start: int, size: int) -> bytes:
        data = os.pread(self.fd, size, self.base + start)
        if len(data) != size:
            raise _Malformed  # the file is shorter than its fields say
        return data

    def span(self, start: int, stop: int) -> _Span:
        return _Span(self.fd, self.base + start, stop - start)


# The one buffer tensor bytes pass through (allocated on first use, then reused): a fresh
# buffer per tensor would cost the kernel a page fault and zeroing per 4 kB on top of the copy.
_COPY_BUFFER: list[memoryview] = []
_COPY_CHUNK = 1 << 20


def _copy_span(span: _Span, out) -> None:
    """Append ``span`` to ``out``. Through one reused buffer: measured against the kernel's
    file-to-file copies (copy_file_range, sendfile) on these unaligned, few-MB regions, it was
    as fast or faster."""
    if not _COPY_BUFFER:
        _COPY_BUFFER.append(memoryview(bytearray(_COPY_CHUNK)))
    buf = _COPY_BUFFER[0]
    done = 0
    while done < span.length:
        want = min(_COPY_CHUNK, span.length - done)
        if hasattr(os, "preadv"):
            got = os.preadv(span.fd, [buf[:want]], span.offset + done)
            chunk = buf[:got]
        else:  # pragma: no cover - platforms without preadv
            chunk = os.pread(span.fd, want, span.offset + done)
            got = len(chunk)
        if got == 0:
            raise _Malformed  # the input ended early
        out.write(chunk)
        done += got


def _add_element(directory, name: str, offset: int, length: int) -> None:
    element = directory.element.add()
    element.offset = offset
    element.name = name
    element.length = length


def read_package(path) -> tuple[object, dict[str, tuple[int, int]]]:
    """(GraphDef, {region name: (offset, length)}) of a memmapped package. The GraphDef still
    has its ImmutableConst nodes; ``inline_regions`` turns them back into Consts."""
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
    directory = protos.MemmappedFileSystemDirectory()
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
        graph_def = protos.parse_graph_def(f.read(graph_span[1]), f"{p} (GraphDef region)")
    for node in graph_def.node:
        if node.op == "ImmutableConst":
            name = node.attr["memory_region_name"].s.decode("utf-8", "replace")
            if name not in regions:
                raise ModelError(f"{p}: node {node.name} points at region {name!r}, which the directory lacks", hint)
    return graph_def, regions


def inline_regions(graph_def, path, regions: dict[str, tuple[int, int]]):
    """A plain frozen GraphDef: every ImmutableConst reading a package region becomes a Const
    with the region's bytes, so Python (which cannot hand a MemmappedEnv to a session) runs it."""
    out = protos.copy(graph_def)
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
            dtype = node.attr["dtype"].type
            dims = protos.shape_dims(node.attr["shape"].shape)
            if dims is None or any(d < 0 for d in dims) or not protos.can_memcpy(dtype):
                raise ModelError(
                    f"{path}: node {node.name} has no fixed shape and type, so its region cannot be read",
                    "the file is damaged; convert the model again with `mobilebuild model memmap`",
                )
            count = 1
            for d in dims:
                count *= d
            expected = count * protos.dtype_size(dtype)
            if len(data) < expected:
                raise ModelError(
                    f"{path}: region {name!r} holds {len(data)} bytes, node {node.name} needs {expected}",
                    "the file is damaged; convert the model again with `mobilebuild model memmap`",
                )
            data = data[:expected]  # a length-less (old) directory counts the padding in
            node.op = "Const"
            node.attr.clear()
            node.attr["dtype"].type = dtype
            tensor = node.attr["value"].tensor
            tensor.dtype = dtype
            protos.set_shape(tensor.tensor_shape, dims)
            tensor.tensor_content = data
    return out
