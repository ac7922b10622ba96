"""A TF-shaped Bazel workspace that real Bazel builds offline, producing a real signed APK.

Built on top of ``helpers.tftrees.make_tf_tree`` (version.h, the demo's ClassifierActivity.java,
the assets package with TF's own glob BUILD, the iOS example). What changes so a Bazel of today
can build it without network:

- ``WORKSPACE`` keeps the tag's exact commented Android block after the real anchor line, but
  drops the http_archive/rules_closure/tf_workspace lines that would need downloads.
- ``tensorflow/examples/android/BUILD`` defines ``tensorflow_demo`` as a ``genrule`` (no
  rules_java offline) that packages the manifest, resources and every file of the assets
  package with Debian's ``aapt package -I framework-res.apk``, then ``zipalign`` and
  ``apksigner`` with a test keystore: a real, signed, installable-shaped APK at
  ``bazel-bin/tensorflow/examples/android/tensorflow_demo.apk`` (where the profile says).

Bazel test processes: ``bazel_startup(tmp)`` gives a private ``--output_user_root`` and a short
``--max_idle_secs`` so no server outlives the tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from helpers.tftrees import make_ndk, make_sdk, make_tf_tree, workspace_block

FRAMEWORK_RES = "/usr/share/android-framework-res/framework-res.apk"
KEYSTORE = "tensorflow/examples/android/test.keystore"
KEYSTORE_PASS = "mobilebuild-test"
DEMO_TARGET = "//tensorflow/examples/android:tensorflow_demo"
APK = "bazel-bin/tensorflow/examples/android/tensorflow_demo.apk"
ANCHOR = "# Uncomment and update the paths in these entries to build the Android demo."

SYSTEM_BAZEL = "/usr/bin/bazel"
# Bytes standing in for the user's model in the assets dir (what the patch step copies there).
MODEL_BYTES = b"\x0a\x0cmobilebuild-test-graph" + bytes(range(256)) * 8
LABELS = "daisy\ndandelion\nroses\n"

BAZEL2_DEFAULT = "/opt/mbci/node_modules/@bazel/bazel-linux_x64/bazel-2.1.0-linux-x86_64"

_WORKSPACE = '''workspace(name = "org_tensorflow")

# Test workspace shaped like TensorFlow's: the archives of the real WORKSPACE need the network,
# the Android block below is the tag's own.

{anchor}
{block}'''

_DEMO_BUILD = '''# Description:
#   TensorFlow camera demo app for Android (test stand-in: a genrule that packages a real APK
#   with the SDK build-tools, because android_binary needs rules_java tools from the network).

package(default_visibility = ["//visibility:public"])

licenses(["notice"])  # Apache 2.0

exports_files(["LICENSE"])

genrule(
    name = "tensorflow_demo",
    srcs = [
        "AndroidManifest.xml",
        "test.keystore",
        "//tensorflow/examples/android/assets:asset_files",
    ] + glob(["res/**", "src/**/*.java"]),
    outs = ["tensorflow_demo.apk"],
    cmd = """
set -e
T=$$(mktemp -d)
trap 'rm -rf "$$T"' EXIT
mkdir -p "$$T/assets"
for f in $(locations //tensorflow/examples/android/assets:asset_files); do
  rel="$${f#tensorflow/examples/android/assets/}"
  mkdir -p "$$T/assets/$$(dirname "$$rel")"
  cp "$$f" "$$T/assets/$$rel"
done
aapt package -f -M $(location AndroidManifest.xml) -S tensorflow/examples/android/res \\
  -A "$$T/assets" -I FRAMEWORK_RES -F "$$T/unsigned.apk" >/dev/null
zipalign -f 4 "$$T/unsigned.apk" "$$T/aligned.apk"
apksigner sign --ks $(location test.keystore) --ks-pass pass:KEYSTORE_PASS --out "$$T/signed.apk" "$$T/aligned.apk"
cp "$$T/signed.apk" $@
""",
)
'''

_STRINGS = '''<?xml version="1.0" encoding="utf-8"?>
<resources>
    <string name="app_name">TensorFlow Demo</string>
    <string name="activity_name_classification">TF Classify</string>
</resources>
'''

_MANIFEST = '''<?xml version="1.0" encoding="UTF-8"?>
<manifest xmlns:android="http://schemas.android.com/apk/res/android"
    package="org.tensorflow.demo">
    <uses-sdk android:minSdkVersion="21" android:targetSdkVersion="23" />
    <uses-permission android:name="android.permission.CAMERA" />
    <application android:label="@string/app_name">
        <activity android:name="org.tensorflow.demo.ClassifierActivity"
                  android:label="@string/activity_name_classification">
            <intent-filter>
                <action android:name="android.intent.action.MAIN" />
                <category android:name="android.intent.category.LAUNCHER" />
            </intent-filter>
        </activity>
    </application>
</manifest>
'''


def missing_tools() -> list[str]:
    """What this machine lacks to build the test APK (tests skip with this list)."""
    out = [t for t in ("aapt", "zipalign", "apksigner", "keytool") if not shutil.which(t)]
    if not os.path.isfile(FRAMEWORK_RES):
        out.append(FRAMEWORK_RES)
    return out


def make_bazel_workspace(path: str | os.PathLike, version: str = "1.1", *, with_git: bool = False) -> Path:
    """The TF-shaped tree of ``version`` (tftrees) turned into a workspace Bazel builds offline."""
    root = make_tf_tree(
        path,
        version,
        with_git=with_git,
        extra_files={
            "WORKSPACE": _WORKSPACE.format(anchor=ANCHOR, block=workspace_block(version)),
            "tensorflow/examples/android/BUILD": _DEMO_BUILD.replace("FRAMEWORK_RES", FRAMEWORK_RES).replace(
                "KEYSTORE_PASS", KEYSTORE_PASS
            ),
            "tensorflow/examples/android/AndroidManifest.xml": _MANIFEST,
            "tensorflow/examples/android/res/values/strings.xml": _STRINGS,
        },
    )
    make_keystore(root / KEYSTORE)
    return root


def make_sdk_ndk(base: Path) -> tuple[Path, Path]:
    """BASE/sdk and BASE/ndk laid out as Bazel's android_sdk_repository (a platform's
    android.jar) and mobilebuild's SDK/NDK detection expect; the genrule target needs no more."""
    return (
        make_sdk(Path(base) / "sdk", platforms=(23,), build_tools=("25.0.1",), adb=False),
        make_ndk(Path(base) / "ndk"),
    )


def make_keystore(path: Path) -> Path:
    """A PKCS12 keystore with one RSA key (keytool from the JDK), like a debug keystore."""
    if path.exists():
        return path
    subprocess.run(
        [
            "keytool", "-genkeypair", "-keystore", str(path), "-storetype", "PKCS12",
            "-storepass", KEYSTORE_PASS, "-keypass", KEYSTORE_PASS, "-alias", "test",
            "-keyalg", "RSA", "-keysize", "2048", "-validity", "3650",
            "-dname", "CN=mobilebuild test,O=mobilebuild,C=US",
        ],
        check=True,
        capture_output=True,
    )
    return path


def bazel_startup(tmp: str | os.PathLike, name: str = "bazel-root") -> tuple[str, ...]:
    """Startup options giving a test its own output root; the server quits soon after use."""
    return (f"--output_user_root={Path(tmp) / name}", "--max_idle_secs=60")


def bazel2_path() -> str | None:
    """Bazel 2.1.0 (still has the Android repository rules), when this machine has it."""
    p = os.environ.get("MOBILEBUILD_TEST_BAZEL2") or BAZEL2_DEFAULT
    return p if os.path.isfile(p) and os.access(p, os.X_OK) else None


def shutdown(bazel_path: str, startup: tuple[str, ...], cwd: str | os.PathLike) -> None:
    subprocess.run([bazel_path, *startup, "shutdown"], cwd=cwd, capture_output=True, timeout=120)


def fresh_tree_state(root: Path) -> dict[str, tuple[int, int]]:
    """(mtime_ns, size) of every file we could have written, Bazel's convenience symlinks aside."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        if rel == Path("."):
            dirnames[:] = [d for d in dirnames if not d.startswith("bazel-") and d != ".git"]
        for name in filenames:
            p = Path(dirpath) / name
            if rel == Path(".") and name.startswith("bazel-"):
                continue
            st = p.lstat()
            out[str(rel / name)] = (st.st_mtime_ns, st.st_size)
    return out
