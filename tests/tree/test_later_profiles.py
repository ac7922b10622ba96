"""Version profiles of TensorFlow 1.5 - 2.5 (data in toolchains/): the facts of each era, and the
pins `setup --tf-ref` installs from."""

from __future__ import annotations

import pytest

from mobilebuild.apps.setup import load_pins
from mobilebuild.profiles import load_profile


@pytest.mark.parametrize(
    "ref,family,bazel,ndk,ndk_range,mechanism",
    [
        ("v1.5.0", "tf-mobile-1.5", ("0.5.4", None, "0.5.4"), "r14b", (10, 15), None),
        ("v1.7.0", "tf-mobile-1.5", ("0.10.0", None, "0.11.0"), "r14b", (10, 15), None),
        ("v1.9.0", "tf-mobile-1.5", ("0.10.0", None, "0.10.0"), "r14b", (10, 15), None),
        ("v1.10.0", "tf-mobile-1.10", ("0.15.0", None, "0.15.0"), "r14b", (10, 15), "action_env"),
        ("v1.11.0", "tf-mobile-1.10", ("0.15.0", None, "0.15.0"), "r14b", (10, 16), "action_env"),
        ("v1.13.1", "tf-mobile-1.13", ("0.19.0", "0.21.0", "0.21.0"), "r17c", (10, 18), "action_env"),
        ("v1.14.0", "tf-mobile-1.14", ("0.24.1", "0.25.2", "0.24.1"), "r17c", (10, 18), "action_env"),
        ("v1.15.0", "tf-mobile-1.15", ("0.24.1", "0.26.1", "0.26.1"), "r17c", (10, 18), "action_env"),
        ("v2.0.0", "tf-mobile-1.15", ("0.24.1", "0.26.1", "0.26.1"), "r17c", (10, 18), "action_env"),
        ("v2.1.0", "tf-mobile-2.1", ("0.27.1", "0.29.1", "0.29.1"), "r17c", (10, 18), "action_env"),
        ("v2.2.0", "tf-mobile-2.2", ("2.0.0", "2.0.0", "2.0.0"), "r17c", (10, 18), "action_env"),
        ("v2.3.0", "tf-mobile-2.3", ("3.1.0", "3.99.0", "3.1.0"), "r17c", (10, 18), "action_env"),
    ],
)
def test_each_era(ref, family, bazel, ndk, ndk_range, mechanism):
    p = load_profile(ref)
    assert p.family == family
    assert (p.get("bazel.min"), p.get("bazel.max") or None, p.get("bazel.recommended")) == bazel
    assert p.get("ndk.recommended") == ndk and (p.get("ndk.min_major"), p.get("ndk.max_major")) == ndk_range
    assert p.get("workspace.mechanism") == mechanism
    # the demo is the 1.4 demo, inherited from the base family
    assert p.get("android.bazel_target") == "//tensorflow/examples/android:tensorflow_demo"
    assert p.get("ios.camera_dir") == "tensorflow/examples/ios/camera" and p.get("ios.pod") == "TensorFlow-experimental"
    lib = p.get("android.inference_library")
    assert lib.startswith("//tensorflow/tools/android/" if p.version >= (2, 1, 0) else "//tensorflow/contrib/android:")
    # op sets: the Android library's per tag; the makefile build's up to 2.0 only
    tag = "v1.13.1" if ref.startswith("v1.13") else ref
    assert p.runtime_ops_name("android") == f"tf-mobile-ops/android/{tag}"
    assert p.runtime_ops_name("makefile") == (f"tf-mobile-ops/makefile/{tag}" if p.version < (2, 1, 0) else None)
    assert bool(p.get("makefile.removed_in")) == (p.version >= (2, 1, 0))
    if mechanism:
        assert sorted(p.get("workspace.action_env")) == sorted(
            ["ANDROID_SDK_HOME", "ANDROID_SDK_API_LEVEL", "ANDROID_BUILD_TOOLS_VERSION", "ANDROID_NDK_HOME", "ANDROID_NDK_API_LEVEL"])


def test_every_named_op_set_is_shipped():
    from mobilebuild.paths import TOOLCHAINS_DIR

    for ref in ["1.0", "1.4", "1.5", "1.9", "1.10", "1.12", "1.13.1", "1.14", "1.15", "2.0", "2.1", "2.2", "2.3"]:
        p = load_profile(ref)
        for runtime in ("android", "makefile"):
            name = p.runtime_ops_name(runtime)
            if name:
                assert (TOOLCHAINS_DIR / f"{name}.opdefs.json").is_file(), name


def test_removed_from_2_4():
    for ref in ("v2.4.0", "v2.5.0"):
        p = load_profile(ref)
        assert p.get("removed.since") == "2.4" and "--app tflite" in p.get("removed.hint")
        assert p.runtime_ops_name("android") is None
    assert load_profile("v2.5.0").get("bazel.recommended") == "3.7.2"
    assert load_profile("v2.3.0").get("removed") is None


@pytest.mark.parametrize("ref", ["v1.15.0", "v2.0.0", "v1.14.0", "v2.3.0", "v2.2.0"])
def test_setup_finds_a_verified_pin_for_the_era(ref):
    """`setup --tf-ref v1.15.0` installs the Bazel and NDK of the era from pins with digests."""
    p = load_profile(ref)
    pins = load_pins()
    bazel = [b for b in pins["bazel"] if b["version"] == p.get("bazel.recommended") and b["os"] == "linux"]
    ndk = [n for n in pins["ndk"] if n["revision"] == p.get("ndk.recommended") and n["os"] == "linux"]
    assert bazel and bazel[0].get("sha256"), ref
    assert ndk and (ndk[0].get("sha256") or ndk[0].get("sha1")), ref


def test_eras_without_published_digest_still_name_the_file():
    pins = load_pins()
    for ref in ("v1.10.0", "v1.13.1", "v2.1.0"):
        want = load_profile(ref).get("bazel.recommended")
        (pin,) = [b for b in pins["bazel"] if b["version"] == want and b["os"] == "linux"]
        assert pin["url"].endswith(f"bazel-{want}-installer-linux-x86_64.sh") and not pin.get("sha256")
