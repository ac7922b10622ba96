"""`mobilebuild deps`, `setup`, `doctor`: the machine and the makefile dependencies.

Core work lives in mobilebuild/deps.py, setup.py, doctor.py (imported inside the commands so
`mobilebuild --help` stays fast).
"""

from __future__ import annotations

from typing import List, Optional

import typer

from mobilebuild import console
from mobilebuild.choices import DOCTOR_TARGETS
from mobilebuild.cli.options import choice_option
from mobilebuild.errors import ToolchainError

MIRROR_HELP = "Mirror base tried after the original URLs (BASE/host/path layout; URL or directory). Repeatable."


def register(root: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    root.command("deps")(deps_cmd)
    root.command("setup")(setup_cmd)
    root.command("doctor")(doctor_cmd)


def deps_cmd(
    tf_src: Optional[str] = typer.Option(None, "--tf-src", help="TensorFlow source tree (default: tf_src in mobilebuild.toml)."),
    mirror: List[str] = typer.Option([], "--mirror", help=MIRROR_HELP),
    offline: bool = typer.Option(False, "--offline", help="Use only the download cache and local mirrors."),
    jobs: int = typer.Option(4, "--jobs", "-j", min=1, max=16, help="Parallel downloads."),
) -> None:
    """Fill tensorflow/contrib/makefile/downloads/ (as download_dependencies.sh, with checksums)."""
    from mobilebuild import config, console
    from mobilebuild.tf.deps import fetch_deps
    from mobilebuild.tf.tree import resolve

    found = resolve(tf_src=tf_src, conf=config.load_config())
    tree, profile = found.root, found.profile
    console.detail(found.how)
    report = fetch_deps(tree, profile, mirrors=mirror, offline=offline, jobs=jobs)
    if console.settings.json:
        console.emit_json(report.to_dict())
        return
    for d in report.deps:
        console.result(f"{d.name:<11} {d.status:<10} {d.dir}")
    if report.changed:
        console.success(f"dependencies ready in {report.downloads_dir}")
    else:
        console.success(f"all {len(report.deps)} dependencies already up to date; nothing changed")


def setup_cmd(
    tf_ref: Optional[str] = typer.Option(None, "--tf-ref", help="TensorFlow tag to set up for, e.g. v1.4.0."),
    tf_src: Optional[str] = typer.Option(None, "--tf-src", help="TensorFlow tree: its version decides."),
    sdk: Optional[str] = typer.Option(None, "--sdk", help="Android SDK directory to use or fill."),
    ndk: Optional[str] = typer.Option(None, "--ndk", help="Android NDK directory to use."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Run the printed install commands (JDK via apt/dnf/brew)."),
    accept_licenses: bool = typer.Option(False, "--accept-licenses", help="Accept the Android SDK licences (sdkmanager --licenses)."),
    mirror: List[str] = typer.Option([], "--mirror", help=MIRROR_HELP),
    offline: bool = typer.Option(False, "--offline", help="Use only the download cache and local mirrors."),
    pins: Optional[str] = typer.Option(None, "--pins", envvar="MOBILEBUILD_PINS", help="Release pins file replacing toolchains/pins.toml."),
    bazel_sha256: Optional[str] = typer.Option(None, "--bazel-sha256", help="sha256 of the Bazel release when none is pinned."),
    ndk_sha256: Optional[str] = typer.Option(None, "--ndk-sha256", help="sha256 of the NDK archive when none is pinned."),
) -> None:
    """Install what this machine lacks for a TF version (Bazel, SDK, NDK; JDK with --yes) and write mobilebuild.toml.

    A step that cannot be done is reported with its fix; the others still run (exit 1 then).
    """
    from mobilebuild import config, console
    from mobilebuild.apps.setup import run_setup
    from mobilebuild.errors import ToolchainError

    report = run_setup(
        conf=config.load_config(),
        tf_ref=tf_ref, tf_src=tf_src, sdk=sdk, ndk=ndk, yes=yes, accept_licenses=accept_licenses,
        mirrors=mirror, offline=offline, pins_file=pins, bazel_sha256=bazel_sha256, ndk_sha256=ndk_sha256,
    )
    if console.settings.json:
        console.emit_json(report.to_dict())
    else:
        print_checks(report.steps)
        if report.config_written:
            console.info(f"wrote {report.config_path}")
    if report.missing:
        names = ", ".join(s.name for s in report.missing)
        if len(report.missing) == 1:
            fix = report.missing[0].fix
        else:
            where = "the JSON report's steps" if console.settings.json else "the fix line under each missing step above"
            fix = f"see {where}, then rerun mobilebuild setup"
        raise ToolchainError(f"setup incomplete: missing {names}", fix)
    if not report.changed and not console.settings.json:
        console.success(f"everything for TF {report.tf_version} is already present; nothing to do")
    elif not console.settings.json:
        console.success(f"ready for TF {report.tf_version}")


def doctor_cmd(
    target: str = choice_option("android", "--target", choices=DOCTOR_TARGETS, help="What you want to build."),
    tf_ref: Optional[str] = typer.Option(None, "--tf-ref", help="TensorFlow tag to check against (default: mobilebuild.toml)."),
    tf_src: Optional[str] = typer.Option(None, "--tf-src", help="TensorFlow tree to check against."),
    sdk: Optional[str] = typer.Option(None, "--sdk", help="Android SDK directory to check."),
    ndk: Optional[str] = typer.Option(None, "--ndk", help="Android NDK directory to check."),
) -> None:
    """Check this machine: one line per tool with the fix. Exit 0 only when the target's needs are met.

    With --json: one object with every check on stdout.
    """
    from mobilebuild import config, console
    from mobilebuild.apps.doctor import run_doctor

    report = run_doctor(target=target, tf_ref=tf_ref, tf_src=tf_src, sdk=sdk, ndk=ndk, conf=config.load_config())
    if console.settings.json:
        console.emit_json(report.to_dict())
    else:
        print_checks(report.checks)
    if not report.ok:
        missing = [c.name for c in report.checks if c.needed and c.status == "missing"]
        fixes = [c for c in report.checks if c.needed and c.status == "missing" and c.fix]
        raise ToolchainError(
            f"not ready for {target}: missing {', '.join(missing)}",
            fixes[0].fix if len(fixes) == 1 else "run the fix under each MISSING line (or `mobilebuild setup`), then `mobilebuild doctor` again",
        )
    console.success(f"ready for {target}")


# What each status looks like: a mark that reads without colour (`doctor | grep MISSING`) and
# its colour at a terminal.
STATUS_MARKS = {
    "ok": ("✓ ok", "green"),
    "warning": ("! warning", "yellow"),
    "missing": ("✗ MISSING", "red"),
    "skipped": ("- skipped", "dim"),
    "present": ("✓ present", "green"),
    "installed": ("✓ installed", "green"),
}


def status_cell(status: str):
    from rich.text import Text

    mark, style = STATUS_MARKS.get(status, (status, ""))
    return Text(mark, style=style)


def print_checks(checks) -> None:
    """doctor's checks as a table on stdout, the fix under each problem (flutter doctor's layout)."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("STATUS", no_wrap=True)
    table.add_column("CHECK", no_wrap=True, style="bold")
    table.add_column("DETAILS", overflow="fold")
    for c in checks:
        detail = Text(c.detail or "")
        if c.fix and c.status in ("warning", "missing"):
            detail.append(f"\nfix: {c.fix}", style="cyan")
        table.add_row(status_cell(c.status), c.name, detail)
    console.out().print(table)
