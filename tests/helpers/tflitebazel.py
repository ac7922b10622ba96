"""A TFLite-demo-shaped Bazel workspace that real Bazel builds offline into a signed APK.

The tree is ``helpers.tflitetrees``' (the demo's real-shaped BUILD, whose android_binary lists
its models from external repositories until mobilebuild rewrites that list). What changes so a
Bazel of today builds it without network, as in ``helpers.bazelws``:

- ``WORKSPACE`` keeps the tag's commented Android block after the real anchor line, without the
  archives that need downloads.
- The demo's BUILD gets one line on top, ``load("//tools:fake_android.bzl", "android_binary")``:
  a stand-in macro that takes the same attributes as android_binary and packages the manifest,
  resources and every file of ``assets`` with ``aapt package`` (each asset under assets/ by its
  file name, as android_binary with ``assets_dir = ""`` does for files of its own package), then
  ``zipalign`` and ``apksigner``. A label in ``assets`` that needs the network (the stock
  ``@tflite_mobilenet//:...``) fails the build, as it would offline with the real rule.
"""

from __future__ import annotations

import os
from pathlib import Path

from helpers import bazelws
from helpers.tflitetrees import demo_main, make_tflite_tree
from helpers.tftrees import workspace_block

_FAKE_ANDROID = '''"""android_binary stand-in for tests: aapt + zipalign + apksigner in a genrule."""

def android_binary(name, manifest, assets = [], assets_dir = "", resource_files = [], tags = [], **kwargs):
    res = native.package_name() + "/res"
    copies = ["cp $(location %s) \\"$$T/assets/\\"" % a for a in assets]
    native.genrule(
        name = name,
        srcs = assets + resource_files + [manifest, "//tools:test.keystore"],
        outs = [name + ".apk"],
        tags = tags,
        cmd = "\\n".join([
            "set -e",
            "T=$$(mktemp -d)",
            "trap 'rm -rf \\"$$T\\"' EXIT",
            "mkdir -p \\"$$T/assets\\"",
        ] + copies + [
            "aapt package -f -M $(location %s) -S %s -A \\"$$T/assets\\" -I FRAMEWORK_RES -F \\"$$T/unsigned.apk\\" >/dev/null" % (manifest, res),
            "zipalign -f 4 \\"$$T/unsigned.apk\\" \\"$$T/aligned.apk\\"",
            "apksigner sign --ks $(location //tools:test.keystore) --ks-pass pass:KEYSTORE_PASS --out \\"$$T/signed.apk\\" \\"$$T/aligned.apk\\"",
            "cp \\"$$T/signed.apk\\" $@",
        ]),
    )
'''


def make_tflite_workspace(path: str | os.PathLike, version: str = "1.7") -> Path:
    from helpers.tflitetrees import demo_build

    main = demo_main(version)
    root = make_tflite_tree(
        path,
        version,
        with_git=False,
        extra_files={
            "WORKSPACE": bazelws._WORKSPACE.format(anchor=bazelws.ANCHOR, block=workspace_block(version)),
            f"{main}/BUILD": 'load("//tools:fake_android.bzl", "android_binary")\n\n' + demo_build(version),
            "tools/BUILD": 'exports_files(["test.keystore"])\n',
            "tools/fake_android.bzl": _FAKE_ANDROID.replace("FRAMEWORK_RES", bazelws.FRAMEWORK_RES).replace(
                "KEYSTORE_PASS", bazelws.KEYSTORE_PASS
            ),
        },
    )
    bazelws.make_keystore(root / "tools" / "test.keystore")
    return root
