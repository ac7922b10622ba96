"""From TF 1.10 the tree declares its Android repositories in android_configure(), a repository
rule reading five environment values that ./configure passes as --action_env. The real Bazel
2.1.0 builds a 1.15-shaped workspace whose android_configure stand-in records what it was given
into the APK: the values mobilebuild wrote into mobilebuild.bazelrc (passed with --bazelrc)
reach the tree's own rule, and WORKSPACE is never touched."""

from __future__ import annotations

import json
import zipfile

import pytest

from helpers import bazelws
from helpers.bazelws import fresh_tree_state
from helpers.tftrees import make_tf_tree, tree_digest

pytestmark = pytest.mark.slow

_WORKSPACE = '''workspace(name = "org_tensorflow")

# Test workspace shaped like TensorFlow 1.15's: the Android rules come from android_configure.

load("//third_party/android:android_configure.bzl", "android_configure")
android_configure(name="local_config_android")
load("@local_config_android//:android.bzl", "android_workspace")
android_workspace()
'''

# Reads the same five variables as the real rule; instead of declaring android_sdk_repository
# (which would need a full SDK) it writes what it saw into a file the demo packs.
_CONFIGURE = '''_VARS = [
    "ANDROID_NDK_HOME",
    "ANDROID_NDK_API_LEVEL",
    "ANDROID_BUILD_TOOLS_VERSION",
    "ANDROID_SDK_API_LEVEL",
    "ANDROID_SDK_HOME",
]

def _impl(repository_ctx):
    lines = ["%s=%s" % (v, repository_ctx.os.environ.get(v, "")) for v in _VARS]
    repository_ctx.file("env.txt", "\\n".join(lines) + "\\n")
    repository_ctx.file("BUILD", 'exports_files(["env.txt"])\\n')
    repository_ctx.file("android.bzl", "def android_workspace():\\n    pass\\n")

android_configure = repository_rule(implementation = _impl, environ = _VARS)
'''


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    b2 = bazelws.bazel2_path()
    if not b2:
        pytest.skip("Bazel 2.1.0 binary not present (MOBILEBUILD_TEST_BAZEL2)")
    if bazelws.missing_tools():
        pytest.skip("missing for the test APK: " + ", ".join(bazelws.missing_tools()))
    base = tmp_path_factory.mktemp("actionenv")
    demo = bazelws._DEMO_BUILD.replace("FRAMEWORK_RES", bazelws.FRAMEWORK_RES).replace("KEYSTORE_PASS", bazelws.KEYSTORE_PASS)
    demo = demo.replace('        "test.keystore",\n', '        "test.keystore",\n        "@local_config_android//:env.txt",\n')
    demo = demo.replace('zipalign -f 4', 'cp $(location @local_config_android//:env.txt) "$$T/android_env.txt"\n'
                        '(cd "$$T" && aapt add unsigned.apk android_env.txt >/dev/null)\nzipalign -f 4')
    root = make_tf_tree(base / "tensorflow", "1.15", with_git=False, extra_files={
        "WORKSPACE": _WORKSPACE,
        "third_party/android/android_configure.bzl": _CONFIGURE,
        "tensorflow/examples/android/BUILD": demo,
        "tensorflow/examples/android/AndroidManifest.xml": bazelws._MANIFEST,
        "tensorflow/examples/android/res/values/strings.xml": bazelws._STRINGS,
    })
    bazelws.make_keystore(root / bazelws.KEYSTORE)
    sdk, ndk = bazelws.make_sdk_ndk(base)
    startup = bazelws.bazel_startup(base)
    yield {"b2": b2, "root": root, "sdk": sdk, "ndk": ndk, "startup": startup}
    bazelws.shutdown(b2, startup, root)


def test_the_trees_android_configure_gets_our_values(cli, ws):
    root = ws["root"]
    workspace = (root / "WORKSPACE").read_bytes()
    before = tree_digest(root)
    args = ["--json", "android", "--tf-src", root, "--sdk", ws["sdk"], "--ndk", ws["ndk"], "--no-install",
            "--bazel", ws["b2"], "--ignore-bazel-version", *[f"--bazel-startup-arg={s}" for s in ws["startup"]]]
    r = cli(*args)
    assert r.code == 0, r.stderr
    res = json.loads(r.stdout)
    assert any(a.startswith("--bazelrc=") and a.endswith("mobilebuild.bazelrc") for a in res["build"]["argv"])
    with zipfile.ZipFile(root / bazelws.APK) as z:
        seen = dict(line.split("=", 1) for line in z.read("android_env.txt").decode().splitlines())
    assert seen == {
        "ANDROID_NDK_HOME": str(ws["ndk"]),
        "ANDROID_NDK_API_LEVEL": "21",
        "ANDROID_BUILD_TOOLS_VERSION": "25.0.1",
        "ANDROID_SDK_API_LEVEL": "23",
        "ANDROID_SDK_HOME": str(ws["sdk"]),
    }
    assert (root / "WORKSPACE").read_bytes() == workspace

    state = fresh_tree_state(root)
    r2 = cli(*args)
    assert r2.code == 0, r2.stderr
    assert json.loads(r2.stdout)["build"]["no_op"] is True
    assert fresh_tree_state(root) == state

    assert cli("restore", "--tf-src", root).code == 0
    after = {k: v for k, v in tree_digest(root).items() if not k.startswith("bazel-")}
    assert after == {k: v for k, v in before.items() if not k.startswith("bazel-")}
