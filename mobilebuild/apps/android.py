"""`mobilebuild android`: the flow as a list of planned steps.

source tree -> SDK/NDK -> model prepared for the tree's runtime -> one PatchSet (WORKSPACE block,
ClassifierActivity constants, model + labels assets, stale assets of earlier runs removed),
applied atomically -> [build -> locate APK -> install -> launch].

``plan()`` returns the steps; ``run()`` executes them in order. With ``dry_run`` the same steps
run in their read-only form: the patch step prints the unified diff and the copies instead of
applying them, and later steps name the command they would run (through ``show``: the command
prints them). A dry run on a machine that lacks a prerequisite (SDK, NDK, Bazel, adb) still shows
the whole plan: each missing one is marked where it is needed, the commands name a placeholder,
and ``result["problems"]`` lists them all (``problems_error`` turns that into the command's
failure). ``--generate-only`` plans no build, install or launch step.
"""

from __future__ import annotations

import os
import shlex
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from mobilebuild import console, runner, versions
from mobilebuild.apps import appmodel, tflite_demo
from mobilebuild.apps.appmodel import (
    ModelOptions,
    asset_name,
    check_asset_names,
    check_constants,
    check_model_options,
    refuse_overwriting_the_source,
    refuse_removed_demo,
    report_model,
)
from mobilebuild.config import load_config
from mobilebuild.errors import ModelError, ToolchainError, UserError
from mobilebuild.graphs.label import read_labels
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
from mobilebuild.tf.workspace import plan_workspace, report_toolchain
from mobilebuild.toolchain import adb, bazel
from mobilebuild.toolchain import sdk as sdkmod
from mobilebuild.toolchain.bazel import cpu_flags, remote_options


@dataclass
class AndroidOptions(ModelOptions):
    tf_src: str | None = None
    tf_repo: str | None = None
    tf_ref: str | None = None
    sdk: str | None = None
    ndk: str | None = None
    api_level: int | None = None
    build_tools: str | None = None
    ndk_api_level: int | None = None
    generate_only: bool = False
    dry_run: bool = False
    # Which demo: "tf-mobile" (ClassifierActivity) or "tflite" (the TFLite camera demo); None:
    # tflite for a .tflite model or a tree without the TF-Mobile demo, else tf-mobile.
    app: str | None = None
    representative_images: str | None = None  # calibration images for --quantize uint8/int8 (tflite)
    # Build / deploy.
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
    bazel_startup_args: list[str] = field(default_factory=list)
    reinstall: bool = False
    logcat: bool = False


@dataclass
class Context:
    """What the steps hand each other."""

    opts: AndroidOptions
    staging: Path
    conf: dict = field(default_factory=dict)  # mobilebuild.toml, read once by the command
    show: Callable[[str], None] = console.info  # result lines: planned commands, the followed log
    show_patch: Callable[[dict], None] = lambda patch: None  # the diff of a --dry-run patch
    tree: Any = None
    workspace: Any = None
    workspace_cpu: str | None = None  # the --cpu the WORKSPACE block was planned for
    model: Any = None
    patch: Any = None
    device: Any = None
    bazel: Any = None
    remote: Any = None  # (cache, executor, headers) from the flags or mobilebuild.toml
    apk: Any = None
    app: str = "tf-mobile"
    result: dict[str, Any] = field(default_factory=dict)
    # Dry run: prerequisites found missing, as {"step", "message", "hint"}.
    problems: list[dict[str, Any]] = field(default_factory=list)

    def missing(self, step: str, exc, what: str) -> None:
        """Note a missing prerequisite (``what``) in a dry run, marked in the plan where it is needed."""
        self.problems.append({"step": step, "what": what, "message": exc.message, "hint": exc.hint})
        self.show(f"[missing] {exc.message}")


@dataclass
class Step:
    name: str
    title: str
    action: Callable[[Context], None]


def plan(opts: AndroidOptions) -> list[Step]:
    """The steps in order. Everything that can fail for reasons other than the build itself
    (tree, SDK/NDK, Bazel, device, model) is checked before the tree is patched."""
    build = not opts.generate_only
    install = build and not opts.no_install
    steps = [
        Step("source", "TensorFlow source tree and version profile", _step_source),
        Step("files", "the files to patch look as the profile expects", _step_files),
        Step("toolchain", "Android SDK / NDK and the WORKSPACE block", _step_toolchain),
    ]
    if build:
        steps.append(Step("bazel", "the Bazel to build with", _step_bazel))
    if install:
        steps.append(Step("device", "the device to install on", _step_device))
    steps += [
        Step("model", "model and labels prepared for the tree's runtime", _step_model),
        Step("patch", "WORKSPACE, ClassifierActivity constants, assets", _step_patch),
    ]
    if build:
        steps += [Step("build", "bazel build of the demo", _step_build), Step("apk", "locate the APK", _step_apk)]
    if install:
        steps.append(Step("install", "install on the device", _step_install))
        if not opts.no_launch:
            steps.append(Step("launch", "start the classifier activity", _step_launch))
    return steps


def run(opts: AndroidOptions, *, conf: dict | None = None, show: Callable[[str], None] | None = None,
        show_patch: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Run every planned step; returns the machine-readable result (``--json``).

    ``conf``: mobilebuild.toml's settings (read here when None); ``show`` receives the result
    lines (planned commands of a dry run, the followed log), ``show_patch`` the patch result of
    a dry run (its diff and copies), when the patch step has run."""
    if conf is None:
        conf = load_config()

    cache_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="staging-", dir=cache_dir()) as staging:
        ctx = Context(opts=opts, staging=Path(staging), conf=conf)
        if show is not None:
            ctx.show = show
        if show_patch is not None:
            ctx.show_patch = show_patch
        timings: dict[str, float] = {}
        ctx.result = {"dry_run": opts.dry_run, "steps": [], "timings": timings, "apk": None, "device": None}
        if opts.dry_run:
            ctx.result["problems"] = ctx.problems
        if opts.dry_run:
            console.info("plan: " + " -> ".join(step.name for step in plan(opts)) + " (dry run: nothing is written or run)")
        with ExitStack() as stack:
            for step in plan(opts):
                console.detail(f"step {step.name}: {step.title}")
                t0 = time.monotonic()
                if opts.dry_run:
                    ctx.show(f"# {step.name}: {step.title}")
                if opts.dry_run and step.name in _PREREQUISITE_STEPS:
                    try:
                        step.action(ctx)
                    except UserError as exc:
                        what, fallback = _PREREQUISITE_STEPS[step.name]
                        ctx.missing(step.name, exc, what(exc))
                        fallback(ctx, exc)
                else:
                    step.action(ctx)
                timings[step.name] = round(time.monotonic() - t0, 3)
                ctx.result["steps"].append(step.name)
                if step.name == "source" and not opts.dry_run:
                    stack.enter_context(tree_lock(ctx.tree.root))  # one command per tree at a time
        if opts.dry_run:
            _show_problems(ctx)
        return ctx.result


def _without_toolchain(ctx: Context, exc: UserError) -> None:
    """The SDK or NDK is missing: the WORKSPACE block cannot be planned; say whether the NDK
    is missing too (the SDK search fails first and would hide it)."""
    ctx.workspace = None
    ctx.workspace_cpu = ctx.opts.cpu
    if "NDK" in exc.message:
        return
    p = ctx.tree.profile
    try:
        ndk, seen = sdkmod.select_ndk(ctx.opts.ndk, None, ctx.conf, p)
    except UserError as ndk_exc:
        ctx.missing("toolchain", ndk_exc, "Android NDK")
        return
    if ndk is None:
        ctx.missing("toolchain", sdkmod.no_ndk_error(p, None, seen), "Android NDK")


def _without_bazel(ctx: Context, exc: UserError) -> None:
    ctx.bazel = None
    ctx.result["bazel"] = None


def _without_adb(ctx: Context, exc: UserError) -> None:
    ctx.result["adb"] = "adb"
    ctx.result["device"] = ctx.opts.device


# Steps whose failure in a dry run is a missing prerequisite: noted, then planned without it.
_PREREQUISITE_STEPS: dict[str, tuple[Callable[[UserError], str], Callable[[Context, UserError], None]]] = {
    "toolchain": (lambda exc: "Android NDK" if "NDK" in exc.message else "Android SDK", _without_toolchain),
    "bazel": (lambda exc: "Bazel", _without_bazel),
    "device": (lambda exc: "adb", _without_adb),
}


def problems_error(result: dict[str, Any]) -> UserError | None:
    """The failure of a dry run that found prerequisites missing (None: nothing missing)."""
    problems = result.get("problems") or []
    if not problems:
        return None
    listing = ", ".join(dict.fromkeys(p["what"] for p in problems))
    return UserError(
        f"the plan cannot run here: missing {listing}",
        "`mobilebuild setup` installs Bazel, the SDK and the NDK the tree's profile names; "
        "the problems listed above say how to fix each",
    )


def _show_problems(ctx: Context) -> None:
    if not ctx.problems:
        return
    ctx.show(f"problems ({len(ctx.problems)}):")
    for p in ctx.problems:
        ctx.show(f"  {p['step']}: {p['message']}")
        if p["hint"]:
            ctx.show(f"    fix: {p['hint']}")


# ---- steps ------------------------------------------------------------------------------------


def _step_source(ctx: Context) -> None:
    o = ctx.opts
    ctx.tree = resolve(tf_src=o.tf_src, tf_repo=o.tf_repo, tf_ref=o.tf_ref, conf=ctx.conf).tree
    ctx.app = tflite_demo.choose_app(o.app, ctx.tree, o.model)
    if ctx.app == "tflite":
        ctx.tree = tflite_demo.app_tree(ctx.tree)
    t = ctx.tree
    console.info(f"TensorFlow {t.version_text} ({t.version_source}) at {t.root} — profile {t.profile.family}")
    ctx.result["tree"] = t.as_dict()
    ctx.result["app"] = ctx.app
    if ctx.app != "tflite":
        refuse_removed_demo(t, "Android")


def _step_files(ctx: Context) -> None:
    p = ctx.tree.profile
    if ctx.app == "tflite":
        _tflite_files(ctx)
        return
    check_constants(ctx.tree, "android", p.require("android.activity"))
    check_model_options(ctx.opts)
    check_asset_names(p, [ctx.opts.model and asset_name(ctx.opts.model), ctx.opts.labels])
    if ctx.opts.model:
        target = ctx.tree.path(p.require("android.asset_dir")) / asset_name(ctx.opts.model)
        refuse_overwriting_the_source(ctx.opts.model, target)
    if ctx.opts.mean is not None:  # a mean the int IMAGE_MEAN cannot hold: say so before model work
        declarations_for(p.require("android.constants"), {"mean": ctx.opts.mean},
                         literal_template=p.require("android.literal_template"), file_label=p.require("android.activity"))
    _check_build_options(ctx)


def _tflite_files(ctx: Context) -> None:
    """The TFLite demo's files, the options, the names our files get beside its BUILD."""
    o, tree = ctx.opts, ctx.tree
    tflite_demo.check_android_tree(tree)
    appmodel.resolve_inputs(o.model, o.labels)
    tflite_demo.check_options(o)
    check_normalisation(o.mean, o.std, o.input_size)
    tflite_demo.check_android_values(tree, o)
    model_name = Path(o.model).stem + ".tflite" if o.model else None
    check_asset_names(tree.profile, [model_name, o.labels])
    _check_build_options(ctx)


def _step_toolchain(ctx: Context) -> None:
    o = ctx.opts
    ws = plan_workspace(
        ctx.tree,
        sdk_flag=o.sdk,
        ndk_flag=o.ndk,
        api_level=o.api_level,
        build_tools=o.build_tools,
        ndk_api_level=o.ndk_api_level,
        require_ndk=True,
        cpu=o.cpu,
        conf=ctx.conf,
    )
    ctx.workspace = ws
    ctx.workspace_cpu = o.cpu
    report_toolchain(ws)
    ctx.result["workspace"] = ws.as_dict()


def _step_model(ctx: Context) -> None:
    if ctx.app == "tflite":
        p = ctx.tree.profile
        m = tflite_demo.prepare(ctx.tree, ctx.staging, ctx.opts, runtime=tflite_demo.runtime_version(ctx.tree, "tflite"),
                                default_quantize=p.require("tflite.default_quantize"),
                                default_normalisation=tuple(p.get("tflite.float.default_normalisation") or (127.5, 127.5)))
        ctx.model = m
        report_model(m)
        ctx.result["model"] = m.as_dict()
        return

    m = appmodel.prepare_from(ctx.tree, ctx.staging, ctx.opts, whole_mean=mean_is_int(ctx.tree.profile))
    if m.memory_mapped:
        raise ModelError(
            f"{m.source_model.name} is a memory-mapped package: the Android demo loads a plain GraphDef",
            "pass the frozen .pb (memory mapping is for the iOS example: `mobilebuild ios`)",
        )
    ctx.model = m
    report_model(m)
    ctx.result["model"] = m.as_dict()


def mean_is_int(profile) -> bool:
    """Whether the demo's constant for the mean (IMAGE_MEAN) is an int in this profile."""
    constants = profile.get("android.constants") or {}
    return any(spec.get("value") == "mean" and spec.get("type") == "int" for spec in constants.values())


def android_values(tree, m) -> dict[str, Any]:
    p = tree.profile
    suffix = p.get("android.tensor_suffix", "") or ""
    prefix = p.require("android.asset_url_prefix")

    def tensor(name: str) -> str:
        return name if ":" in name or not suffix else name + suffix

    return {
        "num_classes": m.num_classes or len(read_labels(m.labels)),
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
    ps.copy(m.model, f"{asset_dir}/{m.model_asset}", shown=f"{m.source_model} (prepared)")
    ps.copy(m.labels, f"{asset_dir}/{m.labels_asset}")
    # Assets an earlier run added for another model would bloat the APK: remove them.
    for rel in Originals(tree.root).created():
        if rel.startswith(asset_dir + "/") and rel not in wanted:
            ps.remove(rel)
    return ps


def _step_patch(ctx: Context) -> None:
    if ctx.opts.cpu != ctx.workspace_cpu:
        # The device step chose another --cpu (a 64-bit phone): its NDK api_level may differ.
        _step_toolchain(ctx)
    if ctx.bazel is not None and ctx.remote and ctx.workspace is not None:
        # Trees configured through --action_env get one bazelrc with everything the build passes.
        options = _remote_options(ctx)
        if ctx.opts.dry_run:  # the diff is printed: header values (tokens) are not shown
            options = [bazel.masked_option(o) for o in options]
        ctx.workspace = ctx.workspace.with_options(options)
    if ctx.app == "tflite":
        ps = tflite_demo.build_android_patch(ctx.tree, ctx.workspace, ctx.model)
        ctx.result["classifier"] = ps.chosen_classifier
    else:
        ps = build_patch(ctx.tree, ctx.workspace, ctx.model)
    if ctx.workspace is not None:
        console.detail(f"{ctx.workspace.rel}: {ctx.workspace.edit.how}")
    else:  # dry run without SDK/NDK
        ctx.show("[missing] the SDK/NDK settings of the tree (android_sdk_repository, android_ndk_repository) need the SDK and NDK")
    ctx.patch = ps
    ctx.result["patch"] = apply_patch(ps, ctx.opts.dry_run)
    ctx.show_patch(ctx.result["patch"])
    if ctx.workspace is not None and ctx.workspace.mechanism == "action_env" and not ctx.opts.dry_run:
        # Remote headers often carry tokens: then only the owner may read the file.
        ctx.tree.path(ctx.workspace.rel).chmod(bazel.fragment_mode(_remote_options(ctx) if ctx.bazel is not None else []))
    if ctx.opts.generate_only and not ctx.opts.dry_run:
        # The same flags the build step passes: without them the demo may not compile.
        p = ctx.tree.profile
        rc = _android_bazelrc(ctx)
        startup = [f"--bazelrc={rc}"] if rc else []
        argv = ["bazel", *startup, "build", *_bazel_flags(p, ctx.opts), p.require("android.bazel_target")]
        console.info(f"next: cd {shlex.quote(str(ctx.tree.root))} && {shlex.join(argv)} "
                     "(or run without --generate-only to build, install and launch)")


def _android_bazelrc(ctx: Context):
    """The bazelrc holding the tree's --action_env values (None: the tree's WORKSPACE has the rules)."""
    ws = ctx.workspace
    return ctx.tree.root / ws.rel if ws is not None and ws.mechanism == "action_env" else None


def _remote_options(ctx: Context) -> list[str]:
    return bazel.remote_options(*ctx.remote, bazel_version=ctx.bazel.version) if ctx.remote else []


# ---- build / deploy ----------------------------------------------------------------------------


def _check_build_options(ctx: Context) -> None:
    """Bad build options fail before anything is patched or built."""

    o = ctx.opts
    if o.compilation_mode not in ("opt", "dbg", "fastbuild"):
        raise UserError(f"-c {o.compilation_mode} is not a Bazel compilation mode", "use -c opt, -c dbg or -c fastbuild")
    bazel.cpu_flags(ctx.tree.profile, o.cpu)
    if not o.generate_only:  # --generate-only uses -c and --cpu only in the printed bazel command
        ctx.remote = _remote_settings(o, ctx.conf)


def _bazel_flags(profile, o: AndroidOptions) -> list[str]:
    """-c, the profile's flags and the --cpu flags the demo needs (before the user's own)."""

    return ["-c", o.compilation_mode, *(profile.get("android.bazel_flags") or []), *cpu_flags(profile, o.cpu)]


def _remote_settings(o: AndroidOptions, conf: dict) -> tuple[str | None, str | None, list[str]]:
    """--remote-* flags, else mobilebuild.toml's remote_cache / remote_executor / remote_headers."""

    cfg = conf if not (o.remote_cache or o.remote_executor) else {}
    cache = o.remote_cache or cfg.get("remote_cache")
    executor = o.remote_executor or cfg.get("remote_executor")
    headers = list(o.remote_headers) or [f"{k}={v}" for k, v in (cfg.get("remote_headers") or {}).items()]
    remote_options(cache, executor, headers)  # URL / header syntax (flag names: once Bazel is known)
    return cache, executor, headers


def _step_device(ctx: Context) -> None:
    """Pick the device before building, so a missing phone fails in seconds, not after the build."""

    o = ctx.opts
    adb_path = adb.find_adb(ctx.workspace.sdk.path if ctx.workspace is not None else None)
    ctx.result["adb"] = adb_path
    if o.dry_run:
        ctx.show(f"$ {adb_path} devices -l")
        ctx.result["device"] = o.device
        return
    device = adb.select_device(adb.list_devices(adb_path), o.device)
    ctx.device = device
    ctx.result["device"] = device.to_json()
    console.info(f"device {device.describe()}")
    if o.cpu is None:
        _cpu_for_device(ctx, adb_path, device)


def _cpu_for_device(ctx: Context, adb_path: str, device) -> None:
    """Without --cpu, build for a CPU the phone runs: the profile's default when the phone
    lists it among its ABIs, else the phone's own ABI (an x86 emulator gets an x86 APK instead
    of an install failing with INSTALL_FAILED_NO_MATCHING_ABIS after the build)."""

    default = ctx.tree.profile.get("android.default_cpu")
    info = adb.device_info(adb_path, device.serial)
    if not default or not info["abilist"] or default in info["abilist"]:
        return
    cpu = adb.cpu_for_abi(info["abi"] or "")
    if cpu and cpu in (ctx.tree.profile.get("android.cpu_flags") or {}):
        ctx.opts.cpu = cpu
        ctx.result["cpu"] = cpu
        console.info(f"building for --cpu {cpu}: {device.describe()} cannot run {default} code ({', '.join(info['abilist'])})")


def _step_bazel(ctx: Context) -> None:
    o = ctx.opts
    p = ctx.tree.profile
    try:
        bz = bazel.resolve_bazel(p, bazel_path=o.bazel, tree=ctx.tree.root, allow_any_version=o.allow_any_bazel,
                                conf=ctx.conf)
    except ToolchainError as exc:
        if not o.dry_run:
            raise
        # A dry run still shows the build of this tree's era: name the Bazel it wants.
        want = bazel.bazelversion_file(ctx.tree.root) or p.require("bazel.recommended")
        bz = bazel.Bazel(f"bazel-{want}", versions.release(want), "not installed")
        ctx.missing("bazel", exc, "Bazel")
        ctx.show(f"the dry run shows the command with Bazel {want} "
                 f"(`mobilebuild setup --tf-ref v{ctx.tree.version_text}` installs it)")
    ctx.bazel = bz
    lo, hi = p.get("bazel.min") or "any", p.get("bazel.max") or "any"
    era = f"TensorFlow {ctx.tree.version_text} builds with Bazel {lo} - {hi}"
    if o.dry_run:
        ctx.show(f"bazel {bz.version_text} ({bz.path}, via {bz.via}); {era}")
    else:
        console.detail(f"bazel {bz.path} ({bz.version_text}, via {bz.via}); {era}")
    # The remote flags this Bazel understands: a setting it cannot use fails before the patch.
    bazel.remote_options(*ctx.remote, bazel_version=bz.version)
    ctx.result["bazel"] = {"path": bz.path, "version": bz.version_text, "via": bz.via, "warnings": list(bz.warnings)}


def _step_build(ctx: Context) -> None:
    o = ctx.opts
    tree = ctx.tree
    p = tree.profile
    bz = ctx.bazel
    if bz is None:  # dry run without a Bazel: the command as it would be, with a placeholder
        bz = bazel.Bazel("bazel", None, "missing")
    flags = [*_bazel_flags(p, o), *o.bazel_args]
    ctx.result["cpu"] = o.cpu or p.get("android.default_cpu")
    cache, executor, headers = ctx.remote
    options = bazel.remote_options(cache, executor, headers, bazel_version=bz.version)
    rc = _android_bazelrc(ctx)
    if rc is not None:
        # Written by the patch step, with the remote settings too (see _step_patch).
        env = ", ".join(name for name, _ in ctx.workspace.android_env)
        extra = f" + {len(options)} remote settings" if options else ""
        ctx.show(f"bazelrc {rc} (--action_env {env}{extra}) passed with --bazelrc")
    elif options:
        rc_rel = bazel.BAZELRC_NAME
        if o.dry_run:
            rc = tree.root / rc_rel
            if bazel.fragment_is_current(tree.root, options):
                ctx.show(f"unchanged {rc_rel} (remote cache/executor settings for bazel --bazelrc)")
            else:
                ctx.show(f"write {rc_rel} (remote cache/executor settings for bazel --bazelrc):")
                for option in options:
                    ctx.show(f"    build {bazel.masked_option(option)}")
        else:
            Originals(tree.root).record([rc_rel], [])  # so `mobilebuild restore` removes it again
            rc = bazel.write_bazelrc_fragment(tree.root, cache, executor, headers, bazel_version=bz.version)
    target = p.require("android.bazel_target")
    startup = list(o.bazel_startup_args)
    if o.dry_run:
        ctx.show("$ " + runner.format_argv(bazel.build_argv(bz, target, flags=flags, bazelrc=rc, startup_flags=startup))
             + f"  (in {tree.root})")
        return
    result = bazel.build(bz, tree.root, target, flags=flags, bazelrc=rc, startup_flags=startup)
    ctx.result["build"] = {**result.as_json(), "argv": result.argv, "bazel": bz.path, "bazel_version": bz.version_text}
    what = "no-op (everything up to date)" if result.no_op else f"{result.actions if result.actions is not None else '?'} actions"
    hits = ""
    if result.remote_cache_hits and result.remote_cache_hit_ratio is not None:
        hits = f", {result.remote_cache_hits} remote cache hits ({result.remote_cache_hit_ratio:.0%})"
    elif result.remote_cache_hits:
        hits = f", {result.remote_cache_hits} remote cache hits"
    console.success(f"bazel build {target}: {what}{hits} in {result.seconds:.1f} s (log: {result.log_path})")


def _step_apk(ctx: Context) -> None:
    p = ctx.tree.profile
    if ctx.opts.dry_run:
        ctx.result["apk"] = str(ctx.tree.root / p.require("android.apk"))
        return
    apk = bazel.locate_apk(ctx.tree.root, p, ctx.result.get("build", {}).get("outputs", ()))
    ctx.apk = apk
    ctx.result["apk"] = str(apk)
    console.info(f"APK {apk} ({console.size(apk.stat().st_size)})")


def _planned_serial(o: AndroidOptions) -> str:
    """The device a dry run names: --device, else ANDROID_SERIAL, else a placeholder."""

    return o.device or os.environ.get("ANDROID_SERIAL") or "<device>"


def _step_install(ctx: Context) -> None:
    o = ctx.opts
    p = ctx.tree.profile
    package = p.require("android.package")
    if o.dry_run:
        ctx.show(f"$ {ctx.result['adb']} -s {_planned_serial(o)} install -r -g {ctx.result['apk']}")
        return
    res = adb.install(ctx.result["adb"], ctx.device.serial, ctx.apk, reinstall=o.reinstall, package=package)
    ctx.result["install"] = res.to_json()
    console.success(f"installed on {ctx.device.describe()}" + (" (after uninstalling the old one)" if res.reinstalled else ""))


def _step_launch(ctx: Context) -> None:
    o = ctx.opts
    p = ctx.tree.profile
    comp = adb.component(p.require("android.package"), p.require("android.launcher_activity"))
    if o.dry_run:
        ctx.show(f"$ {ctx.result['adb']} -s {_planned_serial(o)} shell am start -n {comp}")
        return
    res = adb.launch(ctx.result["adb"], ctx.device.serial, comp)
    ctx.result["launch"] = res.to_json()
    if res.warning:
        console.warn(res.warning)
    console.success(f"started {comp} on {ctx.device.describe()}")
    if o.logcat and console.settings.json:
        # The JSON result goes out when the command ends; a log followed until Ctrl-C would hold it back.
        console.warn(f"--logcat is not followed with --json; run `mobilebuild devices logcat --device {ctx.device.serial}`")
    elif o.logcat:
        console.info("following the app's log (Ctrl-C to stop)")
        adb.logcat(ctx.result["adb"], ctx.device.serial, p.require("android.package"), ctx.show)  # the command shows it, as `devices logcat`
