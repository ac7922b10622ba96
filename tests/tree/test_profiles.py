"""Version profiles are data: per-version overrides, and a new family added as a file alone."""

from __future__ import annotations

import shutil

import pytest

from mobilebuild.errors import UserError
from mobilebuild.paths import TOOLCHAINS_DIR
from mobilebuild.profiles import load_profile, parse_version


@pytest.mark.parametrize(
    "version,camera,build_tools,ndk,suffix,project",
    [
        ("1.0.0", "tensorflow/contrib/ios_examples/camera", "23.0.1", "r12b", ":0", "camera_example.xcodeproj"),
        ("v1.1.0", "tensorflow/contrib/ios_examples/camera", "25.0.1", "r12b", "", "camera_example.xcodeproj"),
        ("1.2", "tensorflow/contrib/ios_examples/camera", "25.0.2", "r12b", "", "camera_example.xcodeproj"),
        ("1.3.1", "tensorflow/examples/ios/camera", "25.0.2", "r12b", "", "tf_camera_example.xcworkspace"),
        ("v1.4.0-rc1", "tensorflow/examples/ios/camera", "26.0.1", "r14b", "", "tf_camera_example.xcworkspace"),
    ],
)
def test_per_version_facts(version, camera, build_tools, ndk, suffix, project):
    p = load_profile(version)
    assert p.family == "tf-mobile-1.x"
    assert p.get("ios.camera_dir") == camera and p.get("ios.project") == project
    assert p.get("sdk.build_tools") == build_tools and p.get("ndk.recommended") == ndk
    assert (p.get("android.tensor_suffix") or "") == suffix
    # base values survive the deep merge of a version table
    assert p.get("android.activity").endswith("/ClassifierActivity.java") and p.get("ios.controller")
    assert p.get("ios.pod") == ("TensorFlow-experimental" if p.version >= (1, 3, 0) else "")


def test_a_new_family_is_a_new_file_and_nothing_else(tmp_path):
    d = tmp_path / "toolchains"
    d.mkdir()
    shutil.copy(TOOLCHAINS_DIR / "tf-mobile-1.x.toml", d)
    (d / "tflite-2.x.toml").write_text(
        '[family]\nname = "tflite-2.x"\nkind = "tflite"\nmin_version = "2.0"\nmax_version = "3.0"\n'
        '[android]\nactivity = "tensorflow/lite/examples/android/app/src/main/java/Classifier.java"\n'
        '[versions."2.3"]\nandroid = { bazel_target = "//x:y" }\n'
    )
    p = load_profile("2.3.1", directory=d)
    assert p.family == "tflite-2.x" and p.get("android.bazel_target") == "//x:y" and p.get("android.activity")
    assert load_profile("2.1", directory=d).get("android.bazel_target") is None
    assert load_profile("1.4", directory=d).family == "tf-mobile-1.x"
    with pytest.raises(UserError) as info:
        load_profile("3.0", directory=d)
    assert "tf-mobile-1.x" in info.value.hint and "tflite-2.x" in info.value.hint
    with pytest.raises(UserError, match="has no 'ios.controller'"):
        load_profile("2.3", directory=d).require("ios.controller")


def test_parse_version():
    assert parse_version("v1.4.0-rc1") == (1, 4, 0) and parse_version("1.4") == (1, 4, 0)
    with pytest.raises(UserError, match="not a version"):
        parse_version("master")


def test_deep_merge_copies_and_leaves_its_inputs_alone():
    import copy
    import datetime

    from mobilebuild.profiles import deep_merge

    base = {"a": {"b": [1, {"c": 2}], "d": "x"}, "e": [3], "when": datetime.date(2020, 1, 2)}
    override = {"a": {"b": [9], "f": {"g": True}}, "h": [{"i": 1.5}]}
    before = copy.deepcopy((base, override))
    merged = deep_merge(base, override)
    assert merged == {"a": {"b": [9], "d": "x", "f": {"g": True}}, "e": [3], "when": datetime.date(2020, 1, 2), "h": [{"i": 1.5}]}
    assert (base, override) == before
    merged["e"].append(4)
    merged["a"]["f"]["g"] = False
    merged["h"][0]["i"] = 0
    assert (base, override) == before  # nothing shared with the inputs
