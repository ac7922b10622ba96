"""The TFLite demo apps (`android --app tflite`, `ios --app tflite`): the model as a .tflite the
app's TFLite runtime can load, and the changes that put it into the demo.

The TFLite camera demos differ from the TF-Mobile ones in three ways that shape this module:
- Their TFLite runtime decides what a model may contain: each builtin op is registered for a
  range of versions, and a model asking for a newer one stops the app at start-up. Every model
  written here is checked against the runtime's table (``graphs.tflite_ops``) before the tree
  is touched; a model that cannot fit is refused with the op and version named.
- The Android demo's BUILD lists its models one by one from external repositories: the BUILD is
  rewritten to take our model and labels from files beside it (so nothing needs the network).
- The values to set live in constants (1.5 - 1.6), or in methods of the classifier subclasses
  (1.7+): the subclass that fits the model (uint8 input: the quantized one; float: the float
  one) is patched and the fragment made to construct it. The iOS example (1.13+) names its
  model twice, for the GPU delegate build and the other one: both are set coherently.

Facts per version are the ``tflite`` profiles in ``toolchains/`` (merged over the tree's own
profile by ``app_tree``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from mobilebuild import console, defaults
from mobilebuild.apps import appmodel
from mobilebuild.errors import ModelError, PatchError, UserError
from mobilebuild.graphs import io, tflite, tflite_ops
from mobilebuild.graphs.label import check_labels
from mobilebuild.profiles import Profile, deep_merge, load_profile
from mobilebuild.templating import render
from mobilebuild.tf.patching import (
    Originals,
    PatchSet,
    check_declarations,
    declarations_for,
    find_declaration,
    read_text_exact,
    set_declarations,
    sha256_file,
)
from mobilebuild.tf.tree import require_file

APPS = ("tf-mobile", "tflite")
QUANTIZE_MODES = tflite.QUANTIZE_MODES


# ---- which app, and its profile ---------------------------------------------------------------


def choose_app(app: str | None, tree, model: str | None) -> str:
    """``--app`` as given, else tflite for a .tflite model or a tree without the TF-Mobile demo (2.4+)."""
    if app is not None and app not in APPS:
        raise UserError(f"unknown --app {app!r}", f"use one of: {', '.join(APPS)}")
    if app:
        return app
    if model and Path(model).suffix.lower() == ".tflite":
        return "tflite"
    if tree.profile.get("removed"):
        return "tflite"
    return "tf-mobile"


def app_tree(tree):
    """The tree with its profile for the TFLite demos: the tree's own (Bazel, SDK/NDK, WORKSPACE)
    with the ``tflite`` family's ``android`` keys over it and its ``ios`` and ``tflite`` tables."""
    try:
        tfl = load_profile(tree.version, kind="tflite")
    except UserError:
        raise UserError(
            f"TensorFlow {tree.version_text} has no TFLite demo apps (they ship from TensorFlow 1.5)",
            "use --app tf-mobile, or a tree from 1.5 on",
        ) from None
    base = {k: v for k, v in tree.profile.data.items() if k not in ("removed", "ios", "tflite")}
    own = {k: v for k, v in tfl.data.items() if k not in ("family", "versions")}
    data = deep_merge(base, {"android": own.get("android", {})})
    data["ios"] = own.get("ios", {})
    data["tflite"] = own.get("tflite", {})
    profile = Profile(family=f"{tfl.family} (over {tree.profile.family})", version=tree.profile.version,
                      data=data, source=tfl.source)
    return dataclasses.replace(tree, profile=profile)


def runtime_version(tree, section: str) -> str:
    """The TFLite runtime the app links: the pod's for iOS where the profile names one, else the tree's own."""
    return tree.profile.get(f"{section}.tflite_runtime") or tree.profile.get(f"{section}.runtime_version") or tree.version_text


# ---- the model ----------------------------------------------------------------------------------


@dataclass
class TfliteAppModel(appmodel.AppModel):
    asset: str = ""  # the model's file name in the app
    quantized: bool = False  # uint8 input and output (the quantized classifiers)
    runtime: str = ""  # the TFLite runtime tag it was checked against
    operators: list[str] = field(default_factory=list)
    quantize: str | None = None  # how it was converted (None: given as .tflite)

    @property
    def model_asset(self) -> str:
        return self.asset

    def as_dict(self) -> dict:
        return {**super().as_dict(), "asset": self.asset, "quantized": self.quantized, "tflite_runtime": self.runtime,
                "operators": list(self.operators), "quantize": self.quantize}


def check_options(opts) -> None:
    """Model options that are wrong whatever the model: before anything is read or written."""
    if opts.quantize and opts.quantize not in QUANTIZE_MODES:
        raise UserError(f"unknown --quantize value {opts.quantize!r} for a TFLite app", f"use one of: {', '.join(QUANTIZE_MODES)}")
    rep = getattr(opts, "representative_images", None)
    if rep and not Path(rep).is_dir():
        raise UserError(f"--representative-images {rep} is not a directory", "give a folder of typical JPEG/PNG images")
    if opts.model and Path(opts.model).suffix.lower() == ".tflite" and opts.quantize:
        raise UserError(
            f"--quantize converts a TensorFlow graph; {Path(opts.model).name} is already a .tflite",
            "drop --quantize (the .tflite goes in as it is), or pass the .pb it came from",
        )


def prepare(tree, staging: Path, opts, *, runtime: str, default_quantize: str,
            default_normalisation: tuple[float, float] = (127.5, 127.5), asset_suffix: str = "") -> TfliteAppModel:
    """The app's .tflite: a given .tflite checked against ``runtime``, or a TensorFlow graph
    converted for it (``--quantize``, default ``default_quantize``). Kept in the cache under a
    key of everything it depends on, so a second run neither imports TensorFlow nor rewrites."""
    model_path, labels_path, is_default = appmodel.resolve_inputs(opts.model, opts.labels)
    rt = tflite_ops.load_runtime(runtime)
    if rt.note:
        console.warn(rt.note)
    fmt = io.detect_format(model_path)
    if fmt == io.TFLITE:
        m = _given_tflite(model_path, labels_path, opts, rt)
    else:
        m = _converted(model_path, labels_path, is_default, staging, opts, runtime, rt, default_quantize,
                       default_normalisation, asset_suffix)
    check_labels(labels_path, m.num_classes)
    return m


def _given_tflite(model_path: Path, labels_path: Path, opts, rt) -> TfliteAppModel:
    info = tflite_ops.read_tflite(model_path)
    problems = tflite_ops.check_model(info, rt)
    if problems:
        raise tflite_ops.refusal(
            problems,
            f"{model_path.name} does not load in the app's TFLite runtime (TF {rt.version_text})",
            f"convert the model it came from for that runtime: `mobilebuild model tflite MODEL.pb -o OUT.tflite "
            f"--tf-version {rt.version_text}` (--quantize uint8 or none write version-1 kernels)",
        )
    inp, out = _io_of(info, model_path)
    quantized = inp.dtype == "UINT8"
    if quantized:
        feed = info.input_feed()
        mean, std = feed.get("mean", 0.0), feed.get("std", 1.0)
    else:
        if opts.mean is None or opts.std is None:
            raise UserError(
                f"{model_path.name} takes float input and a .tflite does not record how pixels were normalised",
                "pass the --mean and --std the model was trained with (e.g. --mean 127.5 --std 127.5)",
            )
        mean, std = opts.mean, opts.std
    return _app_model(model_path, model_path, labels_path, False, info, inp, out, quantized, mean, std, rt, None,
                      notes=[f"loads in the TFLite runtime of TF {rt.version_text}: {', '.join(str(c) for c in info.op_codes)}"])


def _converted(model_path, labels_path, is_default, staging, opts, runtime, rt, default_quantize,
               default_normalisation, asset_suffix="") -> TfliteAppModel:
    quantize = opts.quantize or default_quantize
    rep = getattr(opts, "representative_images", None)
    if quantize not in tflite.CALIBRATED_MODES:
        rep = None
    elif not rep:
        if not is_default:
            raise UserError(
                f"--quantize {quantize} calibrates the model on sample images"
                + ("" if opts.quantize else " (the default for this app: its classifier feeds uint8 pixels)"),
                "add --representative-images DIR (a folder of typical JPEG/PNG images)",
            )
        rep = str(defaults.sample_images_dir())
    asset = model_path.stem + asset_suffix + ".tflite"
    args = {"quantize": quantize, "input_name": opts.input_name, "output_name": opts.output_name,
            "input_size": opts.input_size, "mean": opts.mean, "std": opts.std, "runtime": rt.tag,
            "representative": _dir_digest(rep) if rep else None, "default_normalisation": list(default_normalisation)}
    key = _cache_key(model_path, args)
    cached = appmodel._load_cached(key, asset)
    if cached is not None:
        info_d, path = cached
        notes = ["reused the .tflite converted by an earlier run (same model, options and runtime)"]
    else:
        shape = None
        if opts.input_size:
            shape = [1, opts.input_size, opts.input_size, 3]
        result = tflite.convert(
            model_path, staging / asset, quantize, rep,
            input_names=[opts.input_name] if opts.input_name else None,
            output_names=[opts.output_name] if opts.output_name else None,
            input_shape=shape, mean=opts.mean, std=opts.std, tf_version=runtime,
        )
        mean, std = result.normalisation if result.normalisation else (None, None)
        notes = [f"converted (--quantize {quantize}) for the TFLite runtime of TF {rt.version_text}: {', '.join(result.operators)}"]
        if result.settings:
            notes.append(f"older op versions through converter settings {result.settings}")
        if mean is None:
            mean, std = default_normalisation
            notes.append(f"the graph does not tell how its input is normalised: the app uses (pixel - {mean:g}) / {std:g}; "
                         "pass --mean/--std if training used others")
        info_d = {"mean": float(mean), "std": float(std), "notes": notes}
        path = appmodel._store_cached(key, Path(result.out), info_d)
    info = tflite_ops.read_tflite(path)
    inp, out = _io_of(info, path)
    quantized = inp.dtype == "UINT8"
    return _app_model(path, model_path, labels_path, is_default, info, inp, out, quantized,
                      info_d["mean"], info_d["std"], rt, quantize, notes=list(info_d.get("notes", notes)), asset=asset)


def _dir_digest(directory: str) -> str:
    h = hashlib.sha256()
    for p in sorted(Path(directory).rglob("*")):
        if p.is_file():
            h.update(p.relative_to(directory).as_posix().encode())
            h.update(sha256_file(p).encode())
    return h.hexdigest()


def _cache_key(model_path: Path, args: dict) -> str:
    parts = {"model": sha256_file(model_path), "name": model_path.name, "kind": "tflite-app",
             "code": appmodel._graph_code_digest(), "args": args}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _io_of(info, path):
    if not info.inputs or not info.outputs:
        raise ModelError(f"{path.name} has no input or output tensor", "convert it again (`mobilebuild model tflite`)")
    inp, out = info.inputs[0], info.outputs[0]
    if len(inp.shape) != 4 or inp.shape[1] != inp.shape[2] or inp.shape[3] != 3:
        raise ModelError(
            f"{path.name} takes input of shape {inp.shape}: the camera demos feed one square RGB image [1, N, N, 3]",
            "convert a model with a square RGB image input",
        )
    if inp.dtype not in ("UINT8", "FLOAT32"):
        raise ModelError(
            f"{path.name} takes {inp.dtype} input: the camera demos feed uint8 pixels or floats",
            "convert with --quantize uint8 (uint8 in and out) or none/dynamic (float in and out)",
        )
    want = "UINT8" if inp.dtype == "UINT8" else "FLOAT32"
    if out.dtype != want:
        raise ModelError(
            f"{path.name} takes {inp.dtype} input but gives {out.dtype} output: the demos' classifiers read "
            f"{'bytes' if want == 'UINT8' else 'floats'} out of a {inp.dtype.lower()} model",
            "convert with --quantize uint8 (uint8 in and out) or none/dynamic (float in and out)",
        )
    return inp, out


def _app_model(path, source, labels, is_default, info, inp, out, quantized, mean, std, rt, quantize, *, notes,
               asset=None) -> TfliteAppModel:
    return TfliteAppModel(
        model=Path(path), labels=Path(labels), source_model=Path(source), input_name=inp.name, output_name=out.name,
        input_size=int(inp.shape[1]), mean=float(mean), std=float(std), channels=int(inp.shape[3]),
        num_classes=int(out.shape[-1]) if out.shape else None, memory_mapped=False, is_default=is_default,
        notes=notes, asset=asset or Path(source).name, quantized=quantized, runtime=rt.tag,
        operators=[str(c) for c in info.op_codes], quantize=quantize,
    )


# ---- Android: checks before any model work ------------------------------------------------------


def _paths(tree) -> dict[str, str]:
    p = tree.profile
    pkg = p.require("tflite.package_dir")
    java = p.require("tflite.java_dir")
    return {"package": pkg, "build": f"{pkg}/BUILD", "java": java, "fragment": f"{java}/{p.require('tflite.fragment')}"}


def check_android_tree(tree) -> None:
    """The demo's files look as the profile expects: BUILD with the binary's assets list, the
    constants (1.5 - 1.6) or the classifier subclasses and the fragment's construction (1.7+)."""
    p = tree.profile
    paths = _paths(tree)
    build = require_file(tree, paths["build"], "TFLite demo's BUILD")
    _assets_span(read_text_exact(build), p.require("tflite.binary_name"), paths["build"])
    expected = f"the {p.family} profile for TensorFlow {tree.version_text}"
    if p.require("tflite.style") == "constants":
        rel = f"{paths['java']}/{p.require('tflite.classifier')}"
        text = read_text_exact(require_file(tree, rel, "TFLite demo's ImageClassifier.java"))
        for name, spec in p.require("tflite.constants").items():
            find_declaration(text, name, spec["type"], pattern=p.require("tflite.declaration"), file_label=rel, expected=expected)
        return
    for kind in ("quantized", "float"):
        rel, text = _subclass_text(tree, kind)
        for name, spec in p.require(f"tflite.{kind}.methods").items():
            find_declaration(text, name, spec["type"], pattern=p.require("tflite.method"), file_label=rel, expected=expected)
        for name, spec in (p.get(f"tflite.{kind}.constants") or {}).items():
            find_declaration(text, name, spec["type"], pattern=p.require("tflite.declaration"), file_label=rel, expected=expected)
    fragment = read_text_exact(require_file(tree, paths["fragment"], "TFLite demo's Camera2BasicFragment.java"))
    if not re.search(p.require("tflite.construct"), fragment):
        raise PatchError(
            f"{paths['fragment']}: no `new ImageClassifier...(` found ({expected} expects the fragment to construct its classifier)",
            "restore the file (git checkout, or `mobilebuild restore`) and run again",
        )


def _subclass_text(tree, kind: str) -> tuple[str, str]:
    p = tree.profile
    rel = f"{_paths(tree)['java']}/{p.require(f'tflite.{kind}.class')}.java"
    return rel, read_text_exact(require_file(tree, rel, f"TFLite demo's {kind} classifier"))


def check_android_values(tree, opts) -> None:
    """A --mean the float classifier's declaration cannot hold, refused before model work."""
    p = tree.profile
    if opts.mean is None or p.get("tflite.style") != "subclasses":
        return
    consts = p.get("tflite.float.constants") or {}
    declarations_for(consts, {"mean": opts.mean}, literal_template=p.require("tflite.literal_template"),
                     file_label=p.require("tflite.float.class") + ".java")


_ASSETS = re.compile(r"^(?P<indent>[ \t]*)assets[ \t]*=[ \t]*\[", re.M)


def _assets_span(text: str, binary: str, rel: str) -> tuple[int, int, str]:
    """(start, end, indent) of the ``assets = [...],`` lines of the android_binary named ``binary``."""
    rule = re.compile(r"^android_binary\(\s*\n\s*name\s*=\s*\"" + re.escape(binary) + r"\"", re.M)
    found = rule.search(text)
    if not found:
        raise PatchError(f"{rel}: no android_binary named {binary!r}", "restore the file (git checkout, or `mobilebuild restore`) and run again")
    end_rule = re.compile(r"^\)", re.M).search(text, found.end())
    block_end = end_rule.start() if end_rule else len(text)
    m = _ASSETS.search(text, found.end(), block_end)
    if not m:
        raise PatchError(f"{rel}: the {binary} rule has no `assets = [...]` list", "restore the file and run again")
    pos, in_string = m.end(), False
    while pos < block_end:
        ch = text[pos]
        if ch == '"' and text[pos - 1] != "\\":
            in_string = not in_string
        elif ch == "]" and not in_string:
            break
        pos += 1
    else:
        raise PatchError(f"{rel}: the assets list of {binary} is not closed", "restore the file and run again")
    tail = re.compile(r"\][ \t]*,?[ \t]*\r?\n?").match(text, pos)
    return m.start(), tail.end() if tail else pos + 1, m.group("indent")


# ---- Android: the patch -------------------------------------------------------------------------


def android_values(m: TfliteAppModel) -> dict[str, Any]:
    return {"model_asset": m.model_asset, "labels_asset": m.labels_asset, "input_size": m.input_size,
            "mean": m.mean, "std": m.std}


def build_android_patch(tree, ws, m: TfliteAppModel) -> PatchSet:
    """One PatchSet: WORKSPACE/bazelrc of the tree's mechanism, BUILD, classifier, fragment, files."""
    p = tree.profile
    paths = _paths(tree)
    ps = PatchSet(tree.root)
    if ws is not None:  # the Android rules, as for the TF-Mobile demo
        ps.edit(ws.rel, ws.edit.text)
    expected = f"the {p.family} profile for TensorFlow {tree.version_text}"
    lit = p.require("tflite.literal_template")
    values = android_values(m)
    if p.require("tflite.style") == "constants":
        if not m.quantized:
            raise ModelError(
                f"the TFLite demo of TensorFlow {tree.version_text} feeds uint8 pixels and reads bytes: "
                f"{m.source_model.name} as converted takes float input",
                "use --quantize uint8 (the default here), or a tree from 1.7 on, whose demo has a float classifier",
            )
        rel = f"{paths['java']}/{p.require('tflite.classifier')}"
        text = read_text_exact(tree.path(rel))
        decls = declarations_for(p.require("tflite.constants"), values, literal_template=lit, file_label=rel)
        ps.edit(rel, set_declarations(text, decls, pattern=p.require("tflite.declaration"), file_label=rel, expected=expected))
        chosen = None
    else:
        kind = "quantized" if m.quantized else "float"
        chosen = p.require(f"tflite.{kind}.class")
        rel, text = _subclass_text(tree, kind)
        decls = declarations_for(p.require(f"tflite.{kind}.methods"), values, literal_template=lit, file_label=rel)
        text = set_declarations(text, decls, pattern=p.require("tflite.method"), file_label=rel, expected=expected)
        consts = p.get(f"tflite.{kind}.constants") or {}
        if consts:
            decls = declarations_for(consts, values, literal_template=lit, file_label=rel)
            text = set_declarations(text, decls, pattern=p.require("tflite.declaration"), file_label=rel, expected=expected)
        ps.edit(rel, text)
        frel = paths["fragment"]
        ftext = read_text_exact(tree.path(frel))
        construct = re.compile(p.require("tflite.construct"))
        ps.edit(frel, construct.sub(lambda mm: mm.group(0).replace(mm.group("class"), chosen), ftext))
    brel = paths["build"]
    btext = read_text_exact(tree.path(brel))
    start, end, indent = _assets_span(btext, p.require("tflite.binary_name"), brel)
    block = render("bazel/tflite_assets.j2", indent=indent, assets=[m.model_asset, m.labels_asset])
    ps.edit(brel, btext[:start] + block + btext[end:])
    pkg = paths["package"]
    wanted = {f"{pkg}/{m.model_asset}", f"{pkg}/{m.labels_asset}"}
    created = set(Originals(tree.root).created())
    for rel_file in sorted(wanted):
        if tree.path(rel_file).exists() and rel_file not in created:
            raise UserError(
                f"{rel_file} is a file of the TensorFlow tree: the app's copy of the model or labels would replace it",
                "rename your model or labels file",
            )
    ps.copy(m.model, f"{pkg}/{m.model_asset}", shown=f"{m.source_model} (as .tflite)")
    ps.copy(m.labels, f"{pkg}/{m.labels_asset}")
    for rel_file in sorted(created):
        # An earlier run's model or labels for another name: the APK would carry it for nothing.
        if PurePosixPath(rel_file).parent.as_posix() == pkg and rel_file not in wanted:
            ps.remove(rel_file)
    ps.chosen_classifier = chosen  # type: ignore[attr-defined]
    return ps


# ---- iOS ----------------------------------------------------------------------------------------


def check_ios_tree(tree) -> None:
    p = tree.profile
    rel = f"{p.require('ios.camera_dir')}/{p.require('ios.controller')}"
    text = read_text_exact(require_file(tree, rel, "TFLite iOS camera example"))
    consts = dict(p.require("ios.constants"))
    if p.get("ios.gpu_branch"):
        _gpu_segments(text, rel, p)
        consts.pop("model_file_name")
    check_declarations(text, consts, pattern=p.require("ios.declaration"), file_label=rel,
                       expected=f"the {p.family} profile for TensorFlow {tree.version_text}")


def _gpu_segments(text: str, rel: str, p) -> tuple[tuple[int, int], tuple[int, int]]:
    """(GPU branch span, other branch span) of the ``#if TFLITE_USE_GPU_DELEGATE`` block that
    declares model_file_name, each declaring it exactly once."""
    m = re.compile(p.require("ios.gpu_if"), re.M).search(text)
    if not m:
        raise PatchError(f"{rel}: no `#if TFLITE_USE_GPU_DELEGATE` block around model_file_name",
                         "restore the file (git checkout, or `mobilebuild restore`) and run again")
    els = re.compile(r"^[ \t]*#else\b", re.M).search(text, m.end())
    end = re.compile(r"^[ \t]*#endif\b", re.M).search(text, m.end())
    if not els or not end or els.start() > end.start():
        raise PatchError(f"{rel}: the `#if TFLITE_USE_GPU_DELEGATE` block has no #else branch before its #endif",
                         "restore the file and run again")
    return (m.end(), els.start()), (els.end(), end.start())


def ios_controller(tree, m: TfliteAppModel, gpu_model_name: str | None = None) -> tuple[str, str]:
    """(relative path, new text) of the controller: every constant, the model name in both
    branches (the GPU branch's copy names ``gpu_model_name``, a float model, when given)."""
    p = tree.profile
    rel = f"{p.require('ios.camera_dir')}/{p.require('ios.controller')}"
    text = read_text_exact(tree.path(rel))
    expected = f"the {p.family} profile for TensorFlow {tree.version_text}"
    pattern, lit = p.require("ios.declaration"), p.require("ios.literal_template")
    values = {
        "model_file_name": PurePosixPath(m.model_asset).stem,
        "model_file_type": "tflite",
        **appmodel.ios_common_values(m),
    }
    consts = dict(p.require("ios.constants"))
    if p.get("ios.gpu_branch"):
        name_spec = {"model_file_name": consts.pop("model_file_name")}
        (g0, g1), (e0, e1) = _gpu_segments(text, rel, p)
        gpu_values = dict(values, model_file_name=PurePosixPath(gpu_model_name).stem if gpu_model_name else values["model_file_name"])
        gpu = set_declarations(text[g0:g1], declarations_for(name_spec, gpu_values, literal_template=lit, file_label=rel),
                               pattern=pattern, file_label=rel, expected=expected)
        other = set_declarations(text[e0:e1], declarations_for(name_spec, values, literal_template=lit, file_label=rel),
                                 pattern=pattern, file_label=rel, expected=expected)
        text = text[:g0] + gpu + text[g1:e0] + other + text[e1:]
    text = set_declarations(text, declarations_for(consts, values, literal_template=lit, file_label=rel),
                            pattern=pattern, file_label=rel, expected=expected)
    resize = p.get("ios.input_resize")
    if resize:
        found = list(re.finditer(resize, text, re.M))
        if len(found) > 1:
            raise PatchError(f"{rel}: the interpreter's input is resized {len(found)} times ({expected} expects once)",
                             "restore the file (git checkout, or `mobilebuild restore`) and run again")
        if found:
            mm = found[0]
            new = render("objc/tflite_input_sizes.j2", head=mm.group("head"), size=m.input_size, channels=m.channels)
            text = text[:mm.start()] + new + text[mm.end():]
    return rel, text

