"""Turn a user's model into the graph a TF-Mobile demo app can load, plus what the app must be told.

``prepare_for_app`` is what the android / ios flows call: values given win, the rest come from
inspection; DecodeJpeg chains are cut (the app feeds ``Mul``), optimize / quantize are applied
when asked, the graph is downgraded to the tree's runtime op set and checked, and the result is
written atomically. The user's model file is never modified.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from mobilebuild.errors import ModelError
from mobilebuild.fsutil import check_output_path, write_if_changed
from mobilebuild.graphs import io, memmap, nodes as gn, quantize as quantize_mod, runtime_ops
from mobilebuild.graphs.appinfo import AFFINE_OPS, app_info, spec_names
from mobilebuild.graphs.optimize import cut_graph, optimize_graph


@dataclass
class PreparedModel:
    path: Path
    input_name: str
    output_name: str
    input_size: int
    mean: float
    std: float
    num_classes: int | None
    channels: int
    memory_mapped: bool = False
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["path"] = str(self.path)
        return d


def fit_graph_for_runtime(graph_def, app, opset, input_name: str | None = None, output_name: str | None = None):
    """(GraphDef, change lines): cut at the app's input when it is an inner node, keep only what
    the output needs, downgrade to ``opset`` and check. ModelError when it cannot load there."""
    inp = input_name or app.input_name
    out = output_name or app.output_name
    if not inp or not out:
        raise ModelError("cannot tell the graph's input/output node", "pass --input-name and --output-name")
    graph_def, changes = cut_for_app(graph_def, inp, out)
    graph_def, rewritten = _fit_to_runtime(graph_def, opset)
    return graph_def, changes + rewritten


def _fit_to_runtime(graph_def, opset):
    """runtime_ops.fit_to_opset, its change lines saying which runtime they are for."""
    graph_def, rewritten = runtime_ops.fit_to_opset(graph_def, opset)
    return graph_def, [f"rewrote for the TF {opset.tag} runtime: {line}" for line in rewritten]


def _opset_for(tf_version: str, tf_src, runtime: str | None = None):
    """(op set, note lines): the makefile set from the tree when it has its op list, else the
    bundled set of ``runtime`` (default: makefile with ``tf_src``, else android)."""
    runtime = runtime or ("makefile" if tf_src is not None else "android")
    if runtime == "makefile" and tf_src is not None and not (Path(tf_src) / runtime_ops.OP_FILES_LIST).is_file():
        opset = runtime_ops.load_opset(tf_version, runtime=runtime)
        return opset, [f"{tf_src} has no {runtime_ops.OP_FILES_LIST}: checked against the bundled TF {opset.tag} op set"]
    return runtime_ops.load_opset(tf_version, tf_src, runtime=runtime), []


def cut_for_app(graph_def, inp: str, out: str):
    """(GraphDef with only what ``out`` needs when ``inp`` is fed, note lines). An inner ``inp``
    (``Mul`` of a retrain.py graph) becomes a Placeholder; the note says what was dropped."""
    nodes = gn.node_map(graph_def)
    cut, dropped = cut_graph(graph_def, [inp], [out])
    if nodes[inp].op == "Placeholder":
        return cut, []
    dropped_ops = sorted({nodes[d].op for d in dropped if d in nodes})
    why = " (image decoding has no kernel on the phone)" if any(op.startswith("Decode") for op in dropped_ops) else ""
    return cut, [f"cut the graph at '{inp}'{why}: dropped {len(dropped)} nodes ({', '.join(dropped_ops)})"]


def prepare_for_app(
    model_path,
    out_path,
    *,
    tf_version: str,
    tf_src=None,
    input_name: str | None = None,
    output_name: str | None = None,
    input_size: int | None = None,
    mean: float | None = None,
    std: float | None = None,
    optimize: bool = False,
    quantize: str | None = None,
    runtime: str | None = None,
    whole_mean: bool = False,
    memory_map: bool = False,
) -> PreparedModel:
    """``whole_mean``: the app holds the mean in an int (the TF-Mobile Android demo's
    IMAGE_MEAN); a fractional mean read from the graph then keeps the normalisation inside the
    graph and the app feeds raw pixels (mean 0, std 1), which is exact.

    ``memory_map``: write the app's copy as a memmapped package (the iOS example's
    ``model_uses_memory_mapping``), after the cut, optimize and quantize steps; mean and std
    are read from the graph as given, before anything is cut away."""
    if quantize:
        quantize_mod.check_mode(quantize)
    model = io.load_model(model_path)
    if model.graph_def is None:
        raise ModelError(
            f"{model.path} is a {model.format} model; the TF-Mobile demo apps load frozen GraphDefs",
            "give the frozen .pb (or its memmapped package)",
        )
    out_p = check_output_path(out_path, model.path)
    opset, opset_note = _opset_for(tf_version, tf_src, runtime)
    memory_mapped = model.format == io.MEMMAPPED
    graph_def = model.graph_def
    if memory_mapped:
        graph_def = memmap.inline_regions(graph_def, model.path, model.regions)

    specs = gn.tensor_specs(graph_def, spec_names(graph_def, input_name, output_name))
    app = app_info(graph_def, specs)
    values = resolve_app_values(graph_def, app, specs, input_name, output_name, input_size, mean, std)
    frozen_notes = list((model.frozen or {}).get("notes", []))
    if whole_mean and mean is None and input_name is None:
        frozen_notes += _feed_raw_pixels_for_whole_mean(app, graph_def, values)
    inp, out = values["input_name"], values["output_name"]

    graph_def, notes = cut_for_app(graph_def, inp, out)
    notes = frozen_notes + notes
    if optimize:
        result = optimize_graph(graph_def, [inp], [out])
        graph_def = result.graph_def
        notes += [f"optimized: {n}" for n in result.notes]
    if quantize:
        before = len(graph_def.SerializeToString())
        graph_def = quantize_mod.quantize_graph_def(graph_def, quantize, input_names=[inp], output_names=[out])
        notes.append(f"quantized ({quantize}): {before} -> {len(graph_def.SerializeToString())} bytes")
    graph_def, changes = _fit_to_runtime(graph_def, opset)  # already cut at inp above
    notes += changes + opset_note

    oshape = (gn.tensor_specs(graph_def, [out]).get(out) or (None,))[0]
    num_classes = int(oshape[-1]) if oshape and oshape[-1] else values["num_classes"]

    if memory_mapped:
        memmap.write_package(graph_def, out_p, min_region_size(model.regions), model.path)
        notes.append("kept the memmapped format (the app loads it through MemmappedEnv)")
    elif memory_map:
        stats = memmap.write_package(graph_def, out_p, memmap.DEFAULT_MIN_CONVERSION_TENSOR_SIZE, model.path)
        memory_mapped = True
        notes.append(f"memory-mapped: {stats.converted} tensor(s) ({stats.region_bytes} bytes) in regions, "
                     f"{stats.kept_consts} small Const(s) inline (the app loads it through MemmappedEnv)")
    else:
        write_if_changed(out_p, io.serialize(graph_def))
    return PreparedModel(
        path=out_p,
        input_name=inp,
        output_name=out,
        input_size=values["input_size"],
        mean=values["mean"],
        std=values["std"],
        num_classes=num_classes,
        channels=values["channels"],
        memory_mapped=memory_mapped,
        notes=notes,
    )


def raw_pixel_input(app, graph_def) -> str | None:
    """The node holding raw pixels right before the graph's own normalisation (the graph input,
    or the resize output of a graph that decodes images itself); None without normalisation."""
    nodes = gn.node_map(graph_def)
    previous = app.graph_input
    for name in app.preprocessing:
        if nodes[name].op in AFFINE_OPS:
            return previous
        previous = name
    return None


def _feed_raw_pixels_for_whole_mean(app, graph_def, values: dict) -> list[str]:
    mean = values["mean"]
    if float(mean).is_integer() or values["input_name"] != app.input_name:
        return []
    raw = raw_pixel_input(app, graph_def)
    if raw is None:
        return []
    values.update(input_name=raw, mean=0.0, std=1.0)
    return [
        f"the model's mean {mean:g} is not a whole number and the app's IMAGE_MEAN is an int: the "
        f"normalisation stays inside the graph (exact) and the app feeds raw pixels to '{raw}' (mean 0, std 1)"
    ]


def resolve_app_values(graph_def, app, specs, input_name=None, output_name=None, input_size=None, mean=None, std=None) -> dict:
    """Input/output names, size, channels, mean/std, classes: values given win, the rest come
    from inspection (``app``). ModelError naming the flag to pass when something is unknown."""
    inp = gn.require_nodes(graph_def, [input_name], "input node")[0] if input_name else app.input_name
    out = gn.require_nodes(graph_def, [output_name], "output node")[0] if output_name else app.output_name
    if not inp:
        raise ModelError("cannot tell which node to feed", "pass --input-name NODE")
    if not out:
        raise ModelError("cannot tell the model's output node", "pass --output-name NODE")
    inferred_mean, inferred_std = app.normalisation_of(inp) or (None, None)
    mean = inferred_mean if mean is None else float(mean)
    std = inferred_std if std is None else float(std)
    if mean is None or std is None:
        raise ModelError(
            f"the input normalisation of '{inp}' is unknown (the graph does not contain it)",
            "pass --mean and --std: the values the model was trained with, e.g. --mean 128 --std 128",
        )
    if std == 0:
        raise ModelError("--std must not be 0", "pass the standard deviation used in training, e.g. --std 128")
    if input_size is not None and input_size <= 0:
        raise ModelError(f"--input-size must be a positive number of pixels, got {input_size}", "e.g. --input-size 224")
    shape = (specs.get(inp) or (None,))[0]
    if input_size is None:
        input_size = app.input_size if inp == app.input_name else (shape[1] if shape and len(shape) == 4 else None)
    if not input_size:
        raise ModelError(f"the input size of '{inp}' is unknown", "pass --input-size PIXELS (e.g. 224)")
    channels = app.channels or (shape[3] if shape and len(shape) == 4 and shape[3] else 3)
    oshape = (specs.get(out) or (None,))[0]
    num_classes = int(oshape[-1]) if oshape and oshape[-1] else (app.num_classes if out == app.output_name else None)
    return {
        "input_name": inp,
        "output_name": out,
        "input_size": int(input_size),
        "mean": float(mean),
        "std": float(std),
        "channels": int(channels),
        "num_classes": num_classes,
    }


def min_region_size(regions: dict | None) -> int:
    """The --min-conversion-tensor-size that memory-maps the same tensors again: the smallest
    region of the original package (regions are tensors of at least that many bytes)."""
    sizes = [length for _, length in (regions or {}).values() if length]
    return min(sizes) if sizes else memmap.DEFAULT_MIN_CONVERSION_TENSOR_SIZE
