"""Builders for setup/doctor tests: SDK and NDK layouts, stand-in executables, a release server.

Stand-ins exist only where the real program cannot run here (Google's sdkmanager, bazelisk,
the Bazel 0.5 installer). Each is a small executable placed on PATH (or inside the served
archive) that records its arguments and creates the files the real one creates.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from helpers.archive_builders import make_zip, sha1, sha256

SDKMANAGER = """#!{python}
# Stand-in for Google's sdkmanager (which cannot run here: it downloads from Google).
# Records its argv as a JSON line in $SDKMANAGER_LOG and writes what the real one writes:
# licences into SDK/licenses/android-sdk-license, packages into their SDK directories.
import json, os, sys
args = sys.argv[1:]
with open(os.environ["SDKMANAGER_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
root = next((a.split("=", 1)[1] for a in args if a.startswith("--sdk_root=")), None)
if root is None:
    print("Error: could not determine SDK root.", file=sys.stderr); sys.exit(1)
lic_dir = os.path.join(root, "licenses")
lic = os.path.join(lic_dir, "android-sdk-license")
if "--licenses" in args:
    answer = sys.stdin.readline().strip().lower()
    if answer != "y":
        print("Licenses not accepted"); sys.exit(1)
    os.makedirs(lic_dir, exist_ok=True)
    with open(lic, "w") as f:
        f.write("\\n24333f8a63b6825ea9c5514f83c2829b004d1fee")
    print("All SDK package licenses accepted"); sys.exit(0)
if not os.path.exists(lic):
    print("Failed to install the following packages: license not accepted", file=sys.stderr); sys.exit(1)
for pkg in [a for a in args if not a.startswith("--")]:
    kind, _, ver = pkg.partition(";")
    if kind == "platforms":
        d = os.path.join(root, "platforms", ver); files = ["android.jar"]
    elif kind == "build-tools":
        d = os.path.join(root, "build-tools", ver); files = ["aapt", "zipalign", "apksigner"]
    elif kind == "platform-tools":
        d = os.path.join(root, "platform-tools"); files = ["adb"]
    else:
        print("Failed to find package " + pkg, file=sys.stderr); sys.exit(1)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "source.properties"), "w") as f:
        f.write("Pkg.Revision=" + (ver.split("-")[-1] or "1") + "\\n")
    for name in files:
        p = os.path.join(d, name)
        with open(p, "w") as f:
            f.write("#!/bin/sh\\n")
        os.chmod(p, 0o755)
    print("Installed " + pkg)
"""

BAZEL_INSTALLER = """#!/bin/bash
# Stand-in for bazel-{version}-installer-linux-x86_64.sh: same interface (--prefix=DIR),
# installs DIR/bin/bazel.
set -e
for a in "$@"; do case "$a" in --prefix=*) P="${{a#--prefix=}}";; esac; done
[ -n "$P" ] || {{ echo "usage: $0 --prefix=DIR"; exit 1; }}
mkdir -p "$P/bin" "$P/lib/bazel/bin"
printf '#!/bin/sh\\necho "Build label: {version}"\\n' > "$P/lib/bazel/bin/bazel-real"
chmod +x "$P/lib/bazel/bin/bazel-real"
ln -s ../lib/bazel/bin/bazel-real "$P/bin/bazel"
echo "Bazel is now installed!"
"""


def write_exe(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def sdkmanager_script() -> str:
    return SDKMANAGER.format(python=sys.executable)


def make_sdk(root: Path, api: int = 23, build_tools: str = "26.0.1", *, licenses: bool = True, adb: str | None = "/usr/bin/adb") -> Path:
    """The layout sdkmanager leaves: platforms/android-N/android.jar, build-tools/X/aapt,
    platform-tools/adb (a link to the real adb, so doctor talks to a real server)."""
    (root / "platforms" / f"android-{api}").mkdir(parents=True)
    (root / "platforms" / f"android-{api}" / "android.jar").write_bytes(b"PK\x05\x06" + b"\0" * 18)
    if build_tools:
        write_exe(root / "build-tools" / build_tools / "aapt", "#!/bin/sh\n")
    (root / "platform-tools").mkdir(parents=True)
    if adb:
        os.symlink(adb, root / "platform-tools" / "adb")
    if licenses:
        (root / "licenses").mkdir()
        (root / "licenses" / "android-sdk-license").write_text("\n24333f8a63b6825ea9c5514f83c2829b004d1fee")
    return root


def make_ndk(root: Path, pkg_revision: str = "14.1.3816874") -> Path:
    root.mkdir(parents=True)
    (root / "source.properties").write_text(f"Pkg.Desc = Android NDK\nPkg.Revision = {pkg_revision}\n")
    write_exe(root / "ndk-build", "#!/bin/sh\n")
    return root


def ndk_zip(rev: str = "r14b", pkg_revision: str = "14.1.3816874") -> bytes:
    top = f"android-ndk-{rev}"
    return make_zip(
        {f"{top}/source.properties": f"Pkg.Desc = Android NDK\nPkg.Revision = {pkg_revision}\n", f"{top}/ndk-build": "#!/bin/sh\n", f"{top}/build/core/init.mk": "#\n"},
        modes={f"{top}/ndk-build": 0o755},
    )


def cmdline_tools_zip() -> bytes:
    return make_zip(
        {"cmdline-tools/bin/sdkmanager": sdkmanager_script(), "cmdline-tools/source.properties": "Pkg.Revision=9.0\n"},
        modes={"cmdline-tools/bin/sdkmanager": 0o755},
    )


def write_pins(path: Path, server, *, bazel_version: str = "0.5.4", bazel_digest: bool = True) -> dict:
    """A pins file in the shipped format whose URLs are on the local release server."""
    installer = BAZEL_INSTALLER.format(version=bazel_version).encode()
    ndk = ndk_zip()
    tools = cmdline_tools_zip()
    b_url = server.add(f"/releases/bazel/{bazel_version}/bazel-{bazel_version}-installer-linux-x86_64.sh", installer)
    n_url = server.add("/android/repository/android-ndk-r14b-linux-x86_64.zip", ndk)
    t_url = server.add("/android/repository/commandlinetools-linux-9477386_latest.zip", tools)
    digest = f'sha256 = "{sha256(installer)}"\n' if bazel_digest else ""
    path.write_text(
        f"""[[bazel]]
version = "{bazel_version}"
os = "linux"
arch = "x86_64"
kind = "installer"
url = "{b_url}"
{digest}
[[ndk]]
revision = "r14b"
pkg_revision = "14.1.3816874"
os = "linux"
url = "{n_url}"
sha1 = "{sha1(ndk)}"
size = {len(ndk)}

[[sdk_tools]]
file = "commandlinetools-linux-9477386_latest.zip"
os = "linux"
url = "{t_url}"
sha256 = "{sha256(tools)}"
layout = "cmdline-tools/latest"
min_java = 8
"""
    )
    return {"installer": installer, "ndk": ndk, "tools": tools}


def read_log(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
