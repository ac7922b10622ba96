"""TensorFlow's protobuf messages (GraphDef, NodeDef, AttrValue, TensorProto, the memmapped
directory, OpDef) without importing TensorFlow.

``import tensorflow`` costs seconds and hundreds of MB; parsing a GraphDef with the protobuf
runtime costs milliseconds. The installed ``tensorflow`` package ships its generated
``*_pb2.py`` modules, each holding its ``.proto`` file as a serialized ``FileDescriptorProto``
(the bytes literal passed to ``AddSerializedFile``). Importing those modules would run
``tensorflow/__init__`` (they live inside the package), so this module reads the bytes literal
out of the source with ``ast`` (no code of TensorFlow runs) and adds the files, dependencies
first, to protobuf's default descriptor pool. The installed TensorFlow stays the one source of
truth for the schema; nothing of it is copied here.

Why the default pool and not a pool of our own: these are byte for byte the files TensorFlow
adds there itself when it is imported, which protobuf accepts as the same file again; the
message classes are then TensorFlow's very own classes, before and after ``import
tensorflow``, so a GraphDef read here goes into TensorFlow's functions as it is. Should the
default pool already hold a different file under one of these names, a private pool is used
(``to_tf`` / ``ours`` then copy messages across byte for byte); should the descriptors not be
readable at all (an unusual TensorFlow build), TensorFlow's own modules are imported: slower,
never wrong.

Also here: DataType names and numpy types, and TensorProto <-> ndarray with the same encoding
as TensorFlow's ``make_tensor_proto`` / ``make_ndarray`` (the bytes must match whichever side
made them). numpy is imported inside the functions.

``MOBILEBUILD_GRAPH_BACKEND=tensorflow`` makes the graph commands take TensorFlow wherever they
have a path with and without it (tests and benchmarks compare the two).
"""

from __future__ import annotations

import ast
import importlib
import importlib.machinery
import os
import struct
from functools import lru_cache
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.message import DecodeError

from mobilebuild import console
from mobilebuild.errors import ModelError

# Full names of the messages the graph layer uses, by the .proto file that defines them.
_FILES = {
    "tensorflow/core/framework/graph.proto": ("GraphDef",),
    "tensorflow/core/framework/node_def.proto": ("NodeDef",),
    "tensorflow/core/framework/attr_value.proto": ("AttrValue", "NameAttrList"),
    "tensorflow/core/framework/tensor.proto": ("TensorProto",),
    "tensorflow/core/framework/tensor_shape.proto": ("TensorShapeProto",),
    "tensorflow/core/framework/versions.proto": ("VersionDef",),
    "tensorflow/core/framework/op_def.proto": ("OpDef", "OpList"),
    "tensorflow/core/util/memmapped_file_system.proto": ("MemmappedFileSystemDirectory", "MemmappedFileSystemDirectoryElement"),
}
MESSAGE_NAMES = tuple(name for names in _FILES.values() for name in names)

BACKEND_ENV = "MOBILEBUILD_GRAPH_BACKEND"


def prefer_tensorflow() -> bool:
    """True when the environment asks for the TensorFlow path wherever there is a choice."""
    return os.environ.get(BACKEND_ENV, "").strip().lower() in ("tensorflow", "tf")


class DescriptorsUnavailable(Exception):
    """The installed TensorFlow's descriptors could not be read without importing it."""


def _tensorflow_root() -> Path:
    # PathFinder, not importlib.util.find_spec: the latter consults sys.meta_path, where
    # mobilebuild.graphs keeps a one-shot finder that quiets TensorFlow's first real import.
    spec = importlib.machinery.PathFinder.find_spec("tensorflow")
    if spec is None or not spec.submodule_search_locations:
        raise DescriptorsUnavailable("no tensorflow package on sys.path")
    return Path(list(spec.submodule_search_locations)[0])


def _serialized_file(root: Path, proto_path: str) -> bytes:
    """The FileDescriptorProto bytes of ``proto_path`` from its generated module's source."""
    if proto_path.startswith("google/protobuf/"):
        module = importlib.import_module(proto_path[: -len(".proto")].replace("/", ".") + "_pb2")
        return module.DESCRIPTOR.serialized_pb
    rel = proto_path[len("tensorflow/") :] if proto_path.startswith("tensorflow/") else None
    if rel is None or not rel.endswith(".proto"):
        raise DescriptorsUnavailable(f"{proto_path} is not part of the tensorflow package")
    source = root / (rel[: -len(".proto")] + "_pb2.py")
    try:
        tree = ast.parse(source.read_bytes(), str(source))
    except (OSError, SyntaxError, ValueError) as exc:
        raise DescriptorsUnavailable(f"cannot read {source}: {exc}") from exc
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        # protoc >= 3.20 writes AddSerializedFile(b'...'); older gencode FileDescriptor(serialized_pb=b'...').
        candidates = list(node.args[:1]) if called == "AddSerializedFile" else []
        candidates += [kw.value for kw in node.keywords if kw.arg == "serialized_pb"]
        for value in candidates:
            if isinstance(value, ast.Constant) and isinstance(value.value, bytes):
                return value.value
    raise DescriptorsUnavailable(f"{source} holds no serialized descriptor")


def _register(pool):
    """Add the files of _FILES (and what they import) to ``pool`` unless it has them."""
    root = _tensorflow_root()
    done: set[str] = set()

    def add(proto_path: str, depth: int = 0) -> None:
        if proto_path in done:
            return
        if depth > 64:
            raise DescriptorsUnavailable(f"descriptor dependencies of {proto_path} do not end")
        try:
            pool.FindFileByName(proto_path)
            done.add(proto_path)
            return
        except KeyError:
            pass
        data = _serialized_file(root, proto_path)
        fdp = descriptor_pb2.FileDescriptorProto.FromString(data)
        if fdp.name != proto_path:
            raise DescriptorsUnavailable(f"the descriptor read for {proto_path} describes {fdp.name}")
        for dep in fdp.dependency:
            add(dep, depth + 1)
        try:
            pool.FindFileByName(proto_path)  # a dependency's module may have added it meanwhile
        except KeyError:
            pool.AddSerializedFile(data)
        done.add(proto_path)

    for proto_path in _FILES:
        add(proto_path)
    return pool


@lru_cache(maxsize=1)
def _pool():
    """The pool the message classes come from (see the module doc)."""
    try:
        return _register(descriptor_pool.Default())
    except (TypeError, ValueError) as exc:  # a different file of the same name is there already
        console.detail(f"protobuf's default pool refused TensorFlow's descriptors ({exc}); using a pool of our own")
        return _register(descriptor_pool.DescriptorPool())


def _message_class(descriptor):
    try:
        from google.protobuf.message_factory import GetMessageClass
    except ImportError:  # protobuf < 4.21
        from google.protobuf.message_factory import MessageFactory

        return MessageFactory(descriptor.file.pool).GetPrototype(descriptor)
    return GetMessageClass(descriptor)


@lru_cache(maxsize=1)
def _classes() -> dict:
    try:
        pool = _pool()
        return {name: _message_class(pool.FindMessageTypeByName(f"tensorflow.{name}")) for name in MESSAGE_NAMES}
    except (DescriptorsUnavailable, KeyError, TypeError, ValueError, DecodeError) as exc:
        console.detail(f"reading TensorFlow's protobuf descriptors failed ({exc}); using TensorFlow's own classes")
        return _tensorflow_classes()


@lru_cache(maxsize=1)
def _tensorflow_classes() -> dict:
    """TensorFlow's own generated classes (importing them imports TensorFlow)."""
    classes = {}
    for proto_path, names in _FILES.items():
        module = importlib.import_module(proto_path[: -len(".proto")].replace("/", ".") + "_pb2")
        classes.update({name: getattr(module, name) for name in names})
    return classes


def message_class(name: str):
    """The class of message ``tensorflow.<name>`` (one of MESSAGE_NAMES)."""
    return _classes()[name]


def __getattr__(name: str):
    # protos.GraphDef(), protos.NodeDef(), ... built on first use, not at import.
    if name in MESSAGE_NAMES:
        return message_class(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def is_ours(message) -> bool:
    """True when ``message`` is of our class (TensorFlow's own unless a private pool is used)."""
    return type(message) is message_class(message.DESCRIPTOR.name)


def ours(message):
    """``message`` as our class: itself, or a byte-for-byte copy of it."""
    if is_ours(message):
        return message
    return message_class(message.DESCRIPTOR.name).FromString(message.SerializeToString())


def to_tf(message):
    """A copy of ``message`` as TensorFlow's own class (imports TensorFlow): for handing a graph
    to TensorFlow code that checks types."""
    cls = _tensorflow_classes()[message.DESCRIPTOR.name]
    return cls.FromString(message.SerializeToString())


def copy(message):
    """A deep copy of ``message`` as our class, whatever class it came in."""
    out = message_class(message.DESCRIPTOR.name)()
    if is_ours(message):
        out.CopyFrom(message)
    else:
        out.ParseFromString(message.SerializeToString())
    return out


# ---------------------------------------------------------------------------------------------
# GraphDef bytes


def parse_graph_def(data: bytes, source: str = "model"):
    """Bytes -> GraphDef, or a ModelError saying why it is not one."""
    graph_def = message_class("GraphDef")()
    try:
        graph_def.ParseFromString(data)
    except (DecodeError, RuntimeWarning, ValueError) as exc:
        raise ModelError(
            f"{source} is not a TensorFlow GraphDef (it does not parse: {exc})".replace("\n", " "),
            "pass a frozen graph .pb (e.g. from freeze_graph or retrain.py); truncated downloads fail this way too",
        ) from exc
    if not graph_def.node or any(not n.op or not n.name for n in graph_def.node):
        raise ModelError(
            f"{source} is not a TensorFlow GraphDef (no valid nodes)",
            "pass a frozen graph .pb (e.g. from freeze_graph or retrain.py)",
        )
    return graph_def


def serialize(message) -> bytes:
    return message.SerializeToString(deterministic=True)


# ---------------------------------------------------------------------------------------------
# DataType

# DataType enum values (types.proto; stable since TF 1.0) of the types this package computes with.
DT_INVALID, DT_FLOAT, DT_DOUBLE, DT_INT32, DT_UINT8, DT_INT16, DT_INT8, DT_STRING = 0, 1, 2, 3, 4, 5, 6, 7
DT_COMPLEX64, DT_INT64, DT_BOOL, DT_QINT8, DT_QUINT8, DT_QINT32, DT_BFLOAT16 = 8, 9, 10, 11, 12, 13, 14
DT_QINT16, DT_QUINT16, DT_UINT16, DT_COMPLEX128, DT_HALF, DT_RESOURCE, DT_VARIANT = 15, 16, 17, 18, 19, 20, 21
DT_UINT32, DT_UINT64 = 22, 23

# enum -> numpy type name; quantized types as their storage integers.
_NUMPY = {
    DT_FLOAT: "float32", DT_DOUBLE: "float64", DT_INT32: "int32", DT_UINT8: "uint8", DT_INT16: "int16",
    DT_INT8: "int8", DT_STRING: "object", DT_COMPLEX64: "complex64", DT_INT64: "int64", DT_BOOL: "bool",
    DT_QINT8: "int8", DT_QUINT8: "uint8", DT_QINT32: "int32", DT_QINT16: "int16", DT_QUINT16: "uint16",
    DT_UINT16: "uint16", DT_COMPLEX128: "complex128", DT_HALF: "float16", DT_UINT32: "uint32", DT_UINT64: "uint64",
}
_FROM_NUMPY = {
    "float32": DT_FLOAT, "float64": DT_DOUBLE, "int32": DT_INT32, "uint8": DT_UINT8, "int16": DT_INT16,
    "int8": DT_INT8, "object": DT_STRING, "bytes": DT_STRING, "complex64": DT_COMPLEX64, "int64": DT_INT64,
    "bool": DT_BOOL, "uint16": DT_UINT16, "complex128": DT_COMPLEX128, "float16": DT_HALF,
    "uint32": DT_UINT32, "uint64": DT_UINT64,
}
QUANTIZED = {DT_QINT8, DT_QUINT8, DT_QINT32, DT_QINT16, DT_QUINT16}
# Types stored as tensor_content when a tensor has more than one element (TensorFlow's
# make_tensor_proto does the same; bool, string and complex go to the repeated *_val fields).
_CONTENT_TYPES = {
    DT_HALF, DT_FLOAT, DT_DOUBLE, DT_INT32, DT_UINT8, DT_INT16, DT_INT8, DT_INT64,
    DT_QINT8, DT_QUINT8, DT_QINT16, DT_QUINT16, DT_QINT32, DT_UINT32, DT_UINT64,
}
# Byte size of one element, for types whose tensors are raw fixed-size bytes.
_SIZES = {
    DT_FLOAT: 4, DT_DOUBLE: 8, DT_INT32: 4, DT_UINT8: 1, DT_INT16: 2, DT_INT8: 1, DT_COMPLEX64: 8,
    DT_INT64: 8, DT_BOOL: 1, DT_QINT8: 1, DT_QUINT8: 1, DT_QINT32: 4, DT_BFLOAT16: 2, DT_QINT16: 2,
    DT_QUINT16: 2, DT_UINT16: 2, DT_COMPLEX128: 16, DT_HALF: 2, DT_UINT32: 4, DT_UINT64: 8,
}


@lru_cache(maxsize=1)
def _datatype_names() -> tuple[dict, dict]:
    """({number: 'DT_...'}, {'DT_...': number}) from the DataType enum of the descriptors."""
    enum = message_class("TensorProto").DESCRIPTOR.fields_by_name["dtype"].enum_type
    return {v.number: v.name for v in enum.values}, {v.name: v.number for v in enum.values}


def dtype_name(enum: int) -> str:
    """4 -> 'DT_UINT8' (as TensorFlow's types_pb2.DataType.Name)."""
    names = _datatype_names()[0]
    if enum not in names:
        raise ValueError(f"unknown DataType {enum}")
    return names[enum]


def dtype_enum(name: str) -> int:
    """'DT_UINT8' -> 4."""
    return _datatype_names()[1][name]


def dtype_short_name(enum: int) -> str:
    """The name TensorFlow's tf.DType gives the type: 'float32', 'quint8', 'string', ..."""
    special = {DT_FLOAT: "float32", DT_DOUBLE: "float64", DT_HALF: "float16"}
    if enum in special:
        return special[enum]
    name = dtype_name(enum)
    return name[3:].lower() if name.startswith("DT_") else name.lower()


def dtype_size(enum: int) -> int:
    """Bytes per element; 0 for types that are not fixed-size bytes (string, resource, ...)."""
    return _SIZES.get(enum, 0)


def can_memcpy(enum: int) -> bool:
    """Tensors of this type are raw fixed-size bytes (TensorFlow's DataTypeCanUseMemcpy)."""
    return enum in _SIZES


def numpy_dtype(enum: int):
    import numpy as np

    if enum not in _NUMPY:
        raise ValueError(f"no numpy type for {dtype_name(enum)}")
    return np.dtype(_NUMPY[enum])


def dtype_of_numpy(dtype) -> int:
    import numpy as np

    dtype = np.dtype(dtype)
    key = "bytes" if dtype.kind in "SU" else dtype.name
    if key not in _FROM_NUMPY:
        raise ValueError(f"numpy type {dtype} has no TensorFlow DataType")
    return _FROM_NUMPY[key]


# ---------------------------------------------------------------------------------------------
# TensorProto <-> ndarray


def shape_dims(shape_proto) -> list[int] | None:
    """A TensorShapeProto's dims (-1 for unknown), None for an unknown rank."""
    if shape_proto.unknown_rank:
        return None
    return [d.size for d in shape_proto.dim]


def set_shape(shape_proto, dims) -> None:
    """Fill a TensorShapeProto from dims (None or -1 = unknown); dims None = unknown rank."""
    shape_proto.Clear()
    if dims is None:
        shape_proto.unknown_rank = True
        return
    for d in dims:
        shape_proto.dim.add().size = -1 if d is None else int(d)


class UnsupportedTensor(ValueError):
    """A TensorProto of a type this module does not decode (e.g. resource, variant)."""


def to_ndarray(tensor, writable: bool = True):
    """The value of a TensorProto as an ndarray (TensorFlow's make_ndarray: missing trailing
    values repeat the last one, no values at all means zeros). Quantized types come back as
    their storage integers (quint8 -> uint8). ``writable=False``: the array may be a read-only
    view of the tensor's bytes (no second copy of a large weight)."""
    import numpy as np

    if prefer_tensorflow():
        return _tf_to_ndarray(tensor)
    shape = [d.size for d in tensor.tensor_shape.dim]
    count = int(np.prod(shape, dtype=np.int64))
    enum = tensor.dtype
    if enum not in _NUMPY and enum != DT_BFLOAT16:
        raise UnsupportedTensor(f"tensors of type {dtype_name(enum)} have no numpy value")
    if enum == DT_BFLOAT16:
        raise UnsupportedTensor("bfloat16 tensors have no numpy type")
    dtype = numpy_dtype(enum)
    if tensor.tensor_content:
        if enum == DT_STRING:
            raise UnsupportedTensor("string tensors are not stored as raw content")
        values = np.frombuffer(tensor.tensor_content, dtype=dtype)
        return (values.copy() if writable else values).reshape(shape)
    if enum == DT_STRING:
        values = list(tensor.string_val)
        if values and len(values) < count:
            values += [values[-1]] * (count - len(values))
        if not values:
            values = [b""] * count
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out.reshape(shape)
    if enum == DT_HALF:
        values = np.fromiter(tensor.half_val, dtype=np.uint16).view(np.float16)
    elif enum == DT_FLOAT:
        values = np.fromiter(tensor.float_val, dtype=np.float32)
    elif enum == DT_DOUBLE:
        values = np.fromiter(tensor.double_val, dtype=np.float64)
    elif enum in (DT_INT32, DT_UINT8, DT_UINT16, DT_INT16, DT_INT8) or enum in QUANTIZED:
        values = np.fromiter(tensor.int_val, dtype=dtype)
    elif enum == DT_INT64:
        values = np.fromiter(tensor.int64_val, dtype=np.int64)
    elif enum == DT_UINT32:
        values = np.fromiter(tensor.uint32_val, dtype=np.uint32)
    elif enum == DT_UINT64:
        values = np.fromiter(tensor.uint64_val, dtype=np.uint64)
    elif enum == DT_BOOL:
        values = np.fromiter(tensor.bool_val, dtype=bool)
    elif enum in (DT_COMPLEX64, DT_COMPLEX128):
        flat = list(tensor.scomplex_val if enum == DT_COMPLEX64 else tensor.dcomplex_val)
        values = np.array([complex(a, b) for a, b in zip(flat[0::2], flat[1::2])], dtype=dtype)
    else:  # pragma: no cover - every type of _NUMPY is handled above
        raise UnsupportedTensor(f"tensors of type {dtype_name(enum)} are not decoded")
    if values.size == 0:
        return np.zeros(shape, dtype)
    if values.size != count:
        values = np.pad(values, (0, count - values.size), "edge")
    return values.reshape(shape)


# struct formats of the integer types (quantized ones as their storage integers).
_INT_FORMATS = {
    DT_INT32: "i", DT_INT64: "q", DT_INT16: "h", DT_INT8: "b", DT_UINT8: "B", DT_UINT16: "H", DT_UINT32: "I",
    DT_UINT64: "Q", DT_QINT8: "b", DT_QUINT8: "B", DT_QINT16: "h", DT_QUINT16: "H", DT_QINT32: "i",
}


def int_values(tensor) -> list[int] | None:
    """The elements of an integer TensorProto, flat, as ``to_ndarray(tensor).reshape(-1)``
    gives them, without numpy: shape inference reads small int tensors (axes, paddings, target
    shapes) and should not pay for importing numpy. None for a non-integer type; ValueError
    for values that do not fit the shape or the type."""
    fmt = _INT_FORMATS.get(tensor.dtype)
    if fmt is None:
        return None
    if prefer_tensorflow():
        return [int(x) for x in to_ndarray(tensor).reshape(-1)]
    count = 1
    for d in tensor.tensor_shape.dim:
        count *= d.size
    if tensor.tensor_content:
        data = tensor.tensor_content
        size = struct.calcsize(fmt)
        if len(data) % size or len(data) // size != count:
            raise ValueError(f"{len(data)} content bytes do not hold {count} values of {dtype_name(tensor.dtype)}")
        return list(struct.unpack(f"<{count}{fmt}", data))
    field = {DT_INT64: tensor.int64_val, DT_UINT32: tensor.uint32_val, DT_UINT64: tensor.uint64_val}.get(tensor.dtype, tensor.int_val)
    values = list(field)
    if not values:
        return [0] * count
    if len(values) > count:
        raise ValueError(f"{len(values)} values for {count} elements")
    bits = 8 * struct.calcsize(fmt)
    low, high = (0, 1 << bits) if fmt.isupper() else (-(1 << (bits - 1)), 1 << (bits - 1))
    if any(not low <= v < high for v in values):
        raise ValueError(f"a value does not fit {dtype_name(tensor.dtype)}")
    return values + [values[-1]] * (count - len(values))


def float_values(tensor, limit: int = 64) -> list[float] | None:
    """The elements of a small float32/float64 TensorProto, flat, as Python floats equal to
    ``to_ndarray(tensor).astype("float64").reshape(-1)``, without numpy (the scalar constants
    of an input normalisation). None for other types, more than ``limit`` elements, or the
    TensorFlow path; ValueError for values that do not fit the shape."""
    fmt = {DT_FLOAT: "f", DT_DOUBLE: "d"}.get(tensor.dtype)
    count = 1
    for d in tensor.tensor_shape.dim:
        count *= d.size
    if fmt is None or count > limit or count < 0 or prefer_tensorflow():
        return None
    if tensor.tensor_content:
        data = tensor.tensor_content
        if len(data) != count * struct.calcsize(fmt):
            raise ValueError(f"{len(data)} content bytes do not hold {count} values of {dtype_name(tensor.dtype)}")
        return list(struct.unpack(f"<{count}{fmt}", data))
    values = list(tensor.float_val if fmt == "f" else tensor.double_val)
    if not values:
        return [0.0] * count
    if len(values) > count:
        raise ValueError(f"{len(values)} values for {count} elements")
    return values + [values[-1]] * (count - len(values))


def _tf_to_ndarray(tensor):
    """to_ndarray done by TensorFlow's make_ndarray (quantized types as their storage ints)."""
    import numpy as np
    from tensorflow.python.framework import tensor_util

    if tensor.dtype in QUANTIZED:
        value = tensor_util.MakeNdarray(to_tf(tensor))
        return np.asarray(value).view(numpy_dtype(tensor.dtype)).reshape(value.shape)
    return tensor_util.MakeNdarray(to_tf(tensor))


def _tf_make_tensor(arr, dtype: int, dims):
    from tensorflow.python.framework import dtypes, tensor_util

    tf_dtype = dtypes.as_dtype(dtype)
    if dtype in QUANTIZED:
        arr = arr.astype(numpy_dtype(dtype)).view(tf_dtype.as_numpy_dtype)
    return ours(tensor_util.make_tensor_proto(arr, dtype=tf_dtype, shape=dims))


def make_tensor(value, dtype: int | None = None, shape=None, into=None):
    """A TensorProto holding ``value`` encoded as TensorFlow's make_tensor_proto encodes a numpy
    array: raw tensor_content when there is more than one element of a fixed-size type, the
    typed *_val field otherwise. ``dtype`` (an enum) names a quantized type for integer
    storage; ``shape`` overrides the array's shape (same element count). ``into``: an empty
    TensorProto (e.g. a node's attr) filled and returned, instead of a new one to copy there."""
    import numpy as np

    arr = np.asarray(value)
    if dtype is None:
        dtype = dtype_of_numpy(arr.dtype)
    elif dtype not in QUANTIZED and dtype != DT_STRING:
        arr = arr.astype(numpy_dtype(dtype), copy=False)
    elif dtype in QUANTIZED:
        arr = arr.astype(numpy_dtype(dtype), copy=False)
    dims = list(arr.shape) if shape is None else [int(d) for d in shape]
    if prefer_tensorflow() and dtype != DT_STRING:
        if into is None:
            return _tf_make_tensor(arr, dtype, dims)
        into.CopyFrom(_tf_make_tensor(arr, dtype, dims))
        return into
    tensor = message_class("TensorProto")() if into is None else into
    tensor.dtype = dtype
    set_shape(tensor.tensor_shape, dims)
    count = int(np.prod(dims, dtype=np.int64))
    if dtype in _CONTENT_TYPES and count > 1 and arr.size == count:
        tensor.tensor_content = np.ascontiguousarray(arr).tobytes()
        return tensor
    flat = arr.reshape(-1)
    if dtype == DT_HALF:
        tensor.half_val.extend(flat.view(np.uint16).tolist())
    elif dtype == DT_FLOAT:
        tensor.float_val.extend(flat.tolist())
    elif dtype == DT_DOUBLE:
        tensor.double_val.extend(flat.tolist())
    elif dtype in (DT_INT32, DT_UINT8, DT_UINT16, DT_INT16, DT_INT8) or dtype in QUANTIZED:
        tensor.int_val.extend(int(x) for x in flat)
    elif dtype == DT_INT64:
        tensor.int64_val.extend(int(x) for x in flat)
    elif dtype == DT_UINT32:
        tensor.uint32_val.extend(int(x) for x in flat)
    elif dtype == DT_UINT64:
        tensor.uint64_val.extend(int(x) for x in flat)
    elif dtype == DT_BOOL:
        tensor.bool_val.extend(bool(x) for x in flat)
    elif dtype == DT_STRING:
        tensor.string_val.extend(x if isinstance(x, bytes) else str(x).encode("utf-8") for x in flat)
    elif dtype in (DT_COMPLEX64, DT_COMPLEX128):
        target = tensor.scomplex_val if dtype == DT_COMPLEX64 else tensor.dcomplex_val
        for x in flat:
            target.extend([float(x.real), float(x.imag)])
    else:
        raise UnsupportedTensor(f"cannot encode a tensor of type {dtype_name(dtype)}")
    return tensor


def tensor_bytes(tensor) -> bytes:
    """The tensor's raw little-endian bytes, whether stored as tensor_content or as *_val."""
    import numpy as np

    if tensor.tensor_content:
        return bytes(tensor.tensor_content)
    if tensor.dtype == DT_BFLOAT16:  # bfloat16 values travel as the 16 bits in half_val
        count = int(np.prod([d.size for d in tensor.tensor_shape.dim], dtype=np.int64))
        values = np.fromiter(tensor.half_val, dtype=np.uint16)
        if values.size == 0:
            values = np.zeros(count, np.uint16)
        elif values.size != count:
            values = np.pad(values, (0, count - values.size), "edge")
        return values.tobytes()
    return np.ascontiguousarray(to_ndarray(tensor)).tobytes()


def tensor_dims(tensor) -> list[int]:
    return [d.size for d in tensor.tensor_shape.dim]
