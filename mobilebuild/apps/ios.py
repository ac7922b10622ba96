"""`mobilebuild ios` (generation): the iOS camera example set up for a model, on any OS.

Sets the constants of ``CameraExampleViewController.mm`` (model/labels file name and type,
input size/channels, mean/std, layer names, ``model_uses_memory_mapping``) and copies model and
labels into the example's ``data/`` dir, in one atomic PatchSet. The example lives under
``tensorflow/contrib/ios_examples/camera`` up to 1.2 and ``tensorflow/examples/ios/camera`` from
1.3 (profile data). With ``out`` a patched copy of the example is written there and the tree is
not touched.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable

from mobilebuild import console
from mobilebuild.apps import appmodel, tflite_demo
from mobilebuild.apps.appmodel import (
    ModelOptions,
    check_constants,
    check_model_options,
    refuse_removed_demo,
    report_model,
)
from mobilebuild.apps.ios_libs import build_libraries, check_host
from mobilebuild.config import load_config
from mobilebuild.errors import UserError
from mobilebuild.graphs.preprocess import check_normalisation
from mobilebuild.paths import cache_dir
from mobilebuild.tf.patching import (
    Originals,
    PatchSet,
    apply_patch,
    declarations_for,
    read_text_exact,
    set_declarations,
    tree_lock,
)
from mobilebuild.tf.tree import require_file, resolve


@dataclass
class IosOptions(ModelOptions):
    tf_src: str | None = None
    tf_repo: str | None = None
    tf_ref: str | None = None
    out: str | None = None
    dry_run: bool = False
    build: bool = False  # then build the iOS libraries (mobilebuild.apps.ios_libs, macOS only)
    archs: list[str] | None = None
    app: str | None = None  # "tf-mobile" | "tflite" (None: as mobilebuild.apps.tflite_demo.choose_app)
    representative_images: str | None = None  # calibration images for --quantize uint8/int8 (tflite)


def ios_values(m) -> dict[str, Any]:
    model = PurePosixPath(m.model_asset)
    return {
        "model_file_name": model.stem if model.suffix else model.name,
        "model_file_type": model.suffix[1:] if model.suffix else "",
        "memory_mapped": bool(m.memory_mapped),
        **appmodel.ios_common_values(m),
    }


def patched_controller(tree, m) -> tuple[str, str]:
    """(relative path of the controller in the tree, its new text)."""

    p = tree.profile
    camera = p.require("ios.camera_dir")
    rel = f"{camera}/{p.require('ios.controller')}"
    path = require_file(tree, rel, "iOS camera example")
    decls = declarations_for(
        p.require("ios.constants"), ios_values(m), literal_template=p.require("ios.literal_template"), file_label=rel
    )
    text = set_declarations(
        read_text_exact(path),
        decls,
        pattern=p.require("ios.declaration"),
        file_label=rel,
        expected=f"the {p.family} profile for TensorFlow {tree.version_text}",
    )
    return rel, text


def _out_dir(out: str, camera: Path, controller: str | None = None) -> Path:
    target = Path(out).expanduser()
    if target.exists() and not target.is_dir():
        raise UserError(f"--out {target} is a file", "give a directory for the patched copy of the example")
    if not target.parent.is_dir():
        raise UserError(f"the parent of --out {target} does not exist", f"create it first (mkdir -p {target.parent})")
    resolved = target.resolve()
    if resolved == camera or camera in resolved.parents:
        raise UserError(f"--out {target} is inside the example it copies", "choose a directory outside the TensorFlow tree's camera example")
    if controller and target.is_dir() and any(target.iterdir()) and not (target / controller).is_file():
        # Only an earlier copy is updated in place (its stale model removed); anything else
        # would get the example's files mixed into it.
        raise UserError(
            f"--out {target} is not empty and is not a copy of the camera example (no {controller})",
            "give a new or empty directory, or the directory of an earlier `mobilebuild ios --out`",
        )
    return resolved


def build_patch(tree, m, out_root: Path | None, controller: tuple[str, str] | None = None, extra=None):
    """The PatchSet for the tree's example, or (``out_root``, checked by ``_out_dir``) for a copy.
    ``controller``: (path, text) of the patched controller when the caller made it (TFLite);
    ``extra``: another prepared model to put beside the first (TFLite's GPU-branch float copy)."""
    p = tree.profile
    camera_rel = p.require("ios.camera_dir")
    data = p.require("ios.data_dir")
    controller_rel, text = controller or patched_controller(tree, m)
    if out_root is None:
        ps = PatchSet(tree.root)
        ps.edit(controller_rel, text)
        wanted = {f"{camera_rel}/{data}/{m.model_asset}", f"{camera_rel}/{data}/{m.labels_asset}"}
        ps.copy(m.model, f"{camera_rel}/{data}/{m.model_asset}", shown=f"{m.source_model} (prepared)")
        ps.copy(m.labels, f"{camera_rel}/{data}/{m.labels_asset}")
        if extra is not None:
            wanted.add(f"{camera_rel}/{data}/{extra.model_asset}")
            ps.copy(extra.model, f"{camera_rel}/{data}/{extra.model_asset}", shown=f"{extra.source_model} (prepared)")
        for rel in Originals(tree.root).created():
            if rel.startswith(f"{camera_rel}/{data}/") and rel not in wanted:
                ps.remove(rel)
        return ps, tree.root / camera_rel
    camera = tree.path(camera_rel).resolve()
    ps = PatchSet(out_root, keep_originals=False)
    skip = {f"{data}/{m.model_asset}", f"{data}/{m.labels_asset}"} | ({f"{data}/{extra.model_asset}"} if extra else set())
    for dirpath, dirnames, filenames in os.walk(camera):
        dirnames.sort()
        for name in sorted(filenames):
            src = Path(dirpath) / name
            rel = src.relative_to(camera).as_posix()
            if rel == p.require("ios.controller"):
                ps.edit(rel, text)
            elif rel not in skip and not src.is_symlink():
                ps.copy(src, rel)
    ps.copy(m.model, f"{data}/{m.model_asset}", shown=f"{m.source_model} (prepared)")
    ps.copy(m.labels, f"{data}/{m.labels_asset}")
    if extra is not None:
        ps.copy(extra.model, f"{data}/{extra.model_asset}", shown=f"{extra.source_model} (prepared)")
    # An earlier copy for another model: its model and labels must not stay in data/ (the app
    # bundles the whole folder). Files outside data/ (Pods/, a workspace) are the user's.
    planned = {c.rel for c in ps.changes}
    old_data = out_root / data
    if old_data.is_dir():
        for path in sorted(old_data.rglob("*")):
            rel = path.relative_to(out_root).as_posix()
            if path.is_file() and rel not in planned and not (camera / rel).exists():
                ps.remove(rel)
    return ps, out_root


def run(opts: IosOptions, *, conf: dict | None = None, show_patch: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Set up the example (or its copy); ``conf``: mobilebuild.toml's settings (read when None),
    ``show_patch`` receives the patch result of a dry run (its diff and copies)."""
    if opts.memmap:
        apply_memmap_defaults(opts)
    if opts.build and opts.app == "tflite":
        raise UserError("--build makes the TF-Mobile makefile libraries; the TFLite example links its pod",
                        "drop --build and run `pod install` in the example (the next steps say how)")
    if opts.build:
        check_host()  # refuse before touching (or cloning) anything
    tree = resolve(tf_src=opts.tf_src, tf_repo=opts.tf_repo, tf_ref=opts.tf_ref, conf=load_config() if conf is None else conf).tree
    app = tflite_demo.choose_app(opts.app, tree, opts.model)
    if app == "tflite":
        if opts.memmap:
            raise UserError("--memmap makes a memmapped GraphDef for the TF-Mobile camera example; the TFLite example loads a .tflite model",
                            "drop --memmap (a .tflite file is memory-mapped by the TFLite runtime itself)")
        if opts.build:
            raise UserError("--build makes the TF-Mobile makefile libraries; the TFLite example links its pod",
                            "drop --build and run `pod install` in the example (the next steps say how)")
        tree = tflite_demo.app_tree(tree)
    console.info(f"TensorFlow {tree.version_text} ({tree.version_source}) at {tree.root} — profile {tree.profile.family}")
    if app != "tflite":
        refuse_removed_demo(tree, "iOS camera")
    result: dict[str, Any] = {"tree": tree.as_dict(), "dry_run": opts.dry_run, "app": app}
    p = tree.profile
    if app == "tflite":
        tflite_demo.check_ios_tree(tree)
        appmodel.resolve_inputs(opts.model, opts.labels)
        tflite_demo.check_options(opts)
        check_normalisation(opts.mean, opts.std, opts.input_size)
    else:
        check_constants(tree, "ios", f"{p.require('ios.camera_dir')}/{p.require('ios.controller')}")
        check_model_options(opts)
    example_dir = tree.path(p.require("ios.camera_dir"))
    out_root = _out_dir(opts.out, example_dir.resolve(), p.require("ios.controller")) if opts.out else None
    if out_root is not None:
        example_dir = out_root
    if opts.model:
        target = example_dir / p.require("ios.data_dir") / appmodel.asset_name(opts.model)
        appmodel.refuse_overwriting_the_source(opts.model, target)
    cache_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="staging-", dir=cache_dir()) as staging, tree_lock(tree.root):
        if app == "tflite":
            runtime = tflite_demo.runtime_version(tree, "ios")
            m = tflite_demo.prepare(tree, Path(staging), opts, runtime=runtime, default_quantize=p.require("ios.default_quantize"))
            gpu = None
            if p.get("ios.gpu_branch") and m.quantized and m.quantize is not None:
                # The GPU delegate runs float models only: its branch gets a float copy of the same graph.
                gpu = tflite_demo.prepare(tree, Path(staging), dataclasses.replace(opts, quantize="none"), runtime=runtime,
                                          default_quantize="none", asset_suffix="_float")
                result["gpu_model"] = gpu.as_dict()
            elif p.get("ios.gpu_branch") and m.quantized:
                console.warn("the example's GPU delegate build (TFLITE_USE_GPU_DELEGATE) needs a float model: "
                             f"both branches name {m.model_asset}; pass the .pb for a float copy in the GPU branch")
            controller = tflite_demo.ios_controller(tree, m, gpu.model_asset if gpu else None)
        else:
            # The example links the makefile build: the pod's (TF 1.1) from 1.3, the tree's before.
            m = appmodel.prepare_from(tree, Path(staging), opts, runtime_version=p.get("ios.runtime_version") or None,
                                      runtime=p.get("ios.runtime") or "makefile")
            controller = gpu = None
        report_model(m)
        result["model"] = m.as_dict()
        ps, example = build_patch(tree, m, out_root, controller, gpu)
        if opts.out is None:
            result["patch"] = apply_patch(ps, opts.dry_run)
        else:
            result["patch"] = _apply_out(ps, opts.dry_run)
        if show_patch is not None:
            show_patch(result["patch"])
    result["example"] = str(example)
    if opts.build and not opts.dry_run:
        libs = build_libraries(tree.root, tree.profile, archs=opts.archs or None)
        result["libraries"] = libs.as_json()
        console.success(f"iOS libraries: {libs.library}")
    if not opts.dry_run:
        for line in next_steps(tree, example, m, libs_built=opts.build, copied=opts.out is not None):
            console.info(line)
        if gpu is not None:
            console.info(f"  (for a build with TFLITE_USE_GPU_DELEGATE, add {p.require('ios.data_dir')}/{gpu.model_asset} too: "
                         "the GPU delegate runs that float copy)")
    return result


# What the memmapped iOS flow does to the app's copy unless told otherwise: optimize for
# inference, round the weights (a smaller download, and the rounded floats still map as they
# are), then write the memmapped package the example loads with model_uses_memory_mapping.
MEMMAP_QUANTIZE = "weights_rounded"


def apply_memmap_defaults(opts: IosOptions) -> None:
    """``--memmap``: optimize -> quantize (``--quantize``, else weights_rounded) -> memmap."""
    opts.optimize = True
    if opts.quantize is None:
        opts.quantize = MEMMAP_QUANTIZE
    console.info(f"--memmap: the app's copy is optimized, quantized ({opts.quantize}) and memory-mapped")


def _apply_out(ps, dry_run: bool) -> dict[str, Any]:
    if not dry_run:
        ps.root.mkdir(exist_ok=True)
    # A copy of our own making: no user git state to report on.
    return apply_patch(ps, dry_run, check_git=False)


def next_steps(tree, example: Path, m, *, libs_built: bool = False, copied: bool = False) -> list[str]:
    p = tree.profile
    data = p.require("ios.data_dir")
    project = p.require("ios.project")
    pod = p.get("ios.pod")
    xcode = p.get("ios.min_xcode")
    lines = [f"next, on a Mac with Xcode {xcode}+:" if xcode else "next, on a Mac with Xcode:"]
    steps: list[str] = []
    if pod:
        # From 1.3 the example links the prebuilt CocoaPod, not the makefile libraries.
        steps.append(f"install the {pod} pod: `cd {example} && pod install` (CocoaPods)")
        if libs_built:
            steps.append(
                f"note: the stock project links the {pod} pod, not the libraries just built; "
                "link those by hand if you want your own build"
            )
    elif p.get("tflite"):
        steps.append(f"build the tree's TensorFlow Lite library for iOS (see {example / 'README.md'}); "
                     "this example's Podfile brings no TFLite")
    elif not libs_built:
        steps.append(
            f"build the TensorFlow iOS libraries: `mobilebuild ios-libs --tf-src {tree.root}` "
            f"(they land in {p.get('ios.core_lib')})"
        )
    steps.append(f"open {example / project} in Xcode")
    if copied:
        steps.append(
            "this copy's project finds TensorFlow's headers and libraries by paths relative to the "
            f"example's place in the tree: point its Header/Library Search Paths at {tree.root} if Xcode cannot find them"
        )
    steps.append(
        f"add {data}/{m.model_asset} and {data}/{m.labels_asset} to the target's Copy Bundle Resources "
        "if they are not listed there yet"
    )
    steps.append("choose your iPhone as the run destination and press Run (the camera example needs a device)")
    lines += [f"  {n}. {text}" for n, text in enumerate(steps, 1)]
    return lines
