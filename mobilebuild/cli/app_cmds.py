"""`mobilebuild workspace | android | ios | restore`: the TensorFlow tree, its WORKSPACE and the
demo apps. Core modules are imported inside the commands (no TensorFlow at --help time)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from mobilebuild.choices import ANDROID_CPUS, GRAPH_QUANTIZE_MODES, TFLITE_QUANTIZE_MODES
from mobilebuild.cli.options import choice_option

APP_QUANTIZE_MODES = tuple(dict.fromkeys(GRAPH_QUANTIZE_MODES + TFLITE_QUANTIZE_MODES))

TREE_HELP = "TensorFlow checkout to use (never has its git state changed)."
REPO_HELP = "Repository to clone into the cache (https://, file:// or a local path); needs --tf-ref."
REF_HELP = "Tag/branch/commit to check out from --tf-repo (e.g. v1.4.0)."
SDK_HELP = "Android SDK dir (else ANDROID_HOME, ANDROID_SDK_ROOT, mobilebuild.toml, ~/Library/Android/sdk, ~/Android/Sdk, the SDK `setup` installed, Debian's /usr/lib/android-sdk; ones found by default need platforms and build-tools)."
NDK_HELP = "Android NDK dir (else ANDROID_NDK_HOME, mobilebuild.toml, SDK/ndk-bundle, SDK/ndk/<version>, the NDK `setup` installed; ones found by default must be a revision the TF version builds with)."


def _text(path: Path | None) -> str | None:
    """Path options reach the core as the text the user typed (None when not given)."""
    return None if path is None else str(path)


def _emit(result: dict) -> None:
    from mobilebuild import console

    if console.settings.json:
        console.emit_json(result)


def show(line: str) -> None:
    """A result line of a flow (a planned command, a followed log): stdout, or stderr when
    --json owns stdout. The flows in apps/ hand their lines here instead of printing."""
    from mobilebuild import console

    if console.settings.json:
        console.info(line)
    else:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def show_patch(patch: dict | None) -> None:
    """The diff and the copies of a --dry-run patch (nothing when the patch was applied)."""
    if not patch or "diff" not in patch:
        return
    from mobilebuild import console

    if not console.settings.json:
        sys.stdout.write(patch["diff"])
        for line in patch["copies"]:
            sys.stdout.write(line + "\n")
        sys.stdout.flush()


def workspace_cmd(
    tf_src: Optional[str] = typer.Option(None, "--tf-src", help=TREE_HELP),
    tf_repo: Optional[str] = typer.Option(None, "--tf-repo", help=REPO_HELP),
    tf_ref: Optional[str] = typer.Option(None, "--tf-ref", help=REF_HELP),
    sdk: Optional[str] = typer.Option(None, "--sdk", help=SDK_HELP),
    ndk: Optional[str] = typer.Option(None, "--ndk", help=NDK_HELP),
    api_level: Optional[int] = typer.Option(None, "--api-level", help="SDK platform to use (default: the profile's if installed, else the highest)."),
    build_tools: Optional[str] = typer.Option(None, "--build-tools", help="SDK build-tools version (default: the profile's if installed, else the highest)."),
    ndk_api_level: Optional[int] = typer.Option(None, "--ndk-api-level", help="api_level of android_ndk_repository (not the NDK revision)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the diff, change nothing."),
) -> None:
    """Write android_sdk_repository / android_ndk_repository into the tree's WORKSPACE."""
    from mobilebuild import config, console
    from mobilebuild.tf.patching import PatchSet, apply_patch, tree_lock
    from mobilebuild.tf.tree import resolve
    from mobilebuild.tf.workspace import plan_workspace, report_toolchain

    conf = config.load_config()
    tree = resolve(tf_src=tf_src, tf_repo=tf_repo, tf_ref=tf_ref, conf=conf).tree
    console.info(f"TensorFlow {tree.version_text} ({tree.version_source}) at {tree.root} — profile {tree.profile.family}")
    with tree_lock(tree.root):
        ws = plan_workspace(
            tree, sdk_flag=sdk, ndk_flag=ndk, api_level=api_level, build_tools=build_tools, ndk_api_level=ndk_api_level,
            conf=conf,
        )
        report_toolchain(ws)
        ps = PatchSet(tree.root)
        ps.edit(ws.rel, ws.edit.text)
        result = {"tree": tree.as_dict(), "workspace": ws.as_dict(), "dry_run": dry_run}
        result["patch"] = apply_patch(ps, dry_run)
    show_patch(result["patch"])
    # What was done, and where: the two mechanisms put the SDK/NDK in different files.
    if ws.mechanism == "action_env":
        console.info(
            f"{tree.root / ws.rel}: the --action_env values this tree's android_configure() reads "
            f"({', '.join(name for name, _ in ws.android_env)}); WORKSPACE is unchanged. "
            f"`mobilebuild android` passes the file to Bazel; by hand: bazel --bazelrc={tree.root / ws.rel} build ..."
        )
    else:
        console.info(f"{tree.root / ws.rel}: {ws.edit.how} (android_sdk_repository"
                     + (", android_ndk_repository)" if ws.ndk else ")"))
    _emit(result)


def android_cmd(
    tf_src: Optional[Path] = typer.Option(None, "--tf-src", help=TREE_HELP, rich_help_panel='Tree'),
    tf_repo: Optional[str] = typer.Option(None, "--tf-repo", help=REPO_HELP, rich_help_panel='Tree'),
    tf_ref: Optional[str] = typer.Option(None, "--tf-ref", help=REF_HELP, rich_help_panel='Tree'),
    sdk: Optional[Path] = typer.Option(None, "--sdk", help=SDK_HELP, rich_help_panel='Android SDK/NDK'),
    ndk: Optional[Path] = typer.Option(None, "--ndk", help=NDK_HELP, rich_help_panel='Android SDK/NDK'),
    api_level: Optional[int] = typer.Option(None, "--api-level", help="SDK platform (android-N) to build against.", rich_help_panel='Android SDK/NDK'),
    build_tools: Optional[str] = typer.Option(None, "--build-tools", help="SDK build-tools version.", rich_help_panel='Android SDK/NDK'),
    ndk_api_level: Optional[int] = typer.Option(None, "--ndk-api-level", help="api_level of android_ndk_repository (not the NDK revision).", rich_help_panel='Android SDK/NDK'),
    model: Optional[Path] = typer.Option(None, "--model", help="Frozen GraphDef (.pb), or a .tflite for --app tflite; default: the built-in model.", rich_help_panel='Model'),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Labels file, one class per line (with --model).", rich_help_panel='Model'),
    input_size: Optional[int] = typer.Option(None, "--input-size", help="Input width = height (default: from the model).", rich_help_panel='Model'),
    mean: Optional[float] = typer.Option(None, "--mean", help="Pixel mean (IMAGE_MEAN is an int in the demo).", rich_help_panel='Model'),
    std: Optional[float] = typer.Option(None, "--std", help="Pixel std.", rich_help_panel='Model'),
    input_name: Optional[str] = typer.Option(None, "--input-name", help="Input node (default: from the model, e.g. Mul for retrain.py graphs).", rich_help_panel='Model'),
    output_name: Optional[str] = typer.Option(None, "--output-name", help="Output node (default: from the model).", rich_help_panel='Model'),
    optimize: bool = typer.Option(False, "--optimize", help="Run optimize-for-inference on the app's copy.", rich_help_panel='Model'),
    quantize: Optional[str] = choice_option(None, "--quantize", choices=APP_QUANTIZE_MODES, help="Quantize the app's copy (tf-mobile: weights_rounded, weights, eightbit; tflite: none, dynamic, int8, uint8).", rich_help_panel='Model'),
    app: Optional[str] = typer.Option(None, "--app", help="tf-mobile | tflite (default: tflite for a .tflite model or a 2.4+ tree, else tf-mobile).", rich_help_panel='Model'),
    representative_images: Optional[Path] = typer.Option(None, "--representative-images", help="Folder of typical images: calibrates --quantize uint8/int8 (tflite).", rich_help_panel='Model'),
    generate_only: bool = typer.Option(False, "--generate-only", help="Patch the tree and copy assets; no build/install.", rich_help_panel='What to do'),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan, the diff and the copies; change nothing.", rich_help_panel='What to do'),
    no_install: bool = typer.Option(False, "--no-install", help="Build, but do not install.", rich_help_panel='What to do'),
    no_launch: bool = typer.Option(False, "--no-launch", help="Install, but do not start the app.", rich_help_panel='What to do'),
    device: Optional[str] = typer.Option(None, "--device", "-s", "-d", envvar="ANDROID_SERIAL", help="adb serial of the device (default: the only one connected).", rich_help_panel='Device'),
    cpu: Optional[str] = choice_option(None, "--cpu", choices=ANDROID_CPUS, help="CPU the app is built for (default: the device's, else the profile's).", rich_help_panel='Bazel'),
    compilation_mode: str = choice_option("opt", "-c", "--compilation-mode", choices=("opt", "dbg", "fastbuild"), help="Bazel compilation mode.", rich_help_panel='Bazel'),
    bazel_arg: Optional[List[str]] = typer.Option(None, "--bazel-arg", help="Extra argument for bazel build (repeatable).", rich_help_panel='Bazel'),
    bazel: Optional[str] = typer.Option(None, "--bazel", help="Bazel binary to use.", rich_help_panel='Bazel'),
    remote_cache: Optional[str] = typer.Option(None, "--remote-cache", help="Bazel remote cache URL.", rich_help_panel='Remote cache / execution'),
    remote_executor: Optional[str] = typer.Option(None, "--remote-executor", help="Bazel remote executor URL.", rich_help_panel='Remote cache / execution'),
    remote_header: Optional[List[str]] = typer.Option(None, "--remote-header", help="K=V header for the remote cache/executor (repeatable).", rich_help_panel='Remote cache / execution'),
    ignore_bazel_version: bool = typer.Option(False, "--ignore-bazel-version", help="Use a Bazel outside the profile's range anyway (a warning stays).", rich_help_panel='Bazel'),
    bazel_startup_arg: Optional[List[str]] = typer.Option(None, "--bazel-startup-arg", help="Bazel startup option, e.g. --output_user_root=DIR (repeatable).", rich_help_panel='Bazel'),
    reinstall: bool = typer.Option(False, "--reinstall", help="If the installed app is signed differently, uninstall it first (wipes its data).", rich_help_panel='What to do'),
    logcat: bool = typer.Option(False, "--logcat", help="After launching, follow the app's log until Ctrl-C.", rich_help_panel='What to do'),
) -> None:
    """Set up, build, install and launch the TensorFlow Android demo for a model."""
    from mobilebuild import config
    from mobilebuild.apps import android

    opts = android.AndroidOptions(
        tf_src=_text(tf_src), tf_repo=tf_repo, tf_ref=tf_ref, sdk=_text(sdk), ndk=_text(ndk), api_level=api_level,
        build_tools=build_tools, ndk_api_level=ndk_api_level, model=_text(model), labels=_text(labels),
        input_size=input_size, mean=mean, std=std, input_name=input_name, output_name=output_name,
        optimize=optimize, quantize=quantize, generate_only=generate_only, dry_run=dry_run,
        no_install=no_install, no_launch=no_launch, device=device, cpu=cpu,
        compilation_mode=compilation_mode, bazel_args=list(bazel_arg or []), bazel=bazel,
        remote_cache=remote_cache, remote_executor=remote_executor, remote_headers=list(remote_header or []),
        allow_any_bazel=ignore_bazel_version, bazel_startup_args=list(bazel_startup_arg or []),
        reinstall=reinstall, logcat=logcat, app=app, representative_images=_text(representative_images),
    )
    result = android.run(opts, conf=config.load_config(), show=show, show_patch=show_patch)
    _emit(result)
    failure = android.problems_error(result)
    if failure is not None:
        raise failure


def ios_cmd(
    tf_src: Optional[Path] = typer.Option(None, "--tf-src", help=TREE_HELP),
    tf_repo: Optional[str] = typer.Option(None, "--tf-repo", help=REPO_HELP),
    tf_ref: Optional[str] = typer.Option(None, "--tf-ref", help=REF_HELP),
    model: Optional[Path] = typer.Option(None, "--model", help="Frozen GraphDef or memmapped package; default: the built-in model."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Labels file, one class per line (with --model)."),
    input_size: Optional[int] = typer.Option(None, "--input-size", help="Input width = height (default: from the model)."),
    mean: Optional[float] = typer.Option(None, "--mean", help="Pixel mean."),
    std: Optional[float] = typer.Option(None, "--std", help="Pixel std."),
    input_name: Optional[str] = typer.Option(None, "--input-name", help="Input layer (default: from the model)."),
    output_name: Optional[str] = typer.Option(None, "--output-name", help="Output layer (default: from the model)."),
    optimize: bool = typer.Option(False, "--optimize", help="Run optimize-for-inference on the app's copy."),
    quantize: Optional[str] = choice_option(None, "--quantize", choices=APP_QUANTIZE_MODES, help="Quantize the app's copy: weights_rounded | weights | eightbit (tf-mobile); none | dynamic | int8 | uint8 (tflite)."),
    memmap: bool = typer.Option(False, "--memmap", help="The app's copy optimized, quantized (--quantize, default weights_rounded) and memory-mapped (model_uses_memory_mapping = true)."),
    app: Optional[str] = typer.Option(None, "--app", help="tf-mobile | tflite (default: tflite for a .tflite model or a 2.4+ tree, else tf-mobile)."),
    representative_images: Optional[Path] = typer.Option(None, "--representative-images", help="Folder of typical images: calibrates --quantize uint8/int8 (tflite)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write a patched copy of the camera example here; the tree is not touched."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the diff and the copies; change nothing."),
    build: bool = typer.Option(False, "--build", help="Then build the iOS libraries (macOS only; same as `mobilebuild ios-libs`)."),
    archs: Optional[List[str]] = typer.Option(None, "--archs", help="With --build: archs to build (ARMV7 ARMV7S ARM64 I386 X86_64)."),
) -> None:
    """Set up the TensorFlow iOS camera example for a model (generation works on every OS)."""
    from mobilebuild import config
    from mobilebuild.apps import ios

    opts = ios.IosOptions(
        tf_src=_text(tf_src), tf_repo=tf_repo, tf_ref=tf_ref, model=_text(model), labels=_text(labels), input_size=input_size,
        mean=mean, std=std, input_name=input_name, output_name=output_name, optimize=optimize,
        quantize=quantize, out=_text(out), dry_run=dry_run, build=build, archs=list(archs or []),
        app=app, representative_images=_text(representative_images), memmap=memmap,
    )
    _emit(ios.run(opts, conf=config.load_config(), show_patch=show_patch))


def restore_cmd(
    tf_src: Optional[str] = typer.Option(None, "--tf-src", help="The tree mobilebuild patched."),
    tf_repo: Optional[str] = typer.Option(None, "--tf-repo", help="Or the cached clone of this repository ..."),
    tf_ref: Optional[str] = typer.Option(None, "--tf-ref", help="... at this ref."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be restored or removed."),
    force: bool = typer.Option(False, "--force", help="Restore even files edited by hand since mobilebuild wrote them."),
) -> None:
    """Put a patched tree back exactly as it was before mobilebuild changed it."""
    from mobilebuild import config, console
    from mobilebuild.errors import UserError
    from mobilebuild.tf.patching import Originals, restore_tree, tree_lock
    from mobilebuild.tf.tree import tree_root

    # The same tree the other commands would use, but a clone is never made just to restore.
    root = tree_root(tf_src, tf_repo, tf_ref, conf=config.load_config(), clone=False)[0]
    root = root.resolve()
    looks_like_tf = (root / "WORKSPACE").is_file() or (root / "tensorflow").is_dir()
    if not Originals(root).exists() and not looks_like_tf:
        raise UserError(
            f"{root} is not a TensorFlow tree (no WORKSPACE, no tensorflow/) and mobilebuild never patched it",
            "pass the root of the TensorFlow checkout that `mobilebuild android/ios/workspace` patched",
        )
    if not Originals(root).exists():
        # A TensorFlow tree mobilebuild never patched (or already restored): nothing to do, so a
        # second restore succeeds like the first. Other directories are refused by restore_tree.
        console.success(f"{root} has no changes by mobilebuild: nothing to restore")
        _emit({"root": str(root), "dry_run": dry_run, "restored": [], "removed": [], "unchanged": [], "edited": []})
        return
    with tree_lock(root):
        res = restore_tree(root, dry_run=dry_run, force=force)
    verb = "would " if dry_run else ""
    for rel in res.restored:
        console.info(f"{verb}restore {rel}" + ("  (edited by hand since mobilebuild wrote it)" if rel in res.edited else ""))
    for rel in res.removed:
        console.info(f"{verb}remove {rel}")
    if dry_run and res.edited and not force:
        console.warn(f"{', '.join(res.edited)} changed after mobilebuild wrote {'it' if len(res.edited) == 1 else 'them'}: "
                     "a real restore refuses without --force (it would throw those edits away)")
    if not dry_run:
        console.success(f"{root} is back as it was ({len(res.restored)} restored, {len(res.removed)} removed)")
    _emit({"root": str(root), "dry_run": dry_run, "restored": res.restored, "removed": res.removed, "unchanged": res.unchanged,
           "edited": res.edited})


def register(root: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    root.command("workspace")(workspace_cmd)
    root.command("android")(android_cmd)
    root.command("ios")(ios_cmd)
    root.command("restore")(restore_cmd)
