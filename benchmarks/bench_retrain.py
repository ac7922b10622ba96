#!/usr/bin/env python3
"""Keras input and retraining benchmark. Prints figures and PASS/FAIL against the targets:

- freezing: a MobileNetV2-size Keras model (keras.applications.MobileNetV2, weights=None,
  seeded random weights, Rescaling inside so it takes raw pixels; no download), saved as
  .keras and frozen by mobilebuild, gives the same top-1 as Keras on the shipped sample images
  (100 % agreement, max abs diff <= 1e-5); freezing time, and the cached second load;
- retrain on the built-in digits: a folder this script writes from the digits the built-in
  model never trained on (scripts/make_default_model.py's held-out split, 36 per class), all
  defaults of `mobilebuild retrain` otherwise, with two bases (no download):
  * the built-in digits model (a trained CNN, 32x32; its last layer's input is the bottleneck):
    held-out (test) accuracy of the retrained graph;
  * a MobileNetV2 224 feature extractor (random weights: the real network's cost, not its
    accuracy; 100 digits per class from the whole set): wall time of the first run vs the second (bottlenecks cached: target <= 0.3x),
    bottleneck images/s.

Each retrain run is a fresh `python -m mobilebuild` process (TensorFlow start-up included).
Run: python benchmarks/bench_retrain.py [--per-class N]  (about 3-5 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import mobilebuild.graphs  # noqa: F401  (quiets TensorFlow's start-up chatter)

ROOT = Path(__file__).resolve().parent.parent
RESULTS: list[tuple[str, bool]] = []


def verdict(name: str, ok: bool, detail: str) -> None:
    RESULTS.append((name, ok))
    print(f"  [{'PASS' if ok else 'FAIL'}] {name}: {detail}")


def mobilenet_v2(include_top: bool, activation: str | None = "softmax"):
    """MobileNetV2 with seeded random weights, Rescaling inside (raw pixels in). Keras's fresh
    batch-norm statistics (mean 0, variance 1) make activations fade to ~1e-11 over 17 blocks
    (every output equal: a comparison would prove nothing), so each batch norm gets the
    statistics of its real input on sample images, layer by layer (data-dependent init)."""
    import keras

    keras.utils.set_random_seed(14)
    inp = keras.Input((224, 224, 3), name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inp)
    extra = {"classifier_activation": activation} if include_top else {}
    net = keras.applications.MobileNetV2(weights=None, include_top=include_top, pooling=None if include_top else "avg",
                                         input_shape=(224, 224, 3), **extra)
    calibrate_batch_norms(net, sample_pixels(8) / 127.5 - 1.0)
    return keras.Model(inp, net(x))


def sample_pixels(n: int):
    """The first ``n`` shipped sample images, 224x224 RGB float pixels."""
    from PIL import Image

    from mobilebuild import defaults

    images = defaults.sample_images()[:n] if n else defaults.sample_images()
    return np.stack([np.asarray(Image.open(p).convert("RGB").resize((224, 224), Image.BILINEAR), dtype=np.float32) for p in images])


def calibrate_batch_norms(net, batch, rounds: int = 4) -> None:
    """Each round: one forward pass reading every batch norm's input, then their statistics
    set to it. A few rounds bring the deep layers near their own statistics (exact would be
    one pass per layer: minutes on a busy machine for the same purpose)."""
    import keras

    bns = [layer for layer in net.layers if isinstance(layer, keras.layers.BatchNormalization)]
    probe = keras.Model(net.input, [layer.input for layer in bns])
    for _ in range(rounds):
        for layer, acts in zip(bns, probe(batch, training=False)):
            acts = np.asarray(acts)
            gamma, beta, _, _ = layer.get_weights()
            axes = tuple(range(acts.ndim - 1))
            layer.set_weights([gamma, beta, acts.mean(axis=axes), acts.var(axis=axes) + 1e-3])


def bench_freeze(tmp: Path) -> None:
    compare_frozen(tmp, "softmax", target=True)


def compare_frozen(tmp: Path, activation: str | None, target: bool) -> None:
    from mobilebuild import defaults
    from mobilebuild.graphs import io
    from mobilebuild.graphs.execute import GraphRunner

    what = "softmax outputs" if activation else "logits (no softmax)"
    print(f"freezing a MobileNetV2-size Keras model (random weights), {what} ...")
    model = mobilenet_v2(include_top=True, activation=activation)
    path = tmp / f"mobilenet_v2_{activation or 'logits'}.keras"
    model.save(path)
    images = defaults.sample_images()
    pixels = sample_pixels(0)
    want = model.predict(pixels, verbose=0, batch_size=8)

    start = time.perf_counter()
    loaded = io.load_model(path)
    first = time.perf_counter() - start
    start = time.perf_counter()
    io.load_model(path)
    second = time.perf_counter() - start
    out = loaded.frozen["output_names"][0]
    runner = GraphRunner(loaded.graph_def, "image", out)
    got = np.concatenate([runner.run(pixels[i : i + 8]) for i in range(0, len(pixels), 8)])
    runner.close()
    agreement = float(np.mean(got.argmax(1) == want.argmax(1)))
    diff = float(np.abs(got - want).max())
    params = model.count_params()
    print(f"  {params:,} parameters, {path.stat().st_size / 1e6:.1f} MB .keras; frozen in {first:.1f} s, cached load {second:.2f} s")
    spread = f"outputs in [{want.min():.3g}, {want.max():.3g}], {len(set(want.argmax(1)))} distinct top-1 classes"
    print(f"  {len(images)} shipped sample images: top-1 agreement {agreement * 100:.1f}%, max abs diff {diff:.2e} ({spread})")
    if target:
        verdict("frozen == Keras top-1", agreement == 1.0, f"{agreement * 100:.1f}% agreement")
        verdict("frozen == Keras values", diff <= 1e-5, f"max abs diff {diff:.2e} (<= 1e-5)")


def write_digits(folder: Path, per_class: int, held_out: bool = True) -> int:
    """Digits as PNG files: the held-out ones of the built-in model (it never trained on them),
    or any (for timing only)."""
    from PIL import Image

    sys.path.insert(0, str(ROOT / "scripts"))
    from make_default_model import LABELS, make_dataset, split

    images, labels = make_dataset()
    if held_out:
        _, images, _, labels = split(images, labels)
    n = 0
    for cls, name in enumerate(LABELS):
        d = folder / name
        d.mkdir(parents=True, exist_ok=True)
        for k, idx in enumerate(np.flatnonzero(labels == cls)[:per_class]):
            Image.fromarray(images[idx]).save(d / f"{name}_{k}.png")
            n += 1
    return n


def retrain_run(args: list[str], env: dict) -> tuple[float, dict]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "mobilebuild", "--json", "retrain", *args], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        print(proc.stderr[-3000:])
        raise SystemExit(f"retrain failed ({proc.returncode})")
    return seconds, json.loads(proc.stdout)


def bench_retrain(tmp: Path, per_class: int) -> None:
    from mobilebuild import defaults

    folder = tmp / "digits"
    n = write_digits(folder, 1000)  # all held-out images (36 per class)
    env = dict(os.environ, MOBILEBUILD_CACHE=str(tmp / "cache"), PYTHONPATH=str(ROOT))

    print(f"retrain on {n} held-out digits, base: the built-in digits model (trained CNN, 32x32) ...")
    args = ["--image-dir", str(folder), "--base", str(defaults.default_model()),
            "--output-graph", str(tmp / "digits_graph.pb"), "--output-labels", str(tmp / "digits_labels.txt")]
    first_s, first = retrain_run(args, env)
    second_s, second = retrain_run(args, env)
    report("digits base", n, first_s, first, second_s, second)
    acc = first["test_accuracy"]
    verdict("retrained digits graph is accurate", acc is not None and acc >= 0.9, f"held-out test accuracy {acc * 100:.1f}%")

    small = tmp / "digits_small"
    m = write_digits(small, per_class, held_out=False)
    base = tmp / "mobilenet_v2_base.keras"
    mobilenet_v2(include_top=False).save(base)
    print(f"retrain on {m} digits ({per_class} per class), base: MobileNetV2 224 feature extractor (random weights) ...")
    args = ["--image-dir", str(small), "--base", str(base), "--output-graph", str(tmp / "mobilenet_graph.pb"),
            "--output-labels", str(tmp / "mobilenet_labels.txt")]
    first_s, first = retrain_run(args, env)
    second_s, second = retrain_run(args, env)
    report("MobileNetV2 base", m, first_s, first, second_s, second)
    verdict("second run recomputes nothing", second["bottlenecks"]["computed"] == 0, f"{second['bottlenecks']['computed']} recomputed")
    verdict("second run <= 0.3x first (MobileNetV2 base)", second_s <= 0.3 * first_s, f"{second_s / first_s:.2f}x")
    verdict("same model twice", second["test_accuracy"] == first["test_accuracy"], f"{first['test_accuracy']} / {second['test_accuracy']}")


def report(what: str, n: int, first_s: float, first: dict, second_s: float, second: dict) -> None:
    b = first["bottlenecks"]
    print(f"  {n} images: {first['images']['training']} training, {first['images']['validation']} validation, {first['images']['testing']} test")
    print(f"  first run {first_s:.1f} s (bottlenecks computed: {b['computed']} at {b['images_per_second']} images/s, {b['seconds']:.1f} s)")
    print(f"  second run {second_s:.1f} s = {second_s / first_s:.2f}x (bottlenecks computed: {second['bottlenecks']['computed']}, "
          f"from the cache: {second['bottlenecks']['cached']})")
    val = first["validation_accuracy"]
    print(f"  held-out test accuracy {first['test_accuracy'] * 100:.1f}% (N={first['test_images']}), validation {val * 100:.1f}%")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-class", type=int, default=100,
                        help="digits per class for the MobileNetV2-base timing run (the second run has a fixed floor of "
                             "~10 s, mostly `import tensorflow`: the ratio holds from ~1000 images up; 500 gave 0.38x)")
    ns = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-retrain-") as tmp:
        os.environ["MOBILEBUILD_CACHE"] = str(Path(tmp) / "cache-freeze")
        bench_freeze(Path(tmp))
        bench_retrain(Path(tmp), ns.per_class)
    failed = [name for name, ok in RESULTS if not ok]
    print(f"{len(RESULTS) - len(failed)}/{len(RESULTS)} targets met" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
