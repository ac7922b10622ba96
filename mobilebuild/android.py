"""`mobilebuild android`: the flow as a list of planned steps.

source tree -> SDK/NDK -> model prepared for the tree's runtime -> one PatchSet (WORKSPACE block,
ClassifierActivity constants, model + labels assets, stale assets of earlier runs removed),
applied atomically -> [build -> locate APK -> install -> launch].

``plan()`` returns the steps; ``run()`` executes them in order. With ``dry_run`` the same steps
run in their read-only form: the patch step prints the unified diff and the copies instead of
applying them, and later steps print the command they would run. The build/install/launch steps
are added by ``build_steps()`` (hook point for the Bazel and adb modules); ``--generate-only``
stops after the patch.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from mobilebuild import console


@dataclass
class AndroidOptions:
    tf_src: str | None = None
    tf_repo: str | None = None
    tf_ref: str | None = None
    sdk: str | None = None
    ndk: str | None = None
    api_level: int | None = None
    build_tools: str | None = None
    ndk_api_level: int | None = None
    model: str | None = None
    labels: str | None = None
    input_size: int | None = None
    mean: float | None = None
    std: float | None = None
    input_name: str | None = None
    output_name: str | None = None
    optimize: bool = False
    quantize: str | None = None
    generate_only: bool = False
    dry_run: bool = False
    # Build / deploy (issue 5); used by build_steps().
    no_install: bool = False
    no_launch: bool = False
    device: str | None = None
    cpu: str | None = None
    compilation_mode: str = "opt"
    bazel_args: list[str] = field(default_factory=list)
    bazel: str | None = None
    allow_any_bazel: bool = False
    remote_cache: str | None = None
    remote_executor: str | None = None
    remote_headers: list[str] = field(default_factory=list)
    reinstall: bool = False


@dataclass
class Context:
    """What the steps hand each other."""

    opts: AndroidOptions
    staging: Path
    tree: Any = None
    workspace: Any = None
    model: Any = None
    patch: Any = None
    result: dict[str, Any] = field(default_factory=dict)


@dataclass
class Step:
    name: str
    title: str
    action: Callable[[Context], None]


def plan(opts: AndroidOptions) -> list[Step]:
    steps = [
        Step("source", "TensorFlow source tree and version profile", _step_source),
        Step("files", "the files to patch look as the profile expects", _step_files),
        Step("toolchain", "Android SDK / NDK and the WORKSPACE block", _step_toolchain),
        Step("model", "model and labels prepared for the tree's runtime", _step_model),
        Step("patch", "WORKSPACE, ClassifierActivity constants, assets", _step_patch),
    ]
    if not opts.generate_only:
        steps.extend(build_steps(opts))
    return steps


def build_steps(opts: AndroidOptions) -> list[Step]:
    """build -> locate APK -> install -> launch. Hook point: wired to mobilebuild.bazel / adb."""
    steps = [Step("build", "bazel build of the demo", _step_build), Step("apk", "locate the APK", _step_apk)]
    if not opts.no_install:
        steps.append(Step("install", "install on the device", _step_install))
        if not opts.no_launch:
            steps.append(Step("launch", "start the classifier activity", _step_launch))
    return steps


def run(opts: AndroidOptions) -> dict[str, Any]:
    """Run every planned step; returns the machine-readable result (``--json``)."""
    from mobilebuild.paths import cache_dir

    cache_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="staging-", dir=cache_dir()) as staging:
        ctx = Context(opts=opts, staging=Path(staging))
        timings: dict[str, float] = {}
        ctx.result = {"dry_run": opts.dry_run, "steps": [], "timings": timings}
        for step in plan(opts):
            console.detail(f"step {step.name}: {step.title}")
            t0 = time.monotonic()
            step.action(ctx)
            timings[step.name] = round(time.monotonic() - t0, 3)
            ctx.result["steps"].append(step.name)
        return ctx.result


# ---- steps ------------------------------------------------------------------------------------


def _step_source(ctx: Context) -> None:
    from mobilebuild.tftree import open_tree

    o = ctx.opts
    ctx.tree = open_tree(o.tf_src, o.tf_repo, o.tf_ref)
    t = ctx.tree
    console.info(f"TensorFlow {t.version_text} ({t.version_source}) at {t.root} — profile {t.profile.family}")
    ctx.result["tree"] = t.as_dict()


def check_constants(tree, section: str, rel: str) -> None:
    """Every constant of the profile declared exactly once with its type (before model work)."""
    from mobilebuild.patching import check_declarations, read_text_exact
    from mobilebuild.tftree import require_file

    p = tree.profile
    path = require_file(tree, rel, f"{section} file to patch")
    check_declarations(
        read_text_exact(path),
        p.require(f"{section}.constants"),
        pattern=p.require(f"{section}.declaration"),
        file_label=rel,
        expected=f"the {p.family} profile for TensorFlow {tree.version_text}",
    )


def _step_files(ctx: Context) -> None:
    check_constants(ctx.tree, "android", ctx.tree.profile.require("android.activity"))


def _step_toolchain(ctx: Context) -> None:
    from mobilebuild.workspace import plan_workspace

    o = ctx.opts
    ws = plan_workspace(
        ctx.tree,
        sdk_flag=o.sdk,
        ndk_flag=o.ndk,
        api_level=o.api_level,
        build_tools=o.build_tools,
        ndk_api_level=o.ndk_api_level,
        require_ndk=True,
    )
    ctx.workspace = ws
    report_toolchain(ws)
    ctx.result["workspace"] = ws.as_dict()


def report_toolchain(ws) -> None:
    s = ws.sdk
    console.info(f"SDK {s.path} ({s.source}): android-{s.api_level}, build-tools {s.build_tools}, adb {'yes' if s.adb else 'missing'}")
    if ws.ndk:
        console.info(f"NDK {ws.ndk.path} ({ws.ndk.source}): {ws.ndk.describe()}, api_level {ws.ndk_api_level}")
    for w in ws.edit.warnings:
        console.warn(w)


def _step_model(ctx: Context) -> None:
    from mobilebuild import appmodel

    o = ctx.opts
    m = appmodel.prepare(
        ctx.tree,
        ctx.staging,
        model=o.model,
        labels=o.labels,
        input_size=o.input_size,
        mean=o.mean,
        std=o.std,
        input_name=o.input_name,
        output_name=o.output_name,
        optimize=o.optimize,
        quantize=o.quantize,
    )
    if m.memory_mapped:
        from mobilebuild.errors import ModelError

        raise ModelError(
            f"{m.source_model.name} is a memory-mapped package: the Android demo loads a plain GraphDef",
            "pass the frozen .pb (memory mapping is for the iOS example: `mobilebuild ios`)",
        )
    ctx.model = m
    report_model(m)
    ctx.result["model"] = m.as_dict()


def report_model(m) -> None:
    what = "built-in default model" if m.is_default else m.source_model.name
    classes = f", {m.num_classes} classes" if m.num_classes else ""
    console.info(
        f"model {what}: input {m.input_name} {m.input_size}x{m.input_size}x{m.channels}, "
        f"mean {m.mean:g}, std {m.std:g}, output {m.output_name}{classes}"
    )
    for note in m.notes:
        console.info(f"  {note}")


def android_values(tree, m) -> dict[str, Any]:
    p = tree.profile
    suffix = p.get("android.tensor_suffix", "") or ""
    prefix = p.require("android.asset_url_prefix")

    def tensor(name: str) -> str:
        return name if ":" in name or not suffix else name + suffix

    return {
        "input_size": m.input_size,
        "mean": m.mean,
        "std": m.std,
        "input_name": tensor(m.input_name),
        "output_name": tensor(m.output_name),
        "model_asset_url": prefix + m.model_asset,
        "labels_asset_url": prefix + m.labels_asset,
    }


def build_patch(tree, ws, m):
    """One PatchSet with every change of the android command."""
    from mobilebuild.patching import Originals, PatchSet, declarations_for, read_text_exact, set_declarations
    from mobilebuild.tftree import require_file

    p = tree.profile
    ps = PatchSet(tree.root)
    if ws is not None:
        ps.edit(ws.rel, ws.edit.text)
    activity_rel = p.require("android.activity")
    activity = require_file(tree, activity_rel, "Android demo's ClassifierActivity.java")
    label = f"{activity_rel}"
    expected = f"the {p.family} profile for TensorFlow {tree.version_text}"
    decls = declarations_for(
        p.require("android.constants"),
        android_values(tree, m),
        literal_template=p.require("android.literal_template"),
        file_label=label,
    )
    ps.edit(activity_rel, set_declarations(read_text_exact(activity), decls, pattern=p.require("android.declaration"),
                                           file_label=label, expected=expected))
    asset_dir = p.require("android.asset_dir")
    wanted = {f"{asset_dir}/{m.model_asset}", f"{asset_dir}/{m.labels_asset}"}
    ps.copy(m.model, f"{asset_dir}/{m.model_asset}")
    ps.copy(m.labels, f"{asset_dir}/{m.labels_asset}")
    # Assets an earlier run added for another model would bloat the APK: remove them.
    for rel in Originals(tree.root).created():
        if rel.startswith(asset_dir + "/") and rel not in wanted:
            ps.remove(rel)
    return ps


def warn_user_changes(tree, ps) -> list[str]:
    """Files we are about to patch that hold uncommitted changes not made by mobilebuild."""
    from mobilebuild.patching import Originals
    from mobilebuild.tftree import modified_since_head

    store = Originals(tree.root)
    rels = [c.rel for c in ps.pending() if c.kind == "edit" and not store.has(c.rel)]
    dirty = modified_since_head(tree.root, rels)
    for rel in dirty:
        console.warn(
            f"{rel} has uncommitted changes; they are kept, and `mobilebuild restore` returns to this state"
        )
    return dirty


def apply_or_show(tree, ps, dry_run: bool, *, check_git: bool = True) -> dict[str, Any]:
    """Apply the PatchSet (or print its diff with --dry-run); the result for --json."""
    out: dict[str, Any] = {"dirty_before": warn_user_changes(tree, ps) if check_git else []}
    if dry_run:
        diff = ps.diff()
        copies = ps.copy_lines()
        out.update({"diff": diff, "copies": copies, "changed": [c.rel for c in ps.pending()]})
        if not console.settings.json:
            import sys

            sys.stdout.write(diff)
            for line in copies:
                sys.stdout.write(line + "\n")
            sys.stdout.flush()
        if not ps.pending():
            console.info("dry run: nothing would change (the tree is up to date)")
        else:
            console.info(f"dry run: {len(ps.pending())} change(s) shown above; nothing was written")
        return out
    res = ps.apply()
    out.update({"changed": res.changed, "unchanged": res.unchanged, "removed": res.removed})
    if res.changed or res.removed:
        console.success(
            f"updated {len(res.changed)} file(s) in {tree.root}: " + ", ".join(res.changed + [f"-{r}" for r in res.removed])
        )
    else:
        console.success("the tree is up to date: nothing rewritten")
    return out


def _step_patch(ctx: Context) -> None:
    ps = build_patch(ctx.tree, ctx.workspace, ctx.model)
    console.detail(f"WORKSPACE: {ctx.workspace.edit.how}")
    ctx.patch = ps
    ctx.result["patch"] = apply_or_show(ctx.tree, ps, ctx.opts.dry_run)
    if ctx.opts.generate_only and not ctx.opts.dry_run:
        p = ctx.tree.profile
        console.info(f"next: cd {ctx.tree.root} && bazel build -c opt {p.require('android.bazel_target')}")


# ---- build / deploy (issue 5): hook points --------------------------------------------------


def _require_module(name: str):
    import importlib

    from mobilebuild.errors import UserError

    try:
        return importlib.import_module(f"mobilebuild.{name}")
    except ImportError as exc:  # pragma: no cover - both ship with the package
        raise UserError(f"mobilebuild.{name} is not available in this build", "use --generate-only") from exc


def _step_build(ctx: Context) -> None:
    from mobilebuild.errors import UserError

    raise UserError(
        "building the app is not wired in yet in this version",
        "run with --generate-only, then `bazel build -c opt //tensorflow/examples/android:tensorflow_demo` in the tree",
    )


def _step_apk(ctx: Context) -> None:  # pragma: no cover - reached only once build is wired
    pass


def _step_install(ctx: Context) -> None:  # pragma: no cover
    pass


def _step_launch(ctx: Context) -> None:  # pragma: no cover
    pass
