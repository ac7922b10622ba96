"""`mobilebuild ios-libs | pi`: the makefile builds (iOS static libraries, Raspberry Pi).

Core modules are imported inside the commands (nothing heavy at --help time).
"""

from __future__ import annotations

from typing import List, Optional

import typer

TREE_HELP = "TensorFlow checkout to use."
REPO_HELP = "Repository to clone into the cache; needs --tf-ref."
REF_HELP = "Tag/branch/commit to check out from --tf-repo (e.g. v1.4.0)."


def ios_libs_cmd(
    tf_src: Optional[str] = typer.Option(None, "--tf-src", help=TREE_HELP),
    tf_repo: Optional[str] = typer.Option(None, "--tf-repo", help=REPO_HELP),
    tf_ref: Optional[str] = typer.Option(None, "--tf-ref", help=REF_HELP),
    archs: Optional[List[str]] = typer.Option(
        None, "--archs", help="Archs to build (repeatable or comma-separated): ARMV7 ARMV7S ARM64 I386 X86_64. Default: all."
    ),
    jobs: Optional[int] = typer.Option(None, "-j", "--jobs", help="Parallel make jobs (default: CPU count)."),
    optflags: str = typer.Option("-O3", "--optflags", help="OPTFLAGS passed to make (build_all_ios.sh uses -O3)."),
    make: str = typer.Option("make", "--make", help="The make program."),
    lipo: str = typer.Option("lipo", "--lipo", help="The lipo program (e.g. llvm-lipo)."),
    skip_deps: bool = typer.Option(False, "--skip-deps", help="Do not fetch the makefile deps (downloads/ already filled)."),
    offline: bool = typer.Option(False, "--offline", help="Fetch deps from the download cache only."),
    force_host: bool = typer.Option(
        False, "--force-host", envvar="MOBILEBUILD_IOS_FORCE_HOST", help="Run on a non-macOS host anyway (testing)."
    ),
) -> None:
    """Build libtensorflow-core.a for iOS (build_all_ios.sh's makefile flow), resumable per arch."""
    from mobilebuild import config, console
    from mobilebuild.apps.ios_libs import build_libraries, check_host
    from mobilebuild.tf.tree import resolve

    check_host(force_host)  # before touching (or cloning) any tree
    tree = resolve(tf_src=tf_src, tf_repo=tf_repo, tf_ref=tf_ref, conf=config.load_config()).tree
    result = build_libraries(
        tree.root,
        tree.profile,
        archs=archs,
        make=make,
        lipo=lipo,
        jobs=jobs,
        optflags=optflags,
        force_host=force_host,
        fetch_deps=not skip_deps,
        offline=offline,
    )
    built = [a.arch for a in result.archs if a.status == "built"]
    console.success(
        f"{result.library} ({', '.join(a.arch for a in result.archs)}; "
        + (f"built {', '.join(built)}" if built else "nothing to rebuild")
        + ")"
    )
    if console.settings.json:
        console.emit_json(result.as_json())


def pi_cmd(
    tf_src: Optional[str] = typer.Option(None, "--tf-src", help="TensorFlow checkout on this machine (local builds)."),
    tf_version: Optional[str] = typer.Option(
        None, "--tf-version", help="TF version of the tree (default: its version.h, read over ssh for --host)."
    ),
    pi_model: str = typer.Option("3", "--pi-model", help="1 | zero (ARMv6, -Os) or 2 | 3 (NEON flag set)."),
    host: Optional[str] = typer.Option(None, "--host", help="Build on this Pi over ssh: user@host."),
    port: Optional[int] = typer.Option(None, "--port", help="ssh port of the Pi."),
    identity: Optional[str] = typer.Option(None, "-i", "--identity", help="ssh private key for the Pi."),
    ssh_option: Optional[List[str]] = typer.Option(None, "--ssh-option", help="Extra ssh -o option (repeatable)."),
    remote_dir: str = typer.Option(
        "tensorflow", "--remote-dir", help="The TensorFlow checkout on the Pi (relative to the user's home)."
    ),
    local: bool = typer.Option(False, "--local", help="Build on this machine even if it is not a Pi."),
    model: Optional[str] = typer.Option(None, "--model", help="Model (.pb) copied into the Pi examples' data dir."),
    labels: Optional[str] = typer.Option(None, "--labels", help="Labels file copied next to the model."),
    cxx: Optional[str] = typer.Option(None, "--cxx", help="C++ compiler (default: the profile's, g++-4.8 as in TF's docs)."),
    jobs: Optional[int] = typer.Option(None, "-j", "--jobs", help="Parallel make jobs (default: none; a Pi has little RAM)."),
    install_packages: bool = typer.Option(
        False, "--install-packages", help="sudo apt-get install autoconf automake libtool first."
    ),
    skip_deps: bool = typer.Option(False, "--skip-deps", help="Skip download_dependencies.sh."),
    skip_protobuf: bool = typer.Option(False, "--skip-protobuf", help="Skip building/installing protobuf."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print every command, run nothing."),
) -> None:
    """Build TensorFlow's makefile target for the Raspberry Pi, here or on a Pi over ssh."""
    from pathlib import Path

    from mobilebuild import config, console
    from mobilebuild.apps.pi import PiOptions, run

    opts = PiOptions(
        tf_src=tf_src,
        tf_version=tf_version,
        pi_model=pi_model,
        host=host,
        port=port,
        identity=identity,
        ssh_options=list(ssh_option or []),
        remote_dir=remote_dir,
        local=local,
        model=Path(model) if model else None,
        labels=Path(labels) if labels else None,
        cxx=cxx,
        jobs=jobs,
        install_packages=install_packages,
        deps=not skip_deps,
        protobuf=not skip_protobuf,
        dry_run=dry_run,
    )
    opts.resolve(config.load_config())
    result = run(opts)
    if not dry_run:
        console.success(f"Raspberry Pi build done ({result['mode']}, {result['optflags']}); log {result['log']}")
    if console.settings.json:
        console.emit_json(result)


def register(root: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    root.command("ios-libs")(ios_libs_cmd)
    root.command("pi")(pi_cmd)
