"""`mobilebuild model quantize | memmap | tflite` (registered on the `model` group).

Module-level imports stay light (no TensorFlow): `mobilebuild --help` imports this module.
Arguments are validated before a model is loaded, so a bad --mode fails instantly and
nothing is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from mobilebuild import console
from mobilebuild.choices import GRAPH_QUANTIZE_MODES as QUANTIZE_GRAPH_MODES
from mobilebuild.choices import TFLITE_QUANTIZE_MODES as TFLITE_MODES
from mobilebuild.cli._render import TF_SRC_HELP
from mobilebuild.cli._render import check_tf_src as _check_tf_src
from mobilebuild.cli._render import default_model_if as _default_model_if
from mobilebuild.cli._render import human as _human
from mobilebuild.cli._render import names as _names
from mobilebuild.cli._render import ratio as _ratio
from mobilebuild.cli.options import choice_option, working


def _report_rewrites(changes, tf_version: str) -> None:
    if changes:
        console.info(f"rewritten for TF {tf_version}:")
        for change in changes:
            console.info(f"  {change}")


def quantize_cmd(
    model: Optional[Path] = typer.Argument(None, help="Frozen GraphDef (.pb) or memmapped package; default: the built-in model."),
    output: Path = typer.Option(..., "-o", "--output", help="Where to write the quantized .pb."),
    mode: str = choice_option(..., "--mode", choices=QUANTIZE_GRAPH_MODES, help="How to quantize (see docs/model-formats.md)."),
    bitdepth: int = typer.Option(8, "--bitdepth", help="Levels = 2^bitdepth (weights_rounded: 1-16; others: 8)."),
    tf_version: Optional[str] = typer.Option(
        None, "--tf-version", help="Fit the result to this TF runtime's op set (e.g. 1.1); checked after."
    ),
    tf_src: Optional[Path] = typer.Option(None, "--tf-src", help=TF_SRC_HELP),
    input_names: Optional[List[str]] = typer.Option(None, "--input-names", help="Input node(s), comma-separated."),
    output_names: Optional[List[str]] = typer.Option(None, "--output-names", help="Output node(s); default: the graph's sinks."),
    min_const_bytes: Optional[int] = typer.Option(
        None, "--min-const-bytes",
        help="Float Consts smaller than this many bytes stay float (default: 0 = all, as TF's quantize_graph).",
    ),
    eightbit_extended: bool = typer.Option(
        False, "--eightbit-extended",
        help="eightbit beyond TF's quantize_graph: fold constants first, also run ConcatV2 and x + vector (as BiasAdd) quantized, leave dilated or NCHW ops in float.",
    ),
) -> None:
    """Quantize weights (and with eightbit, compute) like TF's old quantize_graph tool."""
    from mobilebuild.fsutil import check_output_path, write_if_changed
    from mobilebuild.graphs import io, quantize

    quantize.check_mode(mode, bitdepth, eightbit_extended)
    _check_tf_src(tf_version, tf_src)
    model = _default_model_if(model)
    io.require_file(model)
    check_output_path(output, model)
    graph_def, loaded = io.load_frozen_graph(model)
    result = quantize.quantize_graph_def(
        graph_def, mode, bitdepth, input_names=_names(input_names), output_names=_names(output_names),
        min_const_bytes=min_const_bytes, extended=eightbit_extended,
    )
    changes = []
    if tf_version:
        result, changes = quantize.fit_runtime(result, tf_version, tf_src)
    data = io.serialize(result)
    # Same bytes as an earlier run: leave the file alone (idempotent, mtime kept).
    write_if_changed(output, data)
    size_in, size_out = loaded.size_bytes, len(data)
    ratio = size_in / size_out if size_out else 0.0
    _report_rewrites(changes, tf_version or "")
    summary = {
        "output": str(output),
        "mode": mode,
        "eightbit_extended": eightbit_extended,
        "bitdepth": bitdepth,
        "size_before": size_in,
        "size_after": size_out,
        "ratio": round(ratio, 3),
        "nodes_before": len(graph_def.node),
        "nodes_after": len(result.node),
        "ops": sorted({n.op for n in result.node}),
        "tf_version": tf_version,
        "runtime_changes": [str(c) for c in changes],
    }
    if console.settings.json:
        console.emit_json(summary)
    console.success(
        f"{mode}: {_human(size_in)} -> {_human(size_out)} ({_ratio(size_in, size_out)}), wrote {output}"
    )
    if mode == "weights_rounded":
        # Same float tensors: the gain shows once the file is compressed (APKs are zip files).
        import zlib

        zip_in = len(zlib.compress(io.serialize(graph_def), 6))
        zip_out = len(zlib.compress(data, 6))
        console.info(
            f"  compressed (as in an APK): {_human(zip_in)} -> {_human(zip_out)} ({_ratio(zip_in, zip_out)})"
        )


def memmap_cmd(
    model: Optional[Path] = typer.Argument(None, help="Frozen GraphDef (.pb) or memmapped package; default: the built-in model."),
    output: Path = typer.Option(..., "-o", "--output", help="Where to write the memmapped package."),
    min_conversion_tensor_size: int = typer.Option(
        10000, "--min-conversion-tensor-size", help="Consts of at least this many bytes are memory-mapped."
    ),
    tf_version: Optional[str] = typer.Option(None, "--tf-version", help="Fit the GraphDef to this TF runtime's op set first."),
    tf_src: Optional[Path] = typer.Option(None, "--tf-src", help=TF_SRC_HELP),
) -> None:
    """Write a TF memmapped package (what the iOS camera example loads via MemmappedEnv)."""
    from mobilebuild.fsutil import check_output_path
    from mobilebuild.graphs import io, memmap

    memmap.check_min_conversion_tensor_size(min_conversion_tensor_size)
    _check_tf_src(tf_version, tf_src)
    model = _default_model_if(model)
    io.require_file(model)
    check_output_path(output, model)
    changes = []
    if not tf_version and io.detect_format(model) == io.GRAPHDEF:
        # Nothing to rewrite: stream the file node by node (never the whole model in memory).
        loaded = io.LoadedModel(Path(model), io.GRAPHDEF, size_bytes=Path(model).stat().st_size)
        stats = memmap.convert_file(model, output, min_conversion_tensor_size)
    else:
        graph_def, loaded = io.load_frozen_graph(model)
        if tf_version:
            from mobilebuild.graphs.quantize import fit_runtime

            graph_def, changes = fit_runtime(graph_def, tf_version, tf_src)
        stats = memmap.write_package(graph_def, output, min_conversion_tensor_size, model)
    _report_rewrites(changes, tf_version or "")
    summary = {"output": str(output), "size_before": loaded.size_bytes, **stats.as_dict(), "tf_version": tf_version}
    if console.settings.json:
        console.emit_json(summary)
    console.success(
        f"memmapped {stats.converted} tensor(s) ({_human(stats.region_bytes)}), "
        f"{stats.kept_consts} small Const(s) left inline; {_human(stats.file_bytes)} written to {output}"
    )


def tflite_cmd(
    model: Optional[Path] = typer.Argument(None, help="Frozen GraphDef (.pb), memmapped package or SavedModel directory; default: the built-in model."),
    output: Path = typer.Option(..., "-o", "--output", help="Where to write the .tflite file."),
    quantize: str = choice_option("none", "--quantize", choices=TFLITE_MODES, help="int8: int8 kernels, float input; uint8: uint8 input and tensors, version-1 kernels."),
    representative_images: Optional[Path] = typer.Option(
        None, "--representative-images", help="Folder of typical images (needed for int8 and uint8)."
    ),
    input_names: Optional[List[str]] = typer.Option(None, "--input-names", help="Input node; default: the Placeholder."),
    output_names: Optional[List[str]] = typer.Option(None, "--output-names", help="Output node(s); default: the sinks."),
    input_shape: Optional[str] = typer.Option(None, "--input-shape", help="e.g. 1,224,224,3 when the graph leaves it open."),
    mean: Optional[float] = typer.Option(
        None, "--mean", help="Representative images become (pixel - mean) / std; default: read from the graph, else 127.5."
    ),
    std: Optional[float] = typer.Option(None, "--std", help="See --mean."),
    tf_version: Optional[str] = typer.Option(
        None, "--tf-version", help="The result must load in this release's TFLite runtime (1.5+): older op versions, or a refusal naming the op."
    ),
) -> None:
    """Convert to TensorFlow Lite (optionally quantized); run it with `model label`/`compare`."""
    from mobilebuild.errors import UserError
    from mobilebuild.fsutil import check_output_path
    from mobilebuild.graphs import io, tflite
    from mobilebuild.graphs.preprocess import check_normalisation

    check_normalisation(mean, std)
    tflite.check_quantize(quantize, representative_images)
    shape = None
    if input_shape:
        try:
            shape = [int(d) for d in input_shape.split(",")]
        except ValueError:
            raise UserError(f"--input-shape {input_shape!r} is not a list of integers", "write it like 1,224,224,3") from None
    model = _default_model_if(model)
    io.require_file(model)
    check_output_path(output, model)
    result = tflite.convert(
        model, output, quantize, representative_images,
        input_names=_names(input_names), output_names=_names(output_names), input_shape=shape, mean=mean, std=std,
        tf_version=tf_version,
    )
    if console.settings.json:
        console.emit_json(result.as_dict())
    console.success(
        f"tflite ({quantize}): {_human(result.size_in)} -> {_human(result.size_out)} ({_ratio(result.size_in, result.size_out)}), "
        f"input {result.input_names[0]} {result.input_shape}, wrote {output}"
    )
    if result.tflite_runtime:
        how = f" (converter settings {result.settings})" if result.settings else ""
        console.info(f"  loads in the TFLite runtime of TF {tf_version} ({result.tflite_runtime}){how}: {', '.join(result.operators)}")


def register(model_app: typer.Typer) -> None:
    """Add this module's commands to the `model` group."""
    model_app.command("quantize")(working("quantizing")(quantize_cmd))
    model_app.command("memmap")(working("writing the memmapped package")(memmap_cmd))
    model_app.command("tflite")(working("converting to TensorFlow Lite")(tflite_cmd))
