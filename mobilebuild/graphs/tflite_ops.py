"""What a .tflite file asks of the runtime, read from its flatbuffer, and whether an app's
TensorFlow Lite runtime has it.

A TFLite runtime registers each builtin operator for a range of versions; a model names, per
operator code, the version its converter needed (a newer converter writes newer versions as soon
as an op uses int8, per-channel or hybrid quantization). A runtime that lacks the version stops
at start-up ("Didn't find op for builtin opcode 'CONV_2D' version '3'"), so the check reads every
operator code of the file, not only those a test image happens to run.

The file is read directly (a flatbuffer is a few offsets and vtables: no TensorFlow, no LiteRT
needed). The tables of the runtimes, per TensorFlow tag, are data in ``toolchains/tflite-ops/``:
``<tag>.json`` maps each builtin op to the [min, max] versions the tag's kernel registry accepts,
``<tag>.meta.json`` lists its custom ops, and ``schema.json`` holds the schema's enums.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
from collections import Counter
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

from mobilebuild import versions
from mobilebuild.errors import ModelError, UserError
from mobilebuild.paths import TOOLCHAINS_DIR
from mobilebuild.profiles import parse_version, version_str

TABLES_DIR = TOOLCHAINS_DIR / "tflite-ops"
FILE_IDENTIFIER = b"TFL3"

# Problem kinds
UNKNOWN_OP = "unknown_op"  # the runtime has no kernel for the op at all
NEWER_VERSION = "newer_version"  # it has the op, but not this version
UNKNOWN_CUSTOM_OP = "unknown_custom_op"


# ---- the schema's enums ---------------------------------------------------------------------


@lru_cache(maxsize=None)
def _schema() -> dict:
    return json.loads((TABLES_DIR / "schema.json").read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def _names(table: str) -> dict[int, str]:
    return {v: k for k, v in _schema()[table].items()}


def builtin_name(code: int) -> str:
    return _names("builtin_operators").get(code, f"BUILTIN_{code}")


def tensor_type_name(code: int) -> str:
    return _names("tensor_types").get(code, f"TYPE_{code}")


def current_name(name: str) -> str:
    """An op name as the current schema spells it (older schemas called RELU_N1_TO_1 RELU1)."""
    return _schema()["renamed"].get(name, name)


# ---- reading the flatbuffer -----------------------------------------------------------------


class _Buf:
    """Bounds-checked little-endian reads of one flatbuffer; any damage is a ModelError."""

    def __init__(self, data: bytes, label: str):
        self.data = data
        self.label = label

    def _unpack(self, fmt: str, pos: int):
        try:
            return struct.unpack_from(fmt, self.data, pos)[0]
        except struct.error:
            raise self.damaged(f"read past the end at offset {pos}") from None

    def u8(self, pos: int) -> int:
        return self._unpack("<B", pos)

    def i8(self, pos: int) -> int:
        return self._unpack("<b", pos)

    def u16(self, pos: int) -> int:
        return self._unpack("<H", pos)

    def i32(self, pos: int) -> int:
        return self._unpack("<i", pos)

    def u32(self, pos: int) -> int:
        return self._unpack("<I", pos)

    def i64(self, pos: int) -> int:
        return self._unpack("<q", pos)

    def f32(self, pos: int) -> float:
        return self._unpack("<f", pos)

    def damaged(self, why: str) -> ModelError:
        return ModelError(f"{self.label} is not a readable TFLite model: {why}", "convert it again (`mobilebuild model tflite`)")


class _Table:
    def __init__(self, buf: _Buf, pos: int):
        self.buf, self.pos = buf, pos
        self.vtable = pos - buf.i32(pos)
        self.vsize = buf.u16(self.vtable)

    def _field(self, index: int) -> int:
        """Absolute position of field ``index``, 0 when the field is absent (default value)."""
        slot = 4 + 2 * index
        if slot + 2 > self.vsize:
            return 0
        off = self.buf.u16(self.vtable + slot)
        return self.pos + off if off else 0

    def scalar(self, index: int, kind: str, default):
        at = self._field(index)
        return getattr(self.buf, kind)(at) if at else default

    def _target(self, index: int) -> int:
        at = self._field(index)
        return at + self.buf.u32(at) if at else 0

    def table(self, index: int) -> "_Table | None":
        at = self._target(index)
        return _Table(self.buf, at) if at else None

    def string(self, index: int) -> str | None:
        at = self._target(index)
        if not at:
            return None
        n = self.buf.u32(at)
        raw = self.buf.data[at + 4: at + 4 + n]
        if len(raw) != n:
            raise self.buf.damaged("a string runs past the end of the file")
        return raw.decode("utf-8", "replace")

    def vector(self, index: int, kind: str, size: int) -> list:
        at = self._target(index)
        if not at:
            return []
        n = self.buf.u32(at)
        if at + 4 + n * size > len(self.buf.data):
            raise self.buf.damaged("a vector runs past the end of the file")
        read = getattr(self.buf, kind)
        return [read(at + 4 + i * size) for i in range(n)]

    def tables(self, index: int) -> list["_Table"]:
        at = self._target(index)
        if not at:
            return []
        n = self.buf.u32(at)
        if at + 4 + n * 4 > len(self.buf.data):
            raise self.buf.damaged("a vector runs past the end of the file")
        out = []
        for i in range(n):
            elem = at + 4 + i * 4
            out.append(_Table(self.buf, elem + self.buf.u32(elem)))
        return out


@dataclass
class OpCode:
    """One entry of the model's operator_codes: what the runtime must have registered."""

    name: str  # builtin op name (CONV_2D) or the custom op's name
    version: int
    builtin_code: int | None  # None for a custom op
    custom: bool = False

    def __str__(self) -> str:
        return f"{self.name} v{self.version}" if not self.custom else f"custom op {self.name} v{self.version}"


@dataclass
class TensorInfo:
    name: str
    dtype: str  # FLOAT32, UINT8, INT8 ...
    shape: list[int]
    scale: float | None = None  # quantization of the tensor (per-tensor), when it has one
    zero_point: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TfliteModel:
    path: str
    schema_version: int
    op_codes: list[OpCode]
    op_counts: dict[str, int]  # "CONV_2D v3" -> operators using it (all subgraphs)
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    subgraphs: int = 1

    def input_feed(self) -> dict:
        """What an app feeds the first input: raw 0..255 pixels (uint8) or normalised floats,
        and the normalisation a quantized input applies to them."""
        t = self.inputs[0]
        out: dict = {"dtype": t.dtype, "scale": t.scale, "zero_point": t.zero_point}
        if t.dtype == "UINT8":
            out["feeds"] = "raw 0..255 pixels (one byte per channel)"
            if t.scale:
                # q = pixel; real = scale * (q - zero_point) = (pixel - mean) / std
                out["mean"], out["std"] = float(t.zero_point or 0), 1.0 / t.scale
        elif t.dtype == "INT8":
            out["feeds"] = "signed bytes (pixel - 128): none of the stock camera demos feeds these"
            if t.scale:
                out["mean"], out["std"] = float((t.zero_point or 0) + 128), 1.0 / t.scale
        elif t.dtype == "FLOAT32":
            out["feeds"] = "floats, (pixel - mean) / std (the model does not record mean and std)"
        else:
            out["feeds"] = f"{t.dtype} values: not an image input a camera demo feeds"
        return out

    @property
    def quantized_input(self) -> bool:
        return bool(self.inputs) and self.inputs[0].dtype == "UINT8"

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "schema_version": self.schema_version,
            "subgraphs": self.subgraphs,
            "operators": [{"op": c.name, "version": c.version, "custom": c.custom} for c in self.op_codes],
            "op_counts": dict(self.op_counts),
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "input_feed": self.input_feed() if self.inputs else None,
        }


def read_tflite(path_or_bytes, label: str | None = None) -> TfliteModel:
    """The operator codes, op counts and input/output tensors of a .tflite file. A file is
    memory-mapped: only the pages holding the tables are read, not the weights."""
    if isinstance(path_or_bytes, (bytes, bytearray)):
        return _read(bytes(path_or_bytes), label or "<bytes>", label)
    p = Path(path_or_bytes)
    try:
        with open(p, "rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                return _read(b"", str(p), label)
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return _read(data, str(p), label)
    except OSError as exc:
        raise ModelError(f"cannot read {p}: {exc.strerror or exc}", "check the path") from exc


def _read(data, path: str, label: str | None) -> TfliteModel:
    buf = _Buf(data, label or path)
    if len(data) < 8 or data[4:8] != FILE_IDENTIFIER:
        raise buf.damaged("no TFL3 file identifier")
    model = _Table(buf, buf.u32(0))
    op_codes = []
    for oc in model.tables(1):
        version = oc.scalar(2, "i32", 1)
        custom = oc.string(1)
        # Schemas before 2.4 had one byte-wide builtin_code in slot 0; later ones keep that slot
        # (capped at 127, "placeholder for greater op codes") and add a 32-bit one: the larger is
        # the op, as the runtime's own GetBuiltinCode reads it.
        code = max(oc.scalar(0, "i8", 0), oc.scalar(3, "i32", 0))
        if custom is not None and code == _schema()["builtin_operators"].get("CUSTOM", 32):
            op_codes.append(OpCode(custom, version, None, custom=True))
        else:
            op_codes.append(OpCode(builtin_name(code), version, code))
    counts: Counter = Counter()
    subgraphs = model.tables(2)
    if not subgraphs:
        raise buf.damaged("no subgraph")
    for sg in subgraphs:
        for op in sg.tables(3):
            index = op.scalar(0, "u32", 0)
            if index >= len(op_codes):
                raise buf.damaged(f"an operator refers to operator code {index} of {len(op_codes)}")
            counts[str(op_codes[index])] += 1
    main = subgraphs[0]
    tensors = main.tables(0)

    def tensor(i: int) -> TensorInfo:
        if not 0 <= i < len(tensors):
            raise buf.damaged(f"tensor index {i} out of range")
        t = tensors[i]
        info = TensorInfo(name=t.string(3) or f"tensor{i}", dtype=tensor_type_name(t.scalar(1, "i8", 0)),
                          shape=t.vector(0, "i32", 4))
        q = t.table(4)
        if q is not None:
            scales, zeros = q.vector(2, "f32", 4), q.vector(3, "i64", 8)
            if len(scales) == 1:
                info.scale = scales[0]
                info.zero_point = zeros[0] if zeros else 0
        return info

    return TfliteModel(
        path=path,
        schema_version=model.scalar(0, "u32", 0),
        op_codes=op_codes,
        op_counts=dict(sorted(counts.items())),
        inputs=[tensor(i) for i in main.vector(1, "i32", 4)],
        outputs=[tensor(i) for i in main.vector(2, "i32", 4)],
        subgraphs=len(subgraphs),
    )


# ---- the runtimes ---------------------------------------------------------------------------


@dataclass
class TfliteRuntime:
    """The builtin ops (name -> (min, max) version) and custom ops one runtime registers."""

    tag: str
    ops: dict[str, tuple[int, int]]
    custom_ops: frozenset[str] = frozenset()
    note: str | None = None  # e.g. when a newer version is checked against the newest table

    @property
    def version_text(self) -> str:
        return version_str(parse_version(self.tag))

    def accepts(self, op: OpCode) -> bool:
        return not problems_of([op], self)


def bundled_runtimes() -> list[str]:
    """Tags with a bundled table, oldest first."""
    tags = [p.name[: -len(".json")] for p in TABLES_DIR.glob("v*.json") if not p.name.endswith(".meta.json")]
    return sorted(tags, key=versions.sort_key)


def before_tflite(tf_version: str) -> bool:
    """True for a TensorFlow release older than the first TFLite runtime."""
    tags = bundled_runtimes()
    return bool(tags) and versions.older_than(parse_version(tf_version)[:2], parse_version(tags[0])[:2])


def load_runtime(tf_version: str) -> TfliteRuntime:
    """The TFLite runtime of TensorFlow ``tf_version`` (``"1.13"``, ``"v2.0.0"``, ``"1.13.1"``).

    The table of the same major.minor is used (patch releases do not change kernel registries).
    A version newer than the newest table is checked against that table: TFLite runtimes keep
    every op version they once registered, so what the newest bundled one accepts, a later one
    accepts too."""
    wanted = parse_version(tf_version)
    tags = bundled_runtimes()
    if not tags:  # pragma: no cover - shipped with the package
        raise UserError("no TFLite runtime tables are installed", f"reinstall mobilebuild ({TABLES_DIR} is empty)")
    same = [t for t in tags if parse_version(t)[:2] == wanted[:2]]
    note = None
    if same:
        tag = same[-1]
    elif versions.older_than(parse_version(tags[-1])[:2], wanted[:2]):
        tag = tags[-1]
        note = (f"TensorFlow {version_str(wanted)} is newer than the newest bundled TFLite table ({tag}): "
                "checked against that one (runtimes keep every op version they once had)")
    else:
        first = version_str(parse_version(tags[0])[:2])
        raise UserError(
            f"there is no TFLite runtime in TensorFlow {version_str(wanted)}: TFLite ships from TensorFlow {first}",
            f"use a TFLite runtime version of {first} or later (bundled: {', '.join(tags)})",
        )
    return _load_table(tag, note)


@lru_cache(maxsize=None)
def _load_table(tag: str, note: str | None) -> TfliteRuntime:
    raw = json.loads((TABLES_DIR / f"{tag}.json").read_text(encoding="utf-8"))
    meta_path = TABLES_DIR / f"{tag}.meta.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    ops = {current_name(name): (int(lo), int(hi)) for name, (lo, hi) in raw.items()}
    return TfliteRuntime(tag=tag, ops=ops, custom_ops=frozenset(meta.get("custom_ops_registered", [])), note=note)


# ---- checking -------------------------------------------------------------------------------


@dataclass
class OpProblem:
    """One operator code the runtime would not resolve at start-up."""

    op: str
    version: int
    kind: str  # unknown_op | newer_version | unknown_custom_op
    runtime: str  # tag
    have: tuple[int, int] | None = None

    def __str__(self) -> str:
        tf = version_str(parse_version(self.runtime))
        if self.kind == UNKNOWN_CUSTOM_OP:
            return f"custom op {self.op}: the TFLite runtime of TF {tf} does not register it"
        if self.kind == UNKNOWN_OP:
            return f"{self.op} version {self.version}: the TFLite runtime of TF {tf} has no {self.op} kernel"
        lo, hi = self.have  # type: ignore[misc]
        versions = f"version {hi}" if lo == hi else f"versions {lo}-{hi}"
        return f"{self.op} version {self.version}: the TFLite runtime of TF {tf} has {self.op} {versions} only"

    def to_dict(self) -> dict:
        return {"op": self.op, "version": self.version, "kind": self.kind, "runtime": self.runtime,
                "runtime_versions": list(self.have) if self.have else None, "message": str(self)}


def problems_of(op_codes: list[OpCode], runtime: TfliteRuntime) -> list[OpProblem]:
    out = []
    seen = set()
    for oc in op_codes:
        key = (oc.name, oc.version, oc.custom)
        if key in seen:
            continue
        seen.add(key)
        if oc.custom:
            if oc.name not in runtime.custom_ops:
                out.append(OpProblem(oc.name, oc.version, UNKNOWN_CUSTOM_OP, runtime.tag))
            continue
        have = runtime.ops.get(oc.name)
        if have is None:
            out.append(OpProblem(oc.name, oc.version, UNKNOWN_OP, runtime.tag))
        elif not have[0] <= oc.version <= have[1]:
            out.append(OpProblem(oc.name, oc.version, NEWER_VERSION, runtime.tag, have))
    return out


def check_model(model: TfliteModel, runtime: TfliteRuntime) -> list[OpProblem]:
    """Every operator code of ``model`` that ``runtime`` lacks (empty: it loads)."""
    return problems_of(model.op_codes, runtime)


@dataclass
class CheckReport:
    model: str
    runtime: str
    loads: bool
    problems: list[OpProblem] = field(default_factory=list)
    note: str | None = None

    def to_dict(self) -> dict:
        return {"model": self.model, "tflite_runtime": self.runtime, "loads": self.loads,
                "problems": [p.to_dict() for p in self.problems], "note": self.note}


def check_file(path, tf_version: str) -> CheckReport:
    runtime = load_runtime(tf_version)
    model = read_tflite(path)
    problems = check_model(model, runtime)
    return CheckReport(str(path), runtime.tag, not problems, problems, runtime.note)


def refusal(problems: list[OpProblem], what: str, hint: str) -> ModelError:
    """The error for a model that does not fit: every missing op/version named."""
    return ModelError(f"{what}: " + "; ".join(str(p) for p in problems), hint)
