"""Benchmark: orchestration overhead of a no-change re-build, and the remote-cache hit share.

1. Overhead: on the TF-shaped test workspace (tests/helpers/bazelws.py: its tensorflow_demo
   target is a genrule that packages a real signed APK), after one full build, compare
   - the bare `bazel build <flags> //tensorflow/examples/android:tensorflow_demo` no-op, with
   - mobilebuild's build path as a fresh process: `python -c` importing mobilebuild, resolving
     Bazel (mobilebuild.toolchain.bazel.resolve_bazel, which probes `bazel --version`), writing the bazelrc
     fragment (unchanged: nothing rewritten) and running mobilebuild.toolchain.bazel.build() (streaming,
     log file, summary parsing) — i.e. everything `mobilebuild android --no-install` adds around
     Bazel in its build step. Target: <= 1 s more than bare Bazel.
   With --full-flow also the whole `mobilebuild android --no-install` re-run (tree, model,
   patch, build, APK steps) against bare Bazel; it needs a Bazel with Android rules for the
   WORKSPACE the flow writes (Bazel 2.1.0: $MOBILEBUILD_TEST_BAZEL2), a fake SDK/NDK layout
   suffices because the genrule target never evaluates them.
2. Remote cache: nginx as the HTTP cache, and BuildGrid (`bgd`, a gRPC REAPI server) as the
   gRPC cache; build in output base A (uploads), then in a fresh output base B: share of
   executed actions that were remote cache hits. Target: 100 % for both.

Run: python benchmarks/bench_android.py [--runs N] [--full-flow] [--json]
Uses Debian's /usr/bin/bazel (or --bazel PATH); every Bazel server is shut down at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from helpers import bazelws  # noqa: E402

from mobilebuild.toolchain import bazel  # noqa: E402
from mobilebuild.profiles import load_profile  # noqa: E402

FLAGS = ["-c", "opt"]


def _test_server_module(name: str):
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", ROOT / f"tests/bazel_builds/{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _nginx_module():
    return _test_server_module("nginx")


def _cache_server(kind: str, work: Path):
    """A started cache server ('http': nginx, 'grpc': BuildGrid), or a reason it cannot run."""
    if kind == "http":
        nginx = _nginx_module()
        return nginx.NginxCache(work / "nginx").start() if nginx.nginx_path() else "nginx not installed"
    buildgrid = _test_server_module("buildgrid")
    if not buildgrid.bgd_path():
        return "BuildGrid's bgd not installed (.ci/run puts it in /opt/mbci/bgd-venv)"
    return buildgrid.BuildGridCache(work / "bgd").start()


def _timed(argv, cwd, env=None) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def overhead(bazel_bin: str, ws: Path, work: Path, runs: int) -> dict:
    profile = load_profile("1.1.0")
    bz = bazel.resolve_bazel(profile, bazel_path=bazel_bin, tree=ws, allow_any_version=True)
    startup = bazelws.bazel_startup(work, "root-overhead")
    bz = dataclasses.replace(bz, startup_options=startup)
    bazel.build(bz, ws, bazelws.DEMO_TARGET, flags=FLAGS, log_path=work / "warm.log")  # full build + warm server

    bare_argv = [bazel_bin, *startup, "build", "--color=no", "--curses=no", *FLAGS, bazelws.DEMO_TARGET]
    script = (
        "import dataclasses\n"
        "from pathlib import Path\n"
        "from mobilebuild.toolchain import bazel\n"
        "from mobilebuild.profiles import load_profile\n"
        "p = load_profile('1.1.0')\n"
        f"ws = Path({str(ws)!r})\n"
        f"bz = bazel.resolve_bazel(p, bazel_path={bazel_bin!r}, tree=ws, allow_any_version=True)\n"
        f"bz = dataclasses.replace(bz, startup_options={startup!r})\n"
        "bazel.write_bazelrc_fragment(ws)\n"
        f"r = bazel.build(bz, ws, {bazelws.DEMO_TARGET!r}, flags={FLAGS!r})\n"
        "assert r.no_op, r.processes\n"
    )
    env = dict(os.environ, NO_COLOR="1", MOBILEBUILD_CACHE=str(work / "cache"))
    ours_argv = [sys.executable, "-c", script]
    bare, ours, inproc = [], [], []
    for _ in range(runs):  # interleaved so drift hits both alike
        bare.append(_timed(bare_argv, ws))
        ours.append(_timed(ours_argv, ws, env))
        t0 = time.perf_counter()
        r = bazel.build(bz, ws, bazelws.DEMO_TARGET, flags=FLAGS, log_path=work / "inproc.log")
        inproc.append(time.perf_counter() - t0)
        assert r.no_op
    bazelws.shutdown(bazel_bin, startup, ws)
    med = statistics.median
    return {
        "runs": runs,
        "bare_bazel_noop_s": round(med(bare), 3),
        "mobilebuild_process_noop_s": round(med(ours), 3),
        "mobilebuild_inprocess_build_s": round(med(inproc), 3),
        "overhead_process_s": round(med(ours) - med(bare), 3),
        "overhead_inprocess_s": round(med(inproc) - med(bare), 3),
        "measured_path": "mobilebuild.toolchain.bazel resolve + fragment + build() in a fresh Python process",
    }


_MODEL_SCRIPT = """
import sys
import tensorflow as tf
g = tf.Graph()
with g.as_default():
    x = tf.compat.v1.placeholder(tf.float32, [1, 224, 224, 3], name="input")
    w = tf.constant(0.01, shape=[224 * 224 * 3, 3])
    tf.nn.softmax(tf.matmul(tf.reshape(x, [1, -1]), w), name="output")
open(sys.argv[1], "wb").write(g.as_graph_def().SerializeToString())
"""


def full_flow(bazel2: str, work: Path, runs: int) -> dict:
    """`mobilebuild android --no-install` re-run (nothing changed) vs bare bazel, with Bazel 2.1
    (the flow writes android_sdk_repository into WORKSPACE, which Debian's Bazel lacks)."""
    ws = bazelws.make_bazel_workspace(work / "flow" / "tensorflow", "1.1")
    sdk, ndk = bazelws.make_sdk_ndk(work / "flow")
    model, labels = work / "flow/model.pb", work / "flow/labels.txt"
    subprocess.run([sys.executable, "-c", _MODEL_SCRIPT, str(model)], check=True, capture_output=True)
    labels.write_text("a\nb\nc\n")
    startup = bazelws.bazel_startup(work, "root-flow")
    env = dict(os.environ, NO_COLOR="1", MOBILEBUILD_CACHE=str(work / "flow-cache"), MOBILEBUILD_HOME=str(work / "flow-home"))
    flow_argv = [sys.executable, "-m", "mobilebuild", "android", "--tf-src", str(ws), "--sdk", str(sdk), "--ndk", str(ndk),
                 "--model", str(model), "--labels", str(labels), "--mean", "128", "--std", "128", "--no-install",
                 "--bazel", bazel2, "--ignore-bazel-version", *[f"--bazel-startup-arg={s}" for s in startup]]
    first = subprocess.run(flow_argv, cwd=ws, env=env, capture_output=True, text=True)
    if first.returncode != 0:
        bazelws.shutdown(bazel2, startup, ws)
        return {"skipped": "mobilebuild android failed here: " + (first.stderr.strip().splitlines() or ["?"])[-1]}
    bare_argv = [bazel2, *startup, "build", "--color=no", "--curses=no", "-c", "opt", "--cxxopt=-std=c++11",
                 "--fat_apk_cpu=armeabi-v7a", bazelws.DEMO_TARGET]
    bare, flow = [], []
    for _ in range(runs):
        bare.append(_timed(bare_argv, ws, env))
        flow.append(_timed(flow_argv, ws, env))
    bazelws.shutdown(bazel2, startup, ws)
    med = statistics.median
    return {
        "runs": runs,
        "bare_bazel_noop_s": round(med(bare), 3),
        "mobilebuild_android_noop_s": round(med(flow), 3),
        "overhead_s": round(med(flow) - med(bare), 3),
    }


def remote_cache_share(bazel_bin: str, ws: Path, work: Path, kind: str = "http") -> dict:
    server = _cache_server(kind, work)
    if isinstance(server, str):
        return {"skipped": server}
    profile = load_profile("1.1.0")
    base = bazel.resolve_bazel(profile, bazel_path=bazel_bin, tree=ws, allow_any_version=True)
    roots = []
    try:
        rc = bazel.write_bazelrc_fragment(ws, remote_cache=server.url)
        results = []
        for name in (f"root-{kind}-cache-a", f"root-{kind}-cache-b"):
            startup = bazelws.bazel_startup(work, name)
            roots.append(startup)
            bz = dataclasses.replace(base, startup_options=startup)
            results.append(bazel.build(bz, ws, bazelws.DEMO_TARGET, flags=FLAGS, bazelrc=rc, log_path=work / f"{name}.log"))
        fresh = results[1]
        executed = sum(v for k, v in fresh.processes.items() if k != "internal")
        return {
            "server": server.url,
            "actions": fresh.actions,
            "executed_processes": executed,
            "remote_cache_hits": fresh.remote_cache_hits,
            "hit_share_pct": round(100.0 * fresh.remote_cache_hits / executed, 1) if executed else None,
            "fresh_build_s": round(fresh.seconds, 3),
            "uncached_build_s": round(results[0].seconds, 3),
        }
    finally:
        for startup in roots:
            bazelws.shutdown(bazel_bin, startup, ws)
        server.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bazel", default=bazelws.SYSTEM_BAZEL)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--full-flow", action="store_true", help="also time `mobilebuild android --no-install` (needs Bazel 2.1)")
    args = ap.parse_args()
    missing = bazelws.missing_tools()
    if missing or not os.access(args.bazel, os.X_OK):
        print(f"cannot run: missing {missing or [args.bazel]}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-android-") as tmp:
        work = Path(tmp)
        ws = bazelws.make_bazel_workspace(work / "tensorflow", "1.1")
        (ws / "tensorflow/examples/android/assets/retrained_graph.pb").write_bytes(bazelws.MODEL_BYTES * 64)
        (ws / "tensorflow/examples/android/assets/retrained_labels.txt").write_text(bazelws.LABELS)
        report = {
            "bazel": args.bazel,
            "overhead": overhead(args.bazel, ws, work, args.runs),
            "remote_cache": remote_cache_share(args.bazel, ws, work, "http"),
            "remote_cache_grpc": remote_cache_share(args.bazel, ws, work, "grpc"),
        }
        if args.full_flow:
            b2 = bazelws.bazel2_path()
            report["full_flow"] = full_flow(b2, work, args.runs) if b2 else {"skipped": "no Bazel 2.1 binary"}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        o, c = report["overhead"], report["remote_cache"]
        print(f"no-op re-build, median of {o['runs']} (Bazel: {args.bazel})")
        print(f"  bare bazel build                 {o['bare_bazel_noop_s']:.3f} s")
        print(f"  mobilebuild build path (process) {o['mobilebuild_process_noop_s']:.3f} s  "
              f"overhead {o['overhead_process_s']:+.3f} s (target <= 1 s)")
        print(f"  bazel.build() in-process         {o['mobilebuild_inprocess_build_s']:.3f} s  "
              f"overhead {o['overhead_inprocess_s']:+.3f} s")
        for what, c in (("remote cache (nginx, HTTP)", c), ("remote cache (BuildGrid, gRPC)", report["remote_cache_grpc"])):
            if "skipped" in c:
                print(f"{what}: skipped ({c['skipped']})")
            else:
                print(f"{what}, fresh output base: {c['remote_cache_hits']}/{c['executed_processes']} executed "
                      f"actions were cache hits = {c['hit_share_pct']} % (target 100 %); "
                      f"{c['fresh_build_s']:.2f} s vs {c['uncached_build_s']:.2f} s uncached")
        f = report.get("full_flow")
        if f and "skipped" in f:
            print(f"full flow: skipped ({f['skipped']})")
        elif f:
            print(f"full `mobilebuild android --no-install` re-run (Bazel 2.1), median of {f['runs']}: "
                  f"{f['mobilebuild_android_noop_s']:.3f} s vs bare bazel {f['bare_bazel_noop_s']:.3f} s "
                  f"= overhead {f['overhead_s']:+.3f} s (target <= 1 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
