#!/usr/bin/env python3
"""Graph commands at the speed of protobuf: the figures, as ratios measured in one run.

1. Each command that executes no graph, as a fresh process on a MobileNet-size frozen graph
   (keras.applications.MobileNet, weights=None, frozen; ~17 MB): `model inspect`,
   `model check --tf-version 1.1`, `model downgrade --tf-version 1.1`, `model memmap`,
   `model quantize --mode weights`, `model quantize --mode eightbit` (and `--eightbit-extended`,
   which folds the Keras 3 batch norms first), `model optimize` (and `model optimize` on a TF
   1.x-style MobileNet with FusedBatchNorm). Target: each <= 1.0 s wall and <= 0.1x the time of
   `python -c "import tensorflow"` measured in the same run, and TensorFlow not imported.
2. Fast path and TensorFlow path (MOBILEBUILD_GRAPH_BACKEND=tensorflow) write byte-identical
   files for the same commands on the MobileNet-size graph.
3. `model memmap` on a ~100 MB graph: conversion throughput >= 50 % of copying the file
   (shutil.copyfile, in the same process), and the command's peak RSS <= 1.5x the model size
   above the same command's peak on a tiny model (the interpreter's baseline).
4. `android --generate-only` on a TF-shaped 1.1 tree (tests/helpers/tftrees.py) with the
   built-in model and an empty cache (no prepared copy): <= 2 s, TensorFlow not imported.

Our modules' bytecode is compiled first, as installing the package does: with
PYTHONDONTWRITEBYTECODE set (CI machines and this checkout's sessions set it) every fresh
process would otherwise compile all of our modules again, about 0.15 s each time.
Medians of --runs runs (default 3). The machine's load moves every figure; the ratios to
`import tensorflow` and to a plain copy are measured side by side for that reason.
Run: python benchmarks/bench_fast_path.py [--runs N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))  # in-process parts measure this checkout, as the child processes do
RESULTS: list[tuple[str, bool, str]] = []
FIGURES: dict = {}

# A fresh interpreter running one CLI command; it reports on stderr whether TensorFlow was
# imported and its own peak RSS (KiB).
PROBE = (
    "import json, resource, sys\n"
    "from mobilebuild.cli import hoist_global_flags, run\n"
    "code = run(hoist_global_flags(sys.argv[1:]))\n"
    "print(json.dumps({'code': code, 'tensorflow': 'tensorflow' in sys.modules,"
    " 'maxrss_kib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}), file=sys.stderr)\n"
)


def verdict(name: str, ok: bool, detail: str) -> None:
    RESULTS.append((name, ok, detail))
    print(f"  [{'PASS' if ok else 'FAIL'}] {name}: {detail}", flush=True)


def env(**extra) -> dict:
    e = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), NO_COLOR="1")
    e.pop("MOBILEBUILD_GRAPH_BACKEND", None)
    e.update(extra)
    return e


def probe(args, extra_env=None) -> tuple[float, dict]:
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", PROBE, *map(str, args)], capture_output=True, text=True, env=env(**(extra_env or {})))
    took = time.perf_counter() - t
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    if report["code"] != 0:
        raise SystemExit(f"{args} failed:\n{proc.stderr}")
    return took, report


def median_time(argv, runs: int, extra_env=None) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True, env=env(**(extra_env or {})))
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def compile_bytecode() -> None:
    """What installing the package does; compileall writes even under PYTHONDONTWRITEBYTECODE."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "mobilebuild")], check=True, capture_output=True)


def mobilenet_graph(path: Path) -> None:
    """Built in a child process: this one must not have TensorFlow loaded."""
    code = (
        "import sys, keras, tensorflow as tf\n"
        "from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2\n"
        "keras.utils.set_random_seed(6)\n"
        "m = keras.applications.MobileNet(weights=None)\n"
        "fn = tf.function(lambda t: m(t, training=False)).get_concrete_function(tf.TensorSpec([None, 224, 224, 3], tf.float32, name='input'))\n"
        "g = convert_variables_to_constants_v2(fn).graph.as_graph_def()\n"
        "open(sys.argv[1], 'wb').write(g.SerializeToString(deterministic=True))\n"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, capture_output=True, env=env())


def fused_mobilenet_graph(path: Path) -> None:
    """MobileNet v1 (224, 1.0) written the TF 1.x way: each convolution followed by a
    FusedBatchNorm on constants, as the frozen graphs of tf-slim are (TensorFlow's
    fold_batch_norms path; the Keras 3 graph above has decomposed batch norms: AddV2/Rsqrt/
    Mul/Sub on constants, folded by graphs/fold.py). Built in a child process."""
    code = (
        "import sys, numpy as np, tensorflow as tf\n"
        "rng = np.random.default_rng(6); g = tf.Graph()\n"
        "def bn(h, c, name):\n"
        "    p = [tf.constant(rng.uniform(lo, hi, c).astype(np.float32)) for lo, hi in ((0.5, 1.5), (-0.2, 0.2), (-0.3, 0.3), (0.5, 2.0))]\n"
        "    return tf.nn.relu6(tf.compat.v1.nn.fused_batch_norm(h, p[0], p[1], mean=p[2], variance=p[3], is_training=False, name=name)[0])\n"
        "with g.as_default():\n"
        "    h = tf.compat.v1.placeholder(tf.float32, [None, 224, 224, 3], name='input')\n"
        "    h = bn(tf.nn.conv2d(h, tf.constant(rng.normal(0, 0.1, (3, 3, 3, 32)).astype(np.float32)), 2, 'SAME'), 32, 'Conv2d_0/BatchNorm')\n"
        "    c = 32\n"
        "    for i, (out, stride) in enumerate([(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]):\n"
        "        h = bn(tf.nn.depthwise_conv2d(h, tf.constant(rng.normal(0, 0.1, (3, 3, c, 1)).astype(np.float32)), [1, stride, stride, 1], 'SAME'), c, f'Conv2d_{i + 1}_depthwise/BatchNorm')\n"
        "        h = bn(tf.nn.conv2d(h, tf.constant(rng.normal(0, 0.1, (1, 1, c, out)).astype(np.float32)), 1, 'SAME'), out, f'Conv2d_{i + 1}_pointwise/BatchNorm')\n"
        "        c = out\n"
        "    h = tf.reduce_mean(h, [1, 2])\n"
        "    h = tf.matmul(h, tf.constant(rng.normal(0, 0.05, (1024, 1001)).astype(np.float32))) + tf.constant(np.zeros(1001, np.float32))\n"
        "    tf.nn.softmax(h, name='predictions')\n"
        "open(sys.argv[1], 'wb').write(g.as_graph_def().SerializeToString(deterministic=True))\n"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, capture_output=True, env=env())


def big_graph(path: Path, megabytes: int) -> None:
    """A frozen graph of ``megabytes`` MB: conv layers whose weights are large Consts."""
    import numpy as np

    from mobilebuild.graphs import protos

    rng = np.random.default_rng(0)
    g = protos.GraphDef()
    x = g.node.add(name="input", op="Placeholder")
    x.attr["dtype"].type = protos.DT_FLOAT
    prev, total, i = "input", 0, 0
    while total < megabytes * 1_000_000:
        w = rng.standard_normal((3, 3, 256, 256), dtype=np.float32)
        c = g.node.add(name=f"layer{i}/weights", op="Const")
        c.attr["dtype"].type = protos.DT_FLOAT
        c.attr["value"].tensor.CopyFrom(protos.make_tensor(w))
        conv = g.node.add(name=f"layer{i}/conv", op="Conv2D", input=[prev, c.name])
        conv.attr["T"].type = protos.DT_FLOAT
        conv.attr["padding"].s = b"SAME"
        conv.attr["strides"].list.i.extend([1, 1, 1, 1])
        prev, total, i = conv.name, total + w.nbytes, i + 1
    g.node.add(name="output", op="Identity", input=[prev]).attr["T"].type = protos.DT_FLOAT
    path.write_bytes(g.SerializeToString(deterministic=True))


def bench_commands(work: Path, runs: int) -> None:
    print("\n== graph commands on a MobileNet-size graph, fresh processes ==", flush=True)
    model = work / "mobilenet.pb"
    mobilenet_graph(model)
    fused_mobilenet_graph(work / "mobilenet_fused.pb")
    size = model.stat().st_size
    import_tf = median_time([sys.executable, "-c", "import tensorflow"], runs)
    python = median_time([sys.executable, "-c", "pass"], runs)
    print(f"model: {size / 1e6:.1f} MB; python -c pass: {python:.2f} s; python -c 'import tensorflow': {import_tf:.2f} s")
    FIGURES.update(model_mb=round(size / 1e6, 1), import_tensorflow_s=round(import_tf, 3), python_s=round(python, 3))
    commands = {
        "inspect": ["model", "inspect", model],
        "check --tf-version 1.1": ["model", "check", work / "down.pb", "--tf-version", "1.1"],
        "downgrade --tf-version 1.1": ["model", "downgrade", model, "-o", work / "down.pb", "--tf-version", "1.1"],
        "memmap": ["model", "memmap", model, "-o", work / "mobilenet.mm"],
        "quantize --mode weights": ["model", "quantize", model, "-o", work / "weights.pb", "--mode", "weights"],
        "quantize --mode eightbit": ["model", "quantize", model, "-o", work / "eightbit.pb", "--mode", "eightbit"],
        # Both fold the Keras 3 batch norms' Rsqrt of a channel vector: float64, rounded once
        # (graphs/fold.py), so neither loads TensorFlow.
        "quantize --mode eightbit --eightbit-extended": ["model", "quantize", model, "-o", work / "extended.pb", "--mode", "eightbit",
                                                        "--eightbit-extended"],
        "optimize": ["model", "optimize", model, "-o", work / "optimized.pb"],
        "optimize (TF 1.x MobileNet, FusedBatchNorm)": ["model", "optimize", work / "mobilenet_fused.pb", "-o", work / "optimized_fused.pb"],
    }
    order = ["inspect", "downgrade --tf-version 1.1", "check --tf-version 1.1", "memmap", "quantize --mode weights", "quantize --mode eightbit",
             "quantize --mode eightbit --eightbit-extended", "optimize", "optimize (TF 1.x MobileNet, FusedBatchNorm)"]
    FIGURES["commands"] = {}
    for name in order:
        times, tf_loaded = [], False
        for _ in range(runs):
            took, report = probe(commands[name])
            times.append(took)
            tf_loaded |= report["tensorflow"]
        t = statistics.median(times)
        FIGURES["commands"][name] = {"seconds": round(t, 3), "ratio_to_import_tensorflow": round(t / import_tf, 3), "tensorflow": tf_loaded}
        verdict(
            f"{name}",
            t <= 1.0 and t <= 0.1 * import_tf and not tf_loaded,
            f"{t:.2f} s = {t / import_tf:.3f}x import tensorflow (targets <= 1.0 s, <= 0.1x); TensorFlow imported: {tf_loaded}",
        )

    print("\n== fast path vs TensorFlow path, same commands, same bytes ==", flush=True)
    same = True
    for name in ("downgrade --tf-version 1.1", "memmap", "quantize --mode weights", "quantize --mode eightbit",
                 "quantize --mode eightbit --eightbit-extended", "optimize", "optimize (TF 1.x MobileNet, FusedBatchNorm)"):
        argv = list(commands[name])
        out_index = argv.index("-o") + 1
        fast_out, tf_out = work / f"fast_{Path(argv[out_index]).name}", work / f"tf_{Path(argv[out_index]).name}"
        probe(argv[:out_index] + [fast_out] + argv[out_index + 1 :])
        _, report = probe(argv[:out_index] + [tf_out] + argv[out_index + 1 :], {"MOBILEBUILD_GRAPH_BACKEND": "tensorflow"})
        identical = fast_out.read_bytes() == tf_out.read_bytes()
        same &= identical
        print(f"  {name}: {'identical' if identical else 'DIFFERENT'} ({fast_out.stat().st_size} bytes; "
              f"TensorFlow path imported TensorFlow: {report['tensorflow']})")
    FIGURES["fast_equals_tensorflow_path"] = same
    verdict("fast path == TensorFlow path (MobileNet-size graph)", same, "byte-identical outputs" if same else "outputs differ")


def bench_memmap(work: Path, runs: int, megabytes: int) -> None:
    from mobilebuild.fsutil import release_outputs
    from mobilebuild.graphs import memmap

    print(f"\n== memmap streaming on a {megabytes} MB graph ==", flush=True)
    src = work / "big.pb"
    big_graph(src, megabytes)
    size = src.stat().st_size
    # Each step takes a tenth of a second, so a few more of them than --runs cost nothing and
    # keep one disturbed step (another process, the kernel writing back earlier output) from
    # deciding the median. CPU time (user + system) is printed beside: load disturbs it less.
    copy_t, conv_t, copy_cpu, conv_cpu = [], [], [], []
    for i in range(max(runs, 7)):
        c0, t = _cpu(), time.perf_counter()
        shutil.copyfile(src, work / "copy.pb")
        copy_t.append(time.perf_counter() - t)
        copy_cpu.append(_cpu() - c0)
        (work / "copy.pb").unlink()
        out = work / "big.mm"
        if out.exists():
            out.unlink()
        c0, t = _cpu(), time.perf_counter()
        memmap.convert_file(src, out, 10000)
        conv_t.append(time.perf_counter() - t)
        conv_cpu.append(_cpu() - c0)
        release_outputs()  # what the CLI does at the end of a command: the output is free again
    c, m = statistics.median(copy_t), statistics.median(conv_t)
    share = c / m
    cpu_share = statistics.median(copy_cpu) / statistics.median(conv_cpu)
    print(f"copy {size / 1e6 / c:.0f} MB/s, memmap {size / 1e6 / m:.0f} MB/s (medians of {len(copy_t)}); "
          f"in CPU time memmap is {cpu_share * 100:.0f} % of the copy's speed")
    FIGURES["memmap"] = {"model_mb": round(size / 1e6, 1), "copy_mb_s": round(size / 1e6 / c), "memmap_mb_s": round(size / 1e6 / m),
                         "share_of_copy": round(share, 3), "cpu_share_of_copy": round(cpu_share, 3)}
    verdict("memmap throughput", share >= 0.5, f"{share * 100:.0f} % of a plain copy (target >= 50 %)")

    tiny = ROOT / "mobilebuild/data/default/digits.pb"
    (work / "tiny.mm").unlink(missing_ok=True)
    _, base = probe(["model", "memmap", tiny, "-o", work / "tiny.mm"])
    _, peak = probe(["model", "memmap", src, "-o", work / "big-cli.mm"])
    above = (peak["maxrss_kib"] - base["maxrss_kib"]) * 1024
    FIGURES["memmap"].update(peak_above_baseline_mb=round(above / 1e6, 1), peak_ratio_to_model=round(above / size, 3))
    verdict("memmap peak memory", above <= 1.5 * size, f"{above / 1e6:.0f} MB above baseline = {above / size:.2f}x the model (target <= 1.5x)")


def bench_android(work: Path, runs: int) -> None:
    from helpers.tftrees import make_ndk, make_sdk, make_tf_tree

    print("\n== android --generate-only, first run on a new model (default model, empty cache) ==", flush=True)
    times, tf_loaded = [], False
    for i in range(runs):
        base = work / f"android{i}"
        tree = make_tf_tree(base / "tf", "1.1")
        sdk, ndk = make_sdk(base / "sdk"), make_ndk(base / "ndk")
        argv = ["android", "--generate-only", "--tf-src", tree, "--sdk", sdk, "--ndk", ndk]
        took, report = probe(argv, {"MOBILEBUILD_CACHE": str(base / "cache"), "MOBILEBUILD_HOME": str(base / "home")})
        times.append(took)
        tf_loaded |= report["tensorflow"]
    t = statistics.median(times)
    FIGURES["android_generate_only_s"] = round(t, 3)
    verdict("android --generate-only, new model", t <= 2.0 and not tf_loaded, f"{t:.2f} s (target <= 2 s); TensorFlow imported: {tf_loaded}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--megabytes", type=int, default=100)
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object at the end")
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    compile_bytecode()
    with tempfile.TemporaryDirectory(prefix="mb-bench-fast-") as tmp:
        work = Path(tmp)
        bench_commands(work, args.runs)
        bench_memmap(work, args.runs, args.megabytes)
        bench_android(work, args.runs)
    failed = [name for name, ok, _ in RESULTS if not ok]
    print(f"\n{len(RESULTS) - len(failed)}/{len(RESULTS)} targets met" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    if args.json:
        print(json.dumps({"figures": FIGURES, "results": [{"name": n, "ok": ok, "detail": d} for n, ok, d in RESULTS]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
