#!/usr/bin/env python3
"""Train and write mobilebuild's built-in default model (mobilebuild/data/default/).

A small real CNN classifying the ten digits of scikit-learn's `digits` data set (8x8 grey images
shipped inside scikit-learn), upscaled to 32x32 and tinted into RGB (random ink and paper colours)
so the model sees colour images like a camera's. The graph is written the way TF 1.x mobile graphs
look: a float Placeholder `input`, normalisation `Sub` (mean 128) -> `Mul` (1/128) right after it
(so `model inspect` proposes feeding `Mul` with mean/std read from the constants, like retrain.py
graphs), three Conv2D + FusedBatchNorm + Relu blocks (so `model optimize` has batch norms to fold),
global average pooling, a dense layer and a Softmax named `final_result`. It is written already
downgraded so it loads in every bundled TF 1.0 - 1.4 mobile runtime.

Run: python scripts/make_default_model.py [--out DIR]   (about 80 s on 2 CPU cores; prints held-out
accuracy). Training is seeded: a second run writes the same bytes, so no file is rewritten.
"""

from __future__ import annotations

import json
import sys
from io import BytesIO
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "mobilebuild" / "data" / "default"
SIZE = 32
MEAN, STD = 128.0, 128.0
LABELS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
SAMPLES_PER_CLASS = 3
SEED = 1234
EPOCHS = 60
BATCH = 64
CHANNELS = (16, 32, 64)
BN_EPSILON = 1e-3


def make_dataset(seed: int = SEED):
    """digits -> uint8 RGB 32x32 images with random ink/paper colours, and their labels."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    images = []
    for grey in digits.images:
        big = Image.fromarray((grey * (255.0 / 16.0)).astype(np.uint8)).resize((SIZE, SIZE), Image.BICUBIC)
        ink_level = np.asarray(big, dtype=np.float32)[..., None] / 255.0
        paper = rng.uniform(0, 110, size=3)
        ink = rng.uniform(150, 255, size=3)
        rgb = paper + (ink - paper) * ink_level + rng.normal(0, 4, size=(SIZE, SIZE, 3))
        images.append(np.clip(rgb, 0, 255).astype(np.uint8))
    return np.stack(images), digits.target.astype(np.int64)


def split(images, labels, seed: int = SEED):
    from sklearn.model_selection import train_test_split

    return train_test_split(images, labels, test_size=0.2, random_state=seed, stratify=labels)


def train(x_train, y_train):
    """Weights of the CNN, trained with batch norm in training mode (moving averages kept)."""
    import tensorflow as tf

    tf.random.set_seed(SEED)
    init_rng = np.random.default_rng(SEED)

    def init(shape):  # He normal
        fan_in = int(np.prod(shape[:-1]))
        return init_rng.normal(0, np.sqrt(2.0 / fan_in), size=shape).astype(np.float32)

    params: dict[str, tf.Variable] = {}
    cin = 3
    for i, cout in enumerate(CHANNELS, 1):
        params[f"conv{i}/weights"] = tf.Variable(init((3, 3, cin, cout)))
        params[f"conv{i}/gamma"] = tf.Variable(tf.ones([cout]))
        params[f"conv{i}/beta"] = tf.Variable(tf.zeros([cout]))
        params[f"conv{i}/moving_mean"] = tf.Variable(tf.zeros([cout]), trainable=False)
        params[f"conv{i}/moving_variance"] = tf.Variable(tf.ones([cout]), trainable=False)
        cin = cout
    params["logits/weights"] = tf.Variable(init((cin, 10)))
    params["logits/biases"] = tf.Variable(tf.zeros([10]))
    trainable = [v for v in params.values() if v.trainable]
    steps_per_epoch = -(-len(x_train) // BATCH)
    schedule = tf.optimizers.schedules.CosineDecay(3e-3, EPOCHS * steps_per_epoch)
    opt = tf.optimizers.Adam(schedule)

    def forward(x, training):
        h = (x - MEAN) * (1.0 / STD)
        for i in range(1, len(CHANNELS) + 1):
            h = tf.nn.conv2d(h, params[f"conv{i}/weights"], 1, "SAME")
            if training:
                h, mean, var = tf.compat.v1.nn.fused_batch_norm(
                    h, params[f"conv{i}/gamma"], params[f"conv{i}/beta"], epsilon=BN_EPSILON, is_training=True
                )
                params[f"conv{i}/moving_mean"].assign(0.9 * params[f"conv{i}/moving_mean"] + 0.1 * mean)
                params[f"conv{i}/moving_variance"].assign(0.9 * params[f"conv{i}/moving_variance"] + 0.1 * var)
            h = tf.nn.relu(h)
            if i < len(CHANNELS):
                h = tf.nn.max_pool2d(h, 2, 2, "VALID")
        h = tf.reduce_mean(h, axis=[1, 2])
        return tf.matmul(h, params["logits/weights"]) + params["logits/biases"]

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            logits = forward(x, True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        opt.apply_gradients(zip(tape.gradient(loss, trainable), trainable))
        return loss

    rng = np.random.default_rng(SEED)
    x_train = x_train.astype(np.float32)
    for epoch in range(EPOCHS):
        order = rng.permutation(len(x_train))
        losses = []
        for s in range(0, len(order), BATCH):
            idx = order[s : s + BATCH]
            losses.append(float(step(shift_randomly(x_train[idx], rng), y_train[idx])))
        print(f"epoch {epoch + 1}/{EPOCHS}: loss {np.mean(losses):.4f}", file=sys.stderr)
    return {k: v.numpy() for k, v in params.items()}


def shift_randomly(images, rng, max_shift: int = 2):
    """Augmentation: move each image by up to ``max_shift`` pixels (edges repeat), so the model
    does not learn where on the 32x32 canvas the digit sits."""
    padded = np.pad(images, ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0)), mode="edge")
    out = np.empty_like(images)
    for i, (dy, dx) in enumerate(rng.integers(0, 2 * max_shift + 1, size=(len(images), 2))):
        out[i] = padded[i, dy : dy + SIZE, dx : dx + SIZE]
    return out


def build_frozen_graph(weights: dict):
    """The inference graph, TF 1.x style, weights as constants (= frozen)."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, SIZE, SIZE, 3], name="input")
        h = tf.subtract(x, MEAN, name="Sub")
        h = tf.multiply(h, 1.0 / STD, name="Mul")
        for i in range(1, len(CHANNELS) + 1):
            with tf.compat.v1.name_scope(f"conv{i}"):
                w = tf.constant(weights[f"conv{i}/weights"], name="weights")
                h = tf.nn.conv2d(h, w, [1, 1, 1, 1], "SAME", name="Conv2D")
                h = tf.raw_ops.FusedBatchNorm(
                    x=h,
                    scale=tf.constant(weights[f"conv{i}/gamma"], name="gamma"),
                    offset=tf.constant(weights[f"conv{i}/beta"], name="beta"),
                    mean=tf.constant(weights[f"conv{i}/moving_mean"], name="moving_mean"),
                    variance=tf.constant(weights[f"conv{i}/moving_variance"], name="moving_variance"),
                    epsilon=BN_EPSILON,
                    is_training=False,
                    name="BatchNorm",
                )[0]
                h = tf.nn.relu(h, name="Relu")
                if i < len(CHANNELS):
                    h = tf.nn.max_pool2d(h, 2, 2, "VALID", name="MaxPool")
        h = tf.reduce_mean(h, axis=[1, 2], name="AvgPool")
        with tf.compat.v1.name_scope("logits"):
            h = tf.matmul(h, tf.constant(weights["logits/weights"], name="weights"), name="MatMul")
            h = tf.nn.bias_add(h, tf.constant(weights["logits/biases"], name="biases"), name="BiasAdd")
        tf.nn.softmax(h, name="final_result")
    return graph.as_graph_def()


def run_graph(graph_def, images):
    from mobilebuild.graphs.execute import GraphRunner

    runner = GraphRunner(graph_def, "input", "final_result")
    try:
        return runner.run(images.astype(np.float32))
    finally:
        runner.close()


def main(argv: list[str] | None = None) -> int:
    import argparse

    from PIL import Image

    from mobilebuild.fsutil import write_if_changed
    from mobilebuild.graphs import io, runtime_ops

    parser = argparse.ArgumentParser(description="Train and write the built-in default model.")
    parser.add_argument("--out", type=Path, default=OUT, help=f"output directory (default: {OUT})")
    out_dir = parser.parse_args(argv).out

    images, labels = make_dataset()
    x_train, x_test, y_train, y_test = split(images, labels)
    weights = train(x_train, y_train)
    graph_def = build_frozen_graph(weights)
    # Written already fitted to the oldest runtime: AddV2-free, no attrs TF 1.0 does not know.
    graph_def, changes = runtime_ops.downgrade_graph(graph_def, runtime_ops.load_opset("1.0"))
    for tag in runtime_ops.bundled_tags():
        problems = runtime_ops.check_graph(graph_def, runtime_ops.load_opset(tag))
        if problems:
            raise SystemExit(f"default model does not load in {tag}: {problems[:3]}")
    probs = run_graph(graph_def, x_test)
    accuracy = float(np.mean(probs.argmax(1) == y_test))
    train_acc = float(np.mean(run_graph(graph_def, x_train).argmax(1) == y_train))

    out_dir.mkdir(parents=True, exist_ok=True)
    write_if_changed(out_dir / "digits.pb", io.serialize(graph_def))
    write_if_changed(out_dir / "labels.txt", "\n".join(LABELS) + "\n")
    img_dir = out_dir / "images"
    for cls, name in enumerate(LABELS):
        (img_dir / name).mkdir(parents=True, exist_ok=True)
        picks = np.flatnonzero(y_test == cls)[:SAMPLES_PER_CLASS]
        wanted = {img_dir / name / f"{name}_{k}.png" for k in range(len(picks))}
        for stale in set((img_dir / name).glob("*.png")) - wanted:
            stale.unlink()
        for k, idx in enumerate(picks):
            buf = BytesIO()
            Image.fromarray(x_test[idx]).save(buf, format="PNG", optimize=True)
            write_if_changed(img_dir / name / f"{name}_{k}.png", buf.getvalue())
    info = {
        "name": "digits",
        "description": "10-class digit classifier (scikit-learn digits, 32x32 RGB), made by scripts/make_default_model.py",
        "input_name": "Mul",
        "graph_input": "input",
        "output_name": "final_result",
        "input_size": SIZE,
        "mean": MEAN,
        "std": STD,
        "num_classes": 10,
        "held_out_images": int(len(y_test)),
        "held_out_accuracy": round(accuracy, 4),
        "train_accuracy": round(train_acc, 4),
        "downgrade": changes,
    }
    write_if_changed(out_dir / "model.json", json.dumps(info, indent=2) + "\n")
    total = sum(p.stat().st_size for p in out_dir.rglob("*") if p.is_file())
    print(f"held-out accuracy: {accuracy:.4f} on {len(y_test)} images (train {train_acc:.4f})")
    print(f"wrote {out_dir} ({total} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
