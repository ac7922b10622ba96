"""`mobilebuild model ...`: inspect, optimize, check, downgrade, label, compare (this module) and
quantize, memmap, tflite (cli/model_formats.py). TensorFlow is imported inside the commands.

With no model argument, inspect / label / compare use the built-in default model
(mobilebuild.defaults). Results: human text on stdout (stderr with --json), the machine result
alone on stdout with --json.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from mobilebuild import console
from mobilebuild.choices import OPSET_RUNTIMES
from mobilebuild.cli._render import RUNTIME_HELP, TF_SRC_HELP, TF_VERSION_HELP
from mobilebuild.cli._render import check_tf_src as _check_tf_src
from mobilebuild.cli._render import default_model_if as _default_model_if
from mobilebuild.cli._render import fmt as _fmt
from mobilebuild.cli._render import human as _human
from mobilebuild.cli._render import names as _names
from mobilebuild.cli._render import say as _say
from mobilebuild.cli.model_formats import register as register_formats
from mobilebuild.cli.options import choice_option, working

model_app = typer.Typer(
    name="model",
    help="Inspect, optimize, quantize, memory-map, check and run a TensorFlow image model.",
    no_args_is_help=True,
)


def register(root: typer.Typer) -> None:
    register_formats(model_app)
    root.add_typer(model_app, name="model")


# ---------------------------------------------------------------------------------------------
# inspect


@model_app.command("inspect")
@working('reading the model')
def inspect_cmd(
    model: Optional[Path] = typer.Argument(None, help="Frozen GraphDef (.pb), memmapped package or .tflite. Default: the built-in model."),
    tf_version: Optional[str] = typer.Option(None, "--tf-version", help=TF_VERSION_HELP + " Lists what its runtime lacks."),
    tf_src: Optional[Path] = typer.Option(None, "--tf-src", help=TF_SRC_HELP),
    nodes: bool = typer.Option(False, "--nodes", help="List every node (name, op, inputs) instead of the summary."),
) -> None:
    """Format, inputs, outputs, op counts, parameters, and what the app must be told."""
    from mobilebuild.graphs.inspect import inspect_model

    _check_tf_src(tf_version, tf_src)
    report = inspect_model(_default_model_if(model), tf_version=tf_version, tf_src=tf_src, nodes=nodes)
    if console.settings.json:
        console.emit_json(report.to_dict())
        return
    if nodes:
        # One node a line, tab-separated: made for grep/cut.
        for n in report.nodes or []:
            _say(f"{n['name']}\t{n['op']}\t{','.join(n['inputs'])}".rstrip())
        return
    _print_report(report)


def _print_report(report) -> None:
    _say(f"model:      {report.path} ({report.format}, {_human(report.size_bytes)})")
    for i in report.inputs:
        _say(f"input:      {i['name']}  {i['dtype']}  {i['shape']}")
    for o in report.outputs[:5]:
        op = f"({o['op']}) " if o.get("op") else ""
        _say(f"output:     {o['name']}  {op}{o['dtype']}  {o['shape']}")
    if report.node_count:
        top = ", ".join(f"{op} {n}" for op, n in list(report.op_counts.items())[:8])
        _say(f"nodes:      {report.node_count} ({top}{', ...' if len(report.op_counts) > 8 else ''})")
    if report.params is not None:
        _say(f"parameters: {report.params:,} ({_human(report.param_bytes)} of constants)")
    if report.tflite:
        _print_tflite(report.tflite)
    app = report.app
    _say("for the app:")
    _say(f"  input node   {app.input_name or '?'}" + (f"  (graph input: {app.graph_input})" if app.graph_input and app.graph_input != app.input_name else ""))
    _say(f"  input size   {app.input_size or '?'}  ({app.channels or '?'} channels)")
    _say(f"  mean / std   {_fmt(app.mean)} / {_fmt(app.std)}")
    _say(f"  output node  {app.output_name or '?'}")
    _say(f"  classes      {app.num_classes if app.num_classes else '?'}")
    for note in app.notes:
        _say(f"  note: {note}")
    rt = report.runtime
    if rt:
        if rt.get("loads"):
            _say(f"runtime TF {rt.get('tag', rt['tf_version'])}: loads as is")
        else:
            missing = rt.get("missing_ops") or []
            _say(f"runtime TF {rt.get('tag', rt['tf_version'])}: would NOT load as is"
                 + (f"; ops it lacks: {', '.join(missing)}" if missing else ""))
            for line in rt.get("summary", []):
                _say(f"  {line}")
            after = rt.get("after_prepare")
            if after and after.get("loads"):
                _say("  mobilebuild fixes this when it puts the model into the app (or: `mobilebuild model optimize --tf-version`):")
                for line in after["changes"]:
                    _say(f"    {line}")
            elif after:
                _say(f"  cannot be fixed automatically: {after['reason']}")


def _print_tflite(info: dict) -> None:
    ops = ", ".join(f"{o['op']} v{o['version']}" for o in info["operators"])
    _say(f"operators:  {ops}")
    feed = info.get("input_feed") or {}
    if feed.get("scale"):
        _say(f"input quantization: {feed['dtype']} scale {feed['scale']:.6g}, zero point {feed['zero_point']}"
             + (f" (as mean {feed['mean']:g} / std {feed['std']:.4g} of a float model)" if "mean" in feed else ""))
    if feed.get("feeds"):
        _say(f"the app feeds: {feed['feeds']}")
    rt = info.get("runtime")
    if rt:
        if rt["loads"]:
            _say(f"TFLite runtime {rt['tflite_runtime']}: loads")
        else:
            _say(f"TFLite runtime {rt['tflite_runtime']}: would NOT load")
            for p in rt["problems"]:
                _say(f"  {p['message']}")


# ---------------------------------------------------------------------------------------------
# optimize


@model_app.command("optimize")
@working('optimizing')
def optimize_cmd(
    model: Path = typer.Argument(..., help="Frozen GraphDef (.pb) or memmapped package."),
    output: Path = typer.Option(..., "-o", "--output", help="Where to write the optimized .pb."),
    input_names: Optional[List[str]] = typer.Option(None, "--input-names", help="Node(s) to feed, comma-separated; an inner node becomes a Placeholder (e.g. Mul). Default: auto."),
    output_names: Optional[List[str]] = typer.Option(None, "--output-names", help="Output node(s), comma-separated. Default: auto."),
    tf_version: Optional[str] = typer.Option(None, "--tf-version", help=TF_VERSION_HELP + " Also downgrade the result to its op set."),
    tf_src: Optional[Path] = typer.Option(None, "--tf-src", help=TF_SRC_HELP),
    runtime: Optional[str] = choice_option(None, "--runtime", choices=OPSET_RUNTIMES, help=RUNTIME_HELP),
) -> None:
    """optimize_for_inference + cutting at an inner node + folding Keras 3 batch norms."""
    from mobilebuild.fsutil import check_output_path, write_if_changed
    from mobilebuild.graphs import io, runtime_ops
    from mobilebuild.graphs.optimize import optimize_graph

    _check_tf_src(tf_version, tf_src)
    io.require_file(model)
    check_output_path(output, model)
    opset = runtime_ops.load_opset(tf_version, tf_src, runtime=runtime) if tf_version else None
    graph_def, loaded = io.load_frozen_graph(model)
    result = optimize_graph(graph_def, _names(input_names), _names(output_names))
    out_graph, changes = result.graph_def, []
    if opset is not None:
        out_graph, changes = runtime_ops.fit_to_opset(out_graph, opset)
    write_if_changed(output, io.serialize(out_graph))
    size_out = output.stat().st_size
    summary = {
        "output": str(output),
        "input_names": result.input_names,
        "output_names": result.output_names,
        "nodes_before": result.nodes_before,
        "nodes_after": len(out_graph.node),
        "size_before": loaded.size_bytes,
        "size_after": size_out,
        "notes": result.notes,
        "tf_version": tf_version,
        "runtime_changes": changes,
    }
    if console.settings.json:
        console.emit_json(summary)
    for note in result.notes:
        console.info(f"  {note}")
    for change in changes:
        console.info(f"  rewrote for TF {opset.tag}: {change}")
    console.success(
        f"optimized: {result.nodes_before} -> {len(out_graph.node)} nodes, {_human(loaded.size_bytes)} -> {_human(size_out)}; "
        f"feed {','.join(result.input_names)}, read {','.join(result.output_names)}; wrote {output}"
    )


# ---------------------------------------------------------------------------------------------
# check / downgrade (against the op set of an app's TensorFlow runtime)


@model_app.command("check")
@working('checking the graph')
def check_cmd(
    model: Optional[Path] = typer.Argument(None, help="Frozen GraphDef (.pb), memmapped package or .tflite. Default: the built-in model."),
    tf_version: Optional[str] = typer.Option(None, "--tf-version", help=TF_VERSION_HELP + " For a .tflite: the TFLite runtime of that release."),
    tflite_runtime: Optional[str] = typer.Option(None, "--tflite-runtime", help="TFLite runtime (TensorFlow release, 1.5+) a .tflite must load in, e.g. 1.13."),
    tf_src: Optional[Path] = typer.Option(None, "--tf-src", help=TF_SRC_HELP),
    runtime: Optional[str] = choice_option(None, "--runtime", choices=OPSET_RUNTIMES, help=RUNTIME_HELP),
) -> None:
    """Would the model load in the app's runtime? Lists every node (GraphDef) or op version (.tflite) it lacks; exit 1 if any."""
    from mobilebuild.errors import ModelError, UserError
    from mobilebuild.graphs import io, runtime_ops

    path = _default_model_if(model)
    if tflite_runtime or (model is not None and io.detect_format(path) == io.TFLITE):
        if io.detect_format(path) != io.TFLITE:
            raise UserError(
                f"--tflite-runtime checks a .tflite file; {path} is a TensorFlow graph",
                f"convert it for that runtime: `mobilebuild model tflite {path} -o OUT.tflite --tf-version {tflite_runtime}`",
            )
        if tf_src is not None:
            raise UserError("--tf-src is for GraphDef op sets; a .tflite is checked against the bundled TFLite tables",
                            "drop --tf-src")
        _check_tflite(path, tflite_runtime or tf_version)
        return
    if not tf_version:
        raise UserError("model check needs --tf-version (or --tflite-runtime for a .tflite)", "e.g. --tf-version 1.1")
    opset = runtime_ops.load_opset(tf_version, tf_src, runtime=runtime)
    rt = runtime or ("makefile" if tf_src else "android")
    graph_def = io.load_graph_def(path)
    problems = runtime_ops.check_graph(graph_def, opset)
    if console.settings.json:
        console.emit_json(
            {
                "model": str(path),
                "tf_version": tf_version,
                "runtime": runtime or ("makefile" if tf_src else "android"),
                "tag": opset.tag,
                "loads": not problems,
                "missing_ops": runtime_ops.missing_ops(problems),
                "problems": [p.to_dict() for p in problems],
            }
        )
    if not problems:
        console.success(f"{path} loads in the TF {opset.tag} runtime ({rt} build; {len(graph_def.node)} nodes checked)")
        return
    # Grouped (one line per distinct problem, with the nodes); every node with --verbose / --json.
    for line in runtime_ops.summarize(problems):
        _say(line)
    for p in problems:
        console.detail(f"  {p.kind:13} {p}")
    fixable = sum(1 for p in problems if p.kind in (runtime_ops.UNKNOWN_ATTR, runtime_ops.UNKNOWN_OP))
    raise ModelError(
        f"{path} would not load in the TF {opset.tag} runtime: {len(problems)} problem(s) in "
        f"{len({p.node for p in problems})} node(s)",
        f"`mobilebuild model downgrade {path} -o OUT --tf-version {tf_version}" + (f" --runtime {runtime}" if runtime else "") + "` rewrites what can be rewritten"
        + ("" if fixable == len(problems) else "; ops without a kernel must be cut away (`model optimize`) or replaced"),
    )


def _check_tflite(path: Path, runtime_version: str | None) -> None:
    """Every operator code of a .tflite that the TFLite runtime of ``runtime_version`` lacks."""
    from mobilebuild.errors import ModelError, UserError
    from mobilebuild.graphs import tflite_ops

    if not runtime_version:
        raise UserError(f"which runtime should {path.name} load in?", "pass --tflite-runtime VERSION (e.g. 1.13)")
    report = tflite_ops.check_file(path, runtime_version)
    if console.settings.json:
        console.emit_json(report.to_dict())
    if report.note:
        console.warn(report.note)
    if report.loads:
        console.success(f"{path} loads in the TFLite runtime of TF {runtime_version} ({report.runtime})")
        return
    for problem in report.problems:
        _say(str(problem))
    raise ModelError(
        f"{path} would not load in the TFLite runtime of TF {runtime_version} ({report.runtime}): "
        f"{len(report.problems)} op version(s) it lacks",
        f"convert the model for it: `mobilebuild model tflite MODEL.pb -o OUT.tflite --tf-version {runtime_version}` "
        "(--quantize uint8 or none write version-1 kernels)",
    )


@model_app.command("downgrade")
@working('rewriting the graph')
def downgrade_cmd(
    model: Path = typer.Argument(..., help="Frozen GraphDef (.pb) or memmapped package."),
    output: Path = typer.Option(..., "-o", "--output", help="Where to write the downgraded graph."),
    tf_version: str = typer.Option(..., "--tf-version", help=TF_VERSION_HELP),
    tf_src: Optional[Path] = typer.Option(None, "--tf-src", help=TF_SRC_HELP),
    runtime: Optional[str] = choice_option(None, "--runtime", choices=OPSET_RUNTIMES, help=RUNTIME_HELP),
) -> None:
    """Rewrite a graph into an old runtime's op set without changing its numbers (or refuse, saying why)."""
    from mobilebuild.fsutil import check_output_path, write_if_changed
    from mobilebuild.graphs import io, runtime_ops

    io.require_file(model)
    check_output_path(output, model)
    opset = runtime_ops.load_opset(tf_version, tf_src, runtime=runtime)
    loaded = io.load_model(model)
    graph_def = loaded.graph_def if loaded.graph_def is not None else io.load_graph_def(model)
    new_graph, changes = runtime_ops.fit_to_opset(graph_def, opset)
    if loaded.format == io.MEMMAPPED:
        _rewrite_memmapped(loaded, new_graph, output)
    else:
        write_if_changed(output, io.serialize(new_graph))
    if console.settings.json:
        console.emit_json({"output": str(output), "tf_version": tf_version, "runtime": runtime or ("makefile" if tf_src else "android"), "tag": opset.tag, "changes": changes})
    for change in changes:
        console.info(f"  {change}")
    console.success(
        f"{'nothing to rewrite' if not changes else f'{len(changes)} rewrite(s)'}: loads in TF {opset.tag}; wrote {output}"
    )


def _rewrite_memmapped(loaded, new_graph, output: Path) -> None:
    """A memmapped package keeps its format: same regions, downgraded GraphDef."""
    from mobilebuild.graphs import memmap
    from mobilebuild.graphs.prepare import min_region_size

    plain = memmap.inline_regions(new_graph, loaded.path, loaded.regions)
    memmap.write_package(plain, output, min_region_size(loaded.regions), loaded.path)


# ---------------------------------------------------------------------------------------------
# label / compare


@model_app.command("label")
@working('labelling')
def label_cmd(
    model: Optional[Path] = typer.Argument(None, help="Model (.pb, memmapped, .tflite). Default: the built-in model."),
    image: Optional[List[Path]] = typer.Option(None, "--image", "-i", help="Image(s) to label (JPEG/PNG); repeatable."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Labels file (one class per line). Default: found next to the model."),
    top_k: int = typer.Option(5, "--top-k", help="How many classes to show per image."),
    input_name: Optional[str] = typer.Option(None, "--input-name", help="Node to feed (default: auto, e.g. Mul)."),
    output_name: Optional[str] = typer.Option(None, "--output-name", help="Output node (default: auto)."),
    input_size: Optional[int] = typer.Option(None, "--input-size", help="Input size in pixels (default: from the graph)."),
    mean: Optional[float] = typer.Option(None, "--mean", help="Input mean (default: from the graph's constants)."),
    std: Optional[float] = typer.Option(None, "--std", help="Input std (default: from the graph's constants)."),
) -> None:
    """Classify images like TF's label_image: decode, resize, (pixel - mean) / std, run, top-k."""
    from mobilebuild import defaults
    from mobilebuild.errors import ModelError
    from mobilebuild.graphs.label import label_images
    from mobilebuild.graphs.preprocess import check_normalisation

    check_normalisation(mean, std, input_size)
    if top_k < 1:
        raise ModelError(f"--top-k {top_k} shows nothing", "e.g. --top-k 5")
    path = _default_model_if(model)
    images = list(image or [])
    if not images:
        if model is not None:
            raise ModelError("no image given", "pass --image IMAGE.jpg (repeat for several)")
        # one sample image per class, in the labels' order
        from mobilebuild.graphs.label import read_labels

        images = [sorted((defaults.sample_images_dir() / name).iterdir())[0] for name in read_labels(defaults.default_labels())]
    for img in images:
        if img.is_dir():
            raise ModelError(f"--image {img} is a directory", "give image files (repeat --image); `model compare --images DIR` reads folders")
        if not img.is_file():
            raise ModelError(f"image not found: {img}", "check the path given with --image")
    report = label_images(
        path, images, labels_path=labels, top_k=top_k, input_name=input_name, output_name=output_name,
        input_size=input_size, mean=mean, std=std,
    )
    if console.settings.json:
        console.emit_json(report.to_dict())
        return
    _say(f"model {report.model}: feed {report.input_name} ({report.input_size}x{report.input_size}, "
         f"mean {report.mean:g}, std {report.std:g}), read {report.output_name}")
    for result in report.results:
        _say(result.image)
        for p in result.predictions:
            _say(f"  {p.score:8.5f}  {p.label}")


@model_app.command("compare")
@working('comparing the models')
def compare_cmd(
    model_a: Optional[Path] = typer.Argument(None, help="Model A (the reference). Default: the built-in model."),
    model_b: Optional[Path] = typer.Argument(None, help="Model B. Default (with A omitted too): an eightbit-quantized copy of the built-in model."),
    images: Optional[Path] = typer.Option(None, "--images", help="Directory of images (class_name/*.jpg for accuracy)."),
    labels_from_dirs: bool = typer.Option(False, "--labels-from-dirs", help="Accuracy against the class folder names."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Labels file mapping folder names to outputs (default: next to model A)."),
    input_name: Optional[str] = typer.Option(None, "--input-name", help="Node to feed (default: auto)."),
    output_name: Optional[str] = typer.Option(None, "--output-name", help="Output node (default: auto)."),
    input_size: Optional[int] = typer.Option(None, "--input-size", help="Input size (default: from the graph)."),
    mean: Optional[float] = typer.Option(None, "--mean", help="Input mean (default: from the graph)."),
    std: Optional[float] = typer.Option(None, "--std", help="Input std (default: from the graph)."),
) -> None:
    """Top-1 agreement, accuracy, max abs difference, size ratio and latency of two models."""
    import tempfile

    from mobilebuild import defaults
    from mobilebuild.errors import ModelError
    from mobilebuild.graphs.compare import compare_models
    from mobilebuild.graphs.preprocess import check_normalisation

    check_normalisation(mean, std, input_size)
    if model_a is not None and model_b is None:
        raise ModelError("compare needs two models (A and B)", "mobilebuild model compare A.pb B.pb --images DIR")
    with tempfile.TemporaryDirectory(prefix="mobilebuild-compare-") as tmp:
        if model_a is None:
            model_a, model_b = defaults.default_model(), _quantized_default(Path(tmp))
            console.info("(no models given: the built-in model vs. its eightbit-quantized copy)")
            labels_from_dirs = labels_from_dirs or images is None
        if images is None:
            if model_a.resolve() != defaults.default_model().resolve():
                raise ModelError("no images given", "pass --images DIR (class_name/*.jpg with --labels-from-dirs)")
            images = defaults.sample_images_dir()
            labels_from_dirs = True
        report = compare_models(
            model_a, model_b, images, labels_from_dirs=labels_from_dirs, labels_path=labels,
            input_name=input_name, output_name=output_name, input_size=input_size, mean=mean, std=std,
        )
    if console.settings.json:
        console.emit_json(report.to_dict())
        return
    _say(f"{report.images} images")
    for tag, f in (("A", report.a), ("B", report.b)):
        acc = f"  accuracy {f.accuracy * 100:.1f}%" if f.accuracy is not None else ""
        _say(f"{tag}: {f.path} ({f.format}, {_human(f.size_bytes)})  {f.latency_ms:.2f} ms/image{acc}")
    _say(f"top-1 agreement  {report.top1_agreement * 100:.1f}%")
    _say(f"max abs diff     {report.max_abs_diff:.6g}")
    _say(f"size ratio A/B   {report.size_ratio:.2f}x")
    if report.accuracy_drop is not None:
        _say(f"accuracy drop    {report.accuracy_drop:+.2f} points (A - B)")


def _quantized_default(directory: Path) -> Path:
    """An eightbit copy of the built-in model (written to a temp dir, never next to the package)."""
    from mobilebuild import defaults
    from mobilebuild.graphs import io, quantize

    graph_def = io.load_graph_def(defaults.default_model())
    info = defaults.default_info()
    quantized = quantize.quantize_graph_def(
        graph_def, "eightbit", input_names=[info["graph_input"]], output_names=[info["output_name"]]
    )
    out = directory / "digits_eightbit.pb"
    io.save_graph_def(quantized, out)
    return out
