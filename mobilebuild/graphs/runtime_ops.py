"""The op set of an old phone runtime, and making a TF 2.x graph fit it.

The TF-Mobile demo apps run the TensorFlow of their own tree (1.0 - 1.4). A GraphDef written by
TF 2.x uses ops (AddV2, FusedBatchNormV3) and attrs (Conv2D ``dilations``, ResizeBilinear
``half_pixel_centers``, ...) those runtimes reject at start-up on the phone. ``check_graph`` lists
what would fail; ``downgrade_graph`` rewrites a graph into the old op set without changing its
numbers, and refuses (naming the node) whatever would change them.

Op sets come from ``toolchains/tf-mobile-ops/<tag>.opdefs.json`` (derived from the real trees), or
are derived from a TF source tree given with ``tf_src`` (kernel registrations in the kernel files
of ``tensorflow/contrib/makefile/tf_op_files.txt``, REGISTER_OP calls in its ops files).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

from mobilebuild import console
from mobilebuild.choices import OPSET_RUNTIMES
from mobilebuild.errors import ModelError, UserError
from mobilebuild.graphs import protos
from mobilebuild.paths import TOOLCHAINS_DIR
from mobilebuild.profiles import load_profile, parse_version

OPS_DIR = TOOLCHAINS_DIR / "tf-mobile-ops"
OP_FILES_LIST = "tensorflow/contrib/makefile/tf_op_files.txt"

UNKNOWN_OP = "unknown_op"
NO_KERNEL = "no_kernel"
UNKNOWN_ATTR = "unknown_attr"
MISSING_ATTR = "missing_attr"


@dataclass
class OpInfo:
    name: str
    attrs: dict[str, str | None]  # attr name -> default as written in the op definition (None: required)
    has_kernel: bool


@dataclass
class OpSet:
    """The ops one runtime knows. ``tag`` names it in messages (``v1.1.0``)."""

    tag: str
    ops: dict[str, OpInfo]
    source: str = ""

    def __contains__(self, op: str) -> bool:
        return op in self.ops

    def kernel_ops(self) -> list[str]:
        return sorted(name for name, info in self.ops.items() if info.has_kernel)


@dataclass
class Problem:
    """One reason a node would not load in the target runtime."""

    node: str
    op: str
    kind: str  # unknown_op | no_kernel | unknown_attr | missing_attr
    detail: str

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.node} ({self.op}): {self.detail}"


# ---------------------------------------------------------------------------------------------
# Loading op sets


def bundled_tags() -> list[str]:
    return sorted(p.name[: -len(".opdefs.json")] for p in OPS_DIR.glob("*.opdefs.json"))


def _tag_for(tf_version: str) -> str:
    major, minor, _ = parse_version(tf_version)
    return f"v{major}.{minor}.0"


RUNTIMES = OPSET_RUNTIMES  # android: the demo's Bazel library; makefile: iOS libraries, the pod, Pi


def load_opset(tf_version: str, tf_src: Path | str | None = None, runtime: str | None = None) -> OpSet:
    """The op set of one phone runtime of TF ``tf_version`` (``"1.1"``, ``"v1.1.0"``):
    ``android`` (the library the Android demo links, built by Bazel) or ``makefile`` (the
    makefile build: iOS libraries, the TensorFlow-experimental pod, Raspberry Pi). They differ.

    With ``tf_src`` the makefile set is derived from that tree's tf_op_files.txt, so versions
    that were never bundled work too; otherwise (and for the Android library, whose kernel list
    lives in Bazel filegroups) the bundled data of the version profile is used. Without
    ``runtime``: ``makefile`` when ``tf_src`` is given (what it derives), else ``android``."""
    runtime = runtime or ("makefile" if tf_src is not None else "android")
    if runtime not in RUNTIMES:
        raise UserError(f"unknown runtime {runtime!r}", "use --runtime android (the Android demo) or makefile (iOS libraries, the pod, Raspberry Pi)")
    tag = _tag_for(tf_version)
    if tf_src is not None and runtime == "makefile":
        return derive_opset(Path(tf_src), tag)
    path = _bundled_path(tf_version, runtime)
    if path is None and runtime == "makefile":
        path = OPS_DIR / f"{tag}.opdefs.json"  # the makefile sets of 1.0 - 1.4, kept at the top level
    if path is None or not path.is_file():
        gone = _profile_note(tf_version, "makefile.why") if runtime == "makefile" else None
        if gone:
            raise UserError(f"TensorFlow {tf_version} has no makefile build: {gone}", "use --runtime android")
        raise UserError(
            f"no op set bundled for TensorFlow {tf_version} ({runtime} runtime; have: v1.0.0 - v2.3.0 android, "
            "v1.0.0 - v2.0.0 makefile)",
            "pass --tf-src PATH_TO_TF_TREE to derive the makefile set from the tree, or pick a bundled version",
        )
    return _load_bundled(str(path))


def _bundled_path(tf_version: str, runtime: str = "android") -> Path | None:
    """The op set the version profile names (toolchains/*.toml ``[runtime_ops]``)."""
    try:
        name = load_profile(tf_version).runtime_ops_name(runtime)
    except UserError:  # no profile covers this version: the caller explains what exists
        return None
    return TOOLCHAINS_DIR / f"{name}.opdefs.json" if name else None


def _profile_note(tf_version: str, key: str) -> str | None:
    try:
        return load_profile(tf_version).get(key)
    except UserError:
        return None


@lru_cache(maxsize=None)
def _load_bundled(path: str) -> OpSet:
    data = json.loads(Path(path).read_text())
    ops = {name: OpInfo(name, dict(d.get("attrs", {})), bool(d.get("has_kernel"))) for name, d in data["ops"].items()}
    # Kernels registered through file-local macros (Scatter*, Segment*, ...) are real kernels
    # the plain registration patterns missed: the derivation lists them beside the op set.
    macro = Path(path.replace(".opdefs.json", ".macro_regs.json"))
    if macro.is_file():
        for name in json.loads(macro.read_text()).get("ops", {}):
            if name in ops:
                ops[name].has_kernel = True
    return OpSet(tag=data.get("tag", Path(path).name.split(".opdefs")[0]), ops=ops, source=path)


_REGISTER_OP = re.compile(r'REGISTER_OP\s*\(\s*"(\w+)"\s*\)')
_ATTR_CALL = re.compile(r'\.Attr\s*\(\s*((?:"(?:[^"\\]|\\.)*"\s*)+)\)')
_STRING_PART = re.compile(r'"((?:[^"\\]|\\.)*)"')
# Attr specs built by helper functions in the TF 1.x sources (util/padding.h, tensor_format.h).
_ATTR_HELPERS = {
    "GetPaddingAttrString": "padding: {'SAME', 'VALID'}",
    "GetConvnetDataFormatAttrString": "data_format: {'NHWC', 'NCHW'} = 'NHWC'",
    "GetConvnet3dDataFormatAttrString": "data_format: {'NDHWC', 'NCDHW'} = 'NDHWC'",
}
_ATTR_HELPER_CALL = re.compile(r"\.Attr\s*\(\s*(" + "|".join(_ATTR_HELPERS) + r")\s*\(\s*\)\s*\)")
# Kernel registrations: REGISTER_KERNEL_BUILDER(Name("Op")...) and the cwise macros
# REGISTERn(BinaryOp, CPU, "Op", functor, types...).
_KERNEL_NAME = re.compile(r'Name\s*\(\s*"(\w+)"\s*\)')
_CWISE_KERNEL = re.compile(r'REGISTER\d*\s*\(\s*\w+\s*,\s*CPU\s*,\s*"(\w+)"')


def derive_opset(tf_src: Path, tag: str = "") -> OpSet:
    """Op set of the makefile (mobile) build of a TF source tree."""
    listing = tf_src / OP_FILES_LIST
    if not listing.is_file():
        raise UserError(
            f"{tf_src} has no {OP_FILES_LIST}: cannot derive the mobile op set from it",
            "point --tf-src at the root of a TensorFlow 1.x source tree",
        )
    return _derive_cached(str(tf_src.resolve()), listing.stat().st_mtime_ns, tag)


@lru_cache(maxsize=8)
def _derive_cached(src: str, _mtime: int, tag: str) -> OpSet:
    root = Path(src)
    files = [line.strip() for line in (root / OP_FILES_LIST).read_text().splitlines()]
    files = [f for f in files if f and not f.startswith("#")]
    kernels: set[str] = set()
    ops: dict[str, OpInfo] = {}
    for rel in files:
        path = root / rel
        if not path.is_file():
            continue
        text = _strip_comments(path.read_text(errors="replace"))
        if "/core/ops/" in rel:
            ops.update(_parse_op_registrations(text))
        else:
            kernels.update(_KERNEL_NAME.findall(text))
            kernels.update(_CWISE_KERNEL.findall(text))
    for name, info in ops.items():
        info.has_kernel = name in kernels
    return OpSet(tag=tag or root.name, ops=dict(sorted(ops.items())), source=f"derived from {root}")


def _strip_comments(text: str) -> str:
    """C++ comments and raw doc strings (R"doc(...)doc") hold prose, not registrations."""
    text = re.sub(r'R"(\w*)\(.*?\)\1"', '""', text, flags=re.S)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def _parse_op_registrations(text: str) -> dict[str, OpInfo]:
    out: dict[str, OpInfo] = {}
    starts = list(_REGISTER_OP.finditer(text))
    for i, m in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(text)
        body = text[m.end() : end]
        semi = body.find(";")
        body = body if semi < 0 else body[:semi]
        attrs: dict[str, str | None] = {}
        specs = ["".join(_STRING_PART.findall(call.group(1))) for call in _ATTR_CALL.finditer(body)]
        specs += [_ATTR_HELPERS[call.group(1)] for call in _ATTR_HELPER_CALL.finditer(body)]
        for spec in specs:
            name, _, rest = spec.partition(":")
            default = rest.split("=", 1)[1].strip() if "=" in rest else None
            attrs[name.strip()] = default
        out[m.group(1)] = OpInfo(m.group(1), dict(sorted(attrs.items())), False)
    return out


# ---------------------------------------------------------------------------------------------
# Checking


def check_graph(graph_def, opset: OpSet) -> list[Problem]:
    """Every node that would stop the graph from loading or running in ``opset``'s runtime."""
    problems: list[Problem] = []
    for node in graph_def.node:
        info = opset.ops.get(node.op)
        if info is None:
            alt = [o for o in RENAMES.get(node.op, ()) if o in opset.ops]
            extra = f"; `model downgrade` rewrites it to {alt[0]}" if alt else ""
            problems.append(Problem(node.name, node.op, UNKNOWN_OP, f"op {node.op} does not exist in TF {opset.tag}{extra}"))
            continue
        if not info.has_kernel:
            problems.append(
                Problem(node.name, node.op, NO_KERNEL, f"op {node.op} has no kernel in the TF {opset.tag} mobile build")
            )
        for attr in sorted(node.attr):
            if attr.startswith("_"):  # internal attrs (e.g. _output_shapes) are ignored by every loader
                continue
            if attr not in info.attrs:
                problems.append(
                    Problem(node.name, node.op, UNKNOWN_ATTR, f"NodeDef mentions attr '{attr}' not in Op {node.op} of TF {opset.tag}")
                )
        for attr, default in info.attrs.items():
            if default is None and attr not in node.attr:
                problems.append(
                    Problem(node.name, node.op, MISSING_ATTR, f"attr '{attr}' is required by Op {node.op} of TF {opset.tag}")
                )
    return problems


def summarize(problems: list[Problem]) -> list[str]:
    """Problems grouped for humans: one line per distinct problem, with the nodes it affects."""
    groups: dict[tuple[str, str], list[str]] = {}
    for p in problems:
        groups.setdefault((p.kind, p.detail), []).append(p.node)
    lines = []
    for (kind, detail), nodes in groups.items():
        shown = ", ".join(nodes[:3]) + (f" and {len(nodes) - 3} more" if len(nodes) > 3 else "")
        lines.append(f"{kind}: {detail} ({len(nodes)} node{'s' if len(nodes) > 1 else ''}: {shown})")
    return lines


# ---------------------------------------------------------------------------------------------
# Downgrading

# Newer op -> older ops computing the same thing, best first.
RENAMES: dict[str, tuple[str, ...]] = {
    "AddV2": ("Add",),
    "FusedBatchNormV3": ("FusedBatchNormV2", "FusedBatchNorm"),
    "FusedBatchNormV2": ("FusedBatchNorm",),
}


def _all_ones(v) -> bool:
    return all(x == 1 for x in v)


def _eq(expected):
    return lambda v: v == expected


def _close(expected: float):
    return lambda v: math.isclose(float(v), expected, rel_tol=1e-6)


# attr -> (holds the value the old op behaves as?, what the old op does). Ops without the attr
# behave exactly as the node does when the predicate holds, so the attr can be dropped.
SAFE_TO_DROP: dict[str, tuple] = {
    "dilations": (_all_ones, "the old op has no dilation (all 1)"),
    "explicit_paddings": (_eq([]), "the old op has no explicit padding"),
    "padding_list": (_eq([]), "the old op has no explicit padding"),
    "grad_a": (_eq(False), "grad_a only tags gradients (false)"),
    "grad_b": (_eq(False), "grad_b only tags gradients (false)"),
    "grad_x": (_eq(False), "grad_x only tags gradients (false)"),
    "grad_y": (_eq(False), "grad_y only tags gradients (false)"),
    "half_pixel_centers": (_eq(False), "the old op samples at pixel corners (half_pixel_centers=false)"),
    "Truncate": (_eq(False), "the old Cast rounds as Truncate=false"),
    "narrow_range": (_eq(False), "the old op uses the full quantized range (narrow_range=false)"),
    "ensure_minimum_range": (_close(0.01), "the old op widens the range by 1% (ensure_minimum_range=0.01)"),
    "round_mode": (_eq("HALF_AWAY_FROM_ZERO"), "the old op rounds half away from zero"),
    "exponential_avg_factor": (_close(1.0), "the old op has no running-average factor (1.0)"),
    "incompatible_shape_error": (_eq(True), "the old op errors on incompatible shapes"),
    "output_type": (_eq("DT_INT64"), "the old op outputs int64"),
}
# Per-op rules for generic attr names (only these ops' dtype / axis are known to be safe).
SAFE_TO_DROP_FOR_OP: dict[tuple[str, str], tuple] = {
    ("Dequantize", "dtype"): (_eq("DT_FLOAT"), "the old Dequantize outputs float"),
    ("Dequantize", "axis"): (_eq(-1), "the old op quantizes per tensor (axis=-1)"),
    ("QuantizeV2", "axis"): (_eq(-1), "the old op quantizes per tensor (axis=-1)"),
}
# Attr values the old op exists with but cannot honour.
REFUSED_VALUES: dict[str, tuple] = {
    "padding": (_eq("EXPLICIT"), "explicit padding does not exist in the old runtime"),
}


def attr_value(av):
    """An AttrValue as a plain Python value (types as their DT_ names)."""
    kind = av.WhichOneof("value")
    if kind == "list":
        lst = av.list
        for fld in ("s", "i", "f", "b", "type", "shape", "tensor"):
            values = list(getattr(lst, fld))
            if values:
                if fld == "s":
                    return [x.decode("utf-8", "replace") for x in values]
                if fld == "type":
                    return [protos.dtype_name(x) for x in values]
                return values
        return []
    if kind == "s":
        return av.s.decode("utf-8", "replace")
    if kind == "type":
        return protos.dtype_name(av.type)
    if kind in ("i", "f", "b"):
        return getattr(av, kind)
    return None


def _format_value(v) -> str:
    return json.dumps(v) if isinstance(v, (list, bool)) else str(v)


def downgrade_graph(graph_def, opset: OpSet):
    """(new GraphDef, change lines) such that the graph loads in ``opset``'s runtime and computes
    the same numbers. Raises ModelError naming the node and why when that is not possible."""
    out = protos.copy(graph_def)
    consumers = _output_indices_used(out)
    renamed: Counter = Counter()
    dropped: Counter = Counter()
    filled: Counter = Counter()
    refusals: list[str] = []
    for node in out.node:
        orig_op = node.op
        if node.op not in opset.ops:
            target = next((o for o in RENAMES.get(node.op, ()) if o in opset.ops), None)
            if target is None:
                refusals.append(f"node '{node.name}': op {node.op} has no counterpart in TF {opset.tag}")
                continue
            why = _rename(node, target, consumers.get(node.name, set()))
            if why:
                refusals.append(f"node '{node.name}': {why}")
                continue
            renamed[(orig_op, target)] += 1
        info = opset.ops[node.op]
        if not info.has_kernel:
            refusals.append(
                f"node '{node.name}': op {node.op} has no kernel in the TF {opset.tag} mobile runtime"
                + (" (cut the graph after the image decoding: `mobilebuild model optimize`)" if node.op.startswith("Decode") else "")
            )
            continue
        for attr in sorted(node.attr):
            if attr.startswith("_"):
                continue
            value = attr_value(node.attr[attr])
            if attr in REFUSED_VALUES and REFUSED_VALUES[attr][0](value):
                refusals.append(f"node '{node.name}': {node.op} {attr}={_format_value(value)}: {REFUSED_VALUES[attr][1]}")
                continue
            if attr in info.attrs:
                continue
            rule = SAFE_TO_DROP_FOR_OP.get((node.op, attr)) or SAFE_TO_DROP.get(attr)
            if rule is None:
                refusals.append(
                    f"node '{node.name}': {node.op} attr {attr}={_format_value(value)} does not exist in TF {opset.tag} "
                    "and mobilebuild does not know a value that is safe to drop"
                )
            elif not rule[0](value):
                refusals.append(
                    f"node '{node.name}': {node.op} {attr}={_format_value(value)} changes the result "
                    f"(TF {opset.tag} cannot express it: {rule[1]})"
                )
            else:
                del node.attr[attr]
                dropped[(node.op, attr)] += 1
        for attr, default in info.attrs.items():
            if default is None and attr not in node.attr and _fill_default(node, attr):
                filled[(node.op, attr)] += 1
    if refusals:
        more = f" (and {len(refusals) - 1} more)" if len(refusals) > 1 else ""
        decodes = any("image decoding" in r for r in refusals)
        raise ModelError(
            refusals[0] + more,
            f"`mobilebuild model optimize MODEL -o OUT --tf-version {'.'.join(opset.tag.lstrip('v').split('.')[:2])}` cuts the graph after its "
            "image decoding (feeds the normalised image, e.g. Mul) and rewrites the rest"
            if decodes else
            f"this graph cannot run unchanged on the TF {opset.tag} runtime; rebuild the model without it "
            "or target a newer TensorFlow tree",
        )
    changes = [f"{a} -> {b} ({n} node{'s' if n > 1 else ''})" for (a, b), n in sorted(renamed.items())]
    by_op: dict[str, list[str]] = {}
    counts: dict[str, int] = {}
    for (op, attr), n in sorted(dropped.items()):
        by_op.setdefault(op, []).append(attr)
        counts[op] = max(counts.get(op, 0), n)
    changes += [
        f"{op}: dropped {', '.join(attrs)} (values the old op behaves as; {counts[op]} node{'s' if counts[op] > 1 else ''})"
        for op, attrs in by_op.items()
    ]
    changes += [f"{op}: set required attr {attr} to its default ({n} nodes)" for (op, attr), n in sorted(filled.items())]
    return out, changes


def fit_to_opset(graph_def, opset: OpSet):
    """(GraphDef, change lines) that loads in ``opset``'s runtime: downgraded when the check finds
    problems, then checked again; a ModelError names the first node that still would not load."""
    if not check_graph(graph_def, opset):
        return graph_def, []
    graph_def, changes = downgrade_graph(graph_def, opset)
    problems = check_graph(graph_def, opset)
    if problems:
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ModelError(
            f"the model would not load in the TF {opset.tag} runtime: {problems[0]}{more}",
            "run `mobilebuild model check` for the full list; replace those ops before building the app",
        )
    return graph_def, changes


def _output_indices_used(graph_def) -> dict[str, set[int]]:
    used: dict[str, set[int]] = {}
    for node in graph_def.node:
        for inp in node.input:
            if inp.startswith("^"):
                continue
            name, _, idx = inp.partition(":")
            used.setdefault(name, set()).add(int(idx) if idx else 0)
    return used


def _rename(node, target: str, used_outputs: set[int]) -> str | None:
    """Rewrite ``node`` to ``target`` in place; a reason string when it would change the graph."""
    if node.op.startswith("FusedBatchNorm"):
        if target == "FusedBatchNorm":
            if "U" in node.attr and node.attr["U"].type != node.attr["T"].type:
                return f"{node.op} with U != T cannot become FusedBatchNorm (it has one type for all inputs)"
            node.attr.pop("U", None)
        # V3 has a 6th output (reserve_space_3) the older ops lack.
        if any(i >= 5 for i in used_outputs):
            return f"{node.op} output {max(used_outputs)} is used; {target} has only 5 outputs"
    node.op = target
    return None


def _fill_default(node, attr: str) -> bool:
    """A required attr missing from the node (graphs written with stripped defaults): set it to
    the default the current TF op definition gives it, which is what the node meant. Op
    definitions live in TensorFlow's native library: this rare case imports TensorFlow."""
    from tensorflow.python.framework import op_def_registry

    console.detail(f"reading the default of {node.op}.{attr} from TensorFlow's op registry")
    op_def = op_def_registry.get(node.op)
    if op_def is None:
        return False
    for a in op_def.attr:
        if a.name == attr and a.HasField("default_value"):
            node.attr[attr].ParseFromString(a.default_value.SerializeToString())
            return True
    return False


def missing_ops(problems: list[Problem]) -> list[str]:
    """Op names the runtime lacks entirely or has no kernel for."""
    return sorted({p.op for p in problems if p.kind in (UNKNOWN_OP, NO_KERNEL)})


__all__ = [
    "OpInfo",
    "OpSet",
    "Problem",
    "load_opset",
    "derive_opset",
    "check_graph",
    "downgrade_graph",
    "summarize",
    "missing_ops",
    "bundled_tags",
]
