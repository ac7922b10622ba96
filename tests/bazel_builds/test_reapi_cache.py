"""`mobilebuild android --remote-cache grpc://...` against a real REAPI server (BuildGrid's
`bgd`): the first build fills the server's action cache and CAS; a clean rebuild in a fresh
output base (a teammate's machine, or CI) takes every cacheable action from it, and `--json`
reports the build's remote cache hit ratio."""

from __future__ import annotations

import json

import pytest

from helpers import bazelws

pytestmark = pytest.mark.slow

_DERIVED_ASSETS_BUILD = '''package(default_visibility = ["//visibility:public"])

genrule(name = "model_digest", srcs = glob(["*.pb"]), outs = ["derived/model_digest.txt"], cmd = "sha256sum $(SRCS) > $@")
genrule(name = "labels_count", srcs = glob(["*.txt"]), outs = ["derived/labels_count.txt"], cmd = "cat $(SRCS) | wc -l > $@")
genrule(name = "manifest", srcs = [":model_digest", ":labels_count"], outs = ["derived/manifest.txt"], cmd = "cat $(SRCS) > $@")

filegroup(
    name = "asset_files",
    srcs = glob(["**/*"], exclude = ["BUILD"]) + [":manifest"],
)
'''


@pytest.fixture(scope="module")
def reapi_rig(tmp_path_factory, buildgrid_cache):
    b2 = bazelws.bazel2_path()
    if not b2:
        pytest.skip("Bazel 2.1.0 binary not present (MOBILEBUILD_TEST_BAZEL2)")
    if bazelws.missing_tools():
        pytest.skip("missing for the test APK: " + ", ".join(bazelws.missing_tools()))
    import tensorflow as tf

    base = tmp_path_factory.mktemp("reapi")
    ws = bazelws.make_bazel_workspace(base / "tensorflow", "1.1")
    # Derived assets: a chain of genrules before the APK, so the cache serves several actions.
    (ws / "tensorflow/examples/android/assets/BUILD").write_text(_DERIVED_ASSETS_BUILD)
    sdk, ndk = bazelws.make_sdk_ndk(base)
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [1, 224, 224, 3], name="input")
        w = tf.constant(0.02, shape=[224 * 224 * 3, 4])
        tf.nn.softmax(tf.matmul(tf.reshape(x, [1, -1]), w), name="output")
    model = base / "retrained_graph.pb"
    model.write_bytes(g.as_graph_def().SerializeToString())
    labels = base / "retrained_labels.txt"
    labels.write_text("daisy\nroses\ntulips\nsunflowers\n")
    server = buildgrid_cache
    roots = [bazelws.bazel_startup(base, "first-root"), bazelws.bazel_startup(base, "clean-root")]
    yield {"b2": b2, "ws": ws, "sdk": sdk, "ndk": ndk, "model": model, "labels": labels, "server": server, "roots": roots}
    for startup in roots:
        bazelws.shutdown(b2, startup, ws)


def built_processes(build: dict) -> int:
    """Processes Bazel ran or fetched for the build (its internal ones aside)."""
    return sum(n for kind, n in build["processes"].items() if kind != "internal")


def _android(f, startup, *extra):
    return [
        "android", "--tf-src", f["ws"], "--sdk", f["sdk"], "--ndk", f["ndk"],
        "--model", f["model"], "--labels", f["labels"], "--mean", "128", "--std", "128",
        "--no-install", "--bazel", f["b2"], "--ignore-bazel-version",
        "--remote-cache", f["server"].url,
        *[f"--bazel-startup-arg={s}" for s in startup], "--json", *extra,
    ]


def test_clean_rebuild_takes_every_cacheable_action_from_buildgrid(cli, reapi_rig):
    f = reapi_rig
    first = cli(*_android(f, f["roots"][0]))
    assert first.code == 0, first.stderr
    built = json.loads(first.stdout)["build"]
    assert built["remote_cache_hits"] == 0 and not built["no_op"]
    assert not [w for w in built["warnings"] if "remote" in w], built["warnings"]  # every upload answered
    assert "build --remote_cache=" + f["server"].url in (f["ws"] / "mobilebuild.bazelrc").read_text()
    assert f["server"].stored_blobs() > 0  # outputs and action results went into its CAS

    # A fresh output base: Bazel knows nothing locally, so every action is looked up remotely.
    second = cli(*_android(f, f["roots"][1]))
    assert second.code == 0, second.stderr
    rebuilt = json.loads(second.stdout)["build"]
    executed = {k: v for k, v in rebuilt["processes"].items() if k != "internal"}
    assert executed == {"remote cache hit": rebuilt["remote_cache_hits"]}, rebuilt["processes"]
    # The three genrules and the APK: every one of them from the cache, none run again.
    assert rebuilt["remote_cache_hits"] == built_processes(built) == 4 and rebuilt["remote_cache_hit_ratio"] == 1.0
    assert "remote cache hits (100%)" in second.stderr
    apk = json.loads(second.stdout)["apk"]
    assert apk.endswith("tensorflow_demo.apk")
    print(f"BuildGrid clean rebuild: {rebuilt['remote_cache_hits']} remote cache hits, ratio "
          f"{rebuilt['remote_cache_hit_ratio']}, processes {rebuilt['processes']}")
