"""`mobilebuild devices`: the Android devices adb sees; `devices install|launch|logcat` act on one.

The same device choice and install/launch errors as `mobilebuild android` (mobilebuild/adb.py),
usable on their own, e.g. to install an APK built earlier.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

devices_app = typer.Typer(
    name="devices",
    help="List the Android devices adb sees (state, model, ABI); install, launch, follow logcat.",
    invoke_without_command=True,
)

SDK_OPTION = typer.Option(None, "--sdk", help="Android SDK whose platform-tools/adb to use (default: ANDROID_HOME, then PATH).")
DEVICE_OPTION = typer.Option(None, "--device", "-s", "-d", envvar="ANDROID_SERIAL", help="Serial of the device to use (default: the only device).")


def register(root: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    root.add_typer(devices_app, name="devices")


@devices_app.callback()
def list_command(ctx: typer.Context, sdk: Optional[Path] = SDK_OPTION) -> None:
    """List devices with state, model, CPU ABI and Android version."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = {"sdk": sdk}  # `devices --sdk X install ...` means the same as `install --sdk X`
        return
    from mobilebuild import console
    from mobilebuild.toolchain import adb

    adb_path = adb.find_adb(sdk, strict=sdk is not None)
    rows = []
    for device in adb.list_devices(adb_path):
        row = device.to_json()
        row.update({"abi": None, "abilist": [], "sdk": None, "release": None, "ready": device.ready, "problem": None})
        if device.ready:
            row.update(adb.device_info(adb_path, device.serial))
        else:
            error = adb.state_error(device)
            row["problem"] = {"message": error.message, "hint": error.hint}
        rows.append(row)

    if console.settings.json:
        console.emit_json({"adb": adb_path, "devices": rows})
        return
    if not rows:
        console.result("no devices attached")
        console.info(f"  hint: {adb.CONNECT_HINT}")
        return
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in ("SERIAL", "STATE", "MODEL", "ABI", "ANDROID"):
        table.add_column(column, no_wrap=column != "MODEL")
    for row in rows:
        android = f"{row['release']} (API {row['sdk']})" if row["sdk"] else "-"
        model = (row["model"] or "-").replace("_", " ")
        state = Text(row["state"], style="green" if row["ready"] else "yellow")
        table.add_row(row["serial"], state, model, row["abi"] or "-", android)
    console.out().print(table)
    for row in rows:
        if row["problem"]:
            console.warn(f"{row['serial']}: {row['problem']['message']}")
            console.info(f"  hint: {row['problem']['hint']}")


def _choose(ctx: typer.Context, sdk: Optional[Path], device: Optional[str]):
    from mobilebuild.toolchain import adb

    named = sdk or (ctx.obj or {}).get("sdk")
    adb_path = adb.find_adb(named, strict=named is not None)
    chosen = adb.select_device(adb.list_devices(adb_path), device)
    return adb_path, chosen


@devices_app.command("install")
def install_command(
    ctx: typer.Context,
    apk: Path = typer.Argument(..., help="The APK to install."),
    device: Optional[str] = DEVICE_OPTION,
    sdk: Optional[Path] = SDK_OPTION,
    reinstall: bool = typer.Option(
        False, "--reinstall", help="If the installed app is signed differently or newer, uninstall it first (wipes its data)."
    ),
    grant: bool = typer.Option(True, "--grant/--no-grant", help="Grant the app's runtime permissions (camera) at install."),
    package: Optional[str] = typer.Option(None, "--package", help="The APK's package name (for --reinstall; default: from adb's message)."),
) -> None:
    """Install an APK (`adb install -r -g`) with failures explained."""
    from mobilebuild import console
    from mobilebuild.toolchain import adb

    adb_path, chosen = _choose(ctx, sdk, device)
    result = adb.install(adb_path, chosen.serial, apk, reinstall=reinstall, grant=grant, package=package)
    if console.settings.json:
        console.emit_json(result.to_json())
    else:
        console.success(f"installed {apk.name} on {chosen.describe()}" + (" (after uninstalling the old one)" if result.reinstalled else ""))


@devices_app.command("launch")
def launch_command(
    ctx: typer.Context,
    component: Optional[str] = typer.Argument(None, help="PACKAGE/ACTIVITY (default: the TF demo's ClassifierActivity)."),
    device: Optional[str] = DEVICE_OPTION,
    sdk: Optional[Path] = SDK_OPTION,
) -> None:
    """Start an activity (`am start -n`) and report am's errors."""
    from mobilebuild import console
    from mobilebuild.toolchain import adb

    component = component or _default_component()
    adb_path, chosen = _choose(ctx, sdk, device)
    result = adb.launch(adb_path, chosen.serial, component)
    if console.settings.json:
        console.emit_json(result.to_json())
        return
    console.success(f"started {component} on {chosen.describe()}")
    if result.warning:
        console.warn(result.warning)


@devices_app.command("logcat")
def logcat_command(
    ctx: typer.Context,
    package: Optional[str] = typer.Argument(None, help="The app whose log to follow (default: the TF demo's package)."),
    device: Optional[str] = DEVICE_OPTION,
    sdk: Optional[Path] = SDK_OPTION,
) -> None:
    """Follow the app's log until Ctrl-C."""
    import sys

    from mobilebuild import console
    from mobilebuild.toolchain import adb

    package = package or _default_package()
    adb_path, chosen = _choose(ctx, sdk, device)
    console.info(f"following {package} on {chosen.describe()} (Ctrl-C to stop)")

    def _print(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    adb.logcat(adb_path, chosen.serial, package, _print)


def _profile():
    """The project's profile (mobilebuild.toml's tree or version, one resolver), else the one
    toolchains/defaults.toml names for commands run outside a project."""
    from mobilebuild import config
    from mobilebuild.errors import UserError
    from mobilebuild.profiles import load_defaults, load_profile
    from mobilebuild.tf.tree import resolve

    try:
        return resolve(conf=config.load_config(), need_tree=False).profile
    except UserError:
        return load_profile(load_defaults()["devices_profile_version"])


def _default_package() -> str:
    return _profile().require("android.package")


def _default_component() -> str:
    from mobilebuild.toolchain import adb

    profile = _profile()
    return adb.component(profile.require("android.package"), profile.require("android.launcher_activity"))
