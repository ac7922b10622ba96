"""`mobilebuild android --app tflite --no-install` on a TFLite-demo-shaped workspace built by the
real Bazel 2.1.0: the demo's BUILD, rewritten from a template to take our files, packs exactly
our model and labels into the APK's assets (read back with `aapt list`); a re-run rewrites
nothing and Bazel does a no-op."""

from __future__ import annotations

import json
import subprocess
import zipfile

import pytest

from helpers import bazelws
from helpers import tflite_models as TM
from helpers.bazelws import fresh_tree_state
from helpers.tflitebazel import make_tflite_workspace
from helpers.tflitetrees import demo_main

pytestmark = pytest.mark.slow

VERSION = "1.7"


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    b2 = bazelws.bazel2_path()
    if not b2:
        pytest.skip("Bazel 2.1.0 binary not present (MOBILEBUILD_TEST_BAZEL2)")
    if bazelws.missing_tools():
        pytest.skip("missing for the test APK: " + ", ".join(bazelws.missing_tools()))
    base = tmp_path_factory.mktemp("tflbuild")
    ws = make_tflite_workspace(base / "tensorflow", VERSION)
    sdk, ndk = bazelws.make_sdk_ndk(base)
    startup = bazelws.bazel_startup(base)
    yield {"b2": b2, "ws": ws, "sdk": sdk, "ndk": ndk, "startup": startup,
           "model": TM.build_classifier_graph(base, "avg", name="flowers.pb"),
           "labels": TM.write_labels(base / "flowers_labels.txt"), "images": TM.write_images(base / "images")}
    bazelws.shutdown(b2, startup, ws)


def test_tflite_demo_apk_carries_our_model_and_labels(cli, rig):
    f = rig
    args = [
        "android", "--app", "tflite", "--tf-src", f["ws"], "--sdk", f["sdk"], "--ndk", f["ndk"],
        "--model", f["model"], "--labels", f["labels"], "--quantize", "uint8", "--representative-images", f["images"],
        "--no-install", "--bazel", f["b2"], "--ignore-bazel-version",
        *[f"--bazel-startup-arg={s}" for s in f["startup"]], "--json",
    ]
    r = cli(*args)
    assert r.code == 0, r.stderr
    res = json.loads(r.stdout)
    apk = f["ws"] / "bazel-bin" / demo_main(VERSION) / "TfLiteCameraDemo.apk"
    assert res["apk"] == str(apk) and res["classifier"] == "ImageClassifierQuantizedMobileNet"
    listed = subprocess.run(["aapt", "list", str(apk)], capture_output=True, text=True, check=True).stdout.split()
    assert "assets/flowers.tflite" in listed and "assets/flowers_labels.txt" in listed
    assert not any(n.startswith("assets/") and n not in ("assets/flowers.tflite", "assets/flowers_labels.txt") for n in listed)
    main = f["ws"] / demo_main(VERSION)
    with zipfile.ZipFile(apk) as z:
        assert z.read("assets/flowers.tflite") == (main / "flowers.tflite").read_bytes()
        assert z.read("assets/flowers_labels.txt") == f["labels"].read_bytes()
    state = fresh_tree_state(f["ws"])
    r2 = cli(*args)
    assert r2.code == 0, r2.stderr
    assert json.loads(r2.stdout)["build"]["no_op"] is True
    assert fresh_tree_state(f["ws"]) == state
