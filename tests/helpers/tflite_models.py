"""A small image classifier shaped like the TFLite camera demos' MobileNet (conv, depthwise conv,
1x1 conv, pooling, fully connected, softmax), frozen as a GraphDef, and sample images for
calibrating it. Deterministic weights; not trained."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SIZE = 24
CLASSES = 20  # 64 x 20 weights: big enough for dynamic-range quantization (>= 1024)


def build_classifier_graph(directory: Path, pool: str = "avg", name: str | None = None) -> Path:
    """``pool="avg"``: AVERAGE_POOL_2D (every TFLite runtime has it); ``"mean"``: MEAN (from 1.6)."""
    import tensorflow as tf

    rng = np.random.default_rng(4)
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [1, SIZE, SIZE, 3], name="input")
        h = tf.nn.conv2d(x, tf.constant(rng.normal(0, 0.3, (3, 3, 3, 32)).astype(np.float32)), [1, 2, 2, 1], "SAME")
        h = tf.nn.relu6(h + tf.constant(rng.normal(0, 0.1, 32).astype(np.float32)))
        h = tf.nn.depthwise_conv2d(h, tf.constant(rng.normal(0, 0.3, (3, 3, 32, 1)).astype(np.float32)), [1, 1, 1, 1], "SAME")
        h = tf.nn.relu6(h)
        h = tf.nn.conv2d(h, tf.constant(rng.normal(0, 0.2, (1, 1, 32, 64)).astype(np.float32)), [1, 1, 1, 1], "SAME")
        h = tf.nn.relu6(h)
        if pool == "avg":
            h = tf.nn.avg_pool2d(h, [1, SIZE // 2, SIZE // 2, 1], [1, 1, 1, 1], "VALID")
            h = tf.reshape(h, [1, 64])
        else:
            h = tf.reduce_mean(h, axis=[1, 2])
        h = tf.matmul(h, tf.constant(rng.normal(0, 0.3, (64, CLASSES)).astype(np.float32)))
        tf.nn.softmax(h, name="output")
    path = Path(directory) / (name or f"classifier_{pool}.pb")
    path.write_bytes(graph.as_graph_def().SerializeToString(deterministic=True))
    return path


def write_images(directory: Path, n: int = 12, seed: int = 1) -> Path:
    from PIL import Image

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (SIZE + 8, SIZE + 8, 3), dtype=np.uint8)).save(directory / f"{i}.png")
    return directory


def write_labels(path: Path, n: int = CLASSES) -> Path:
    path.write_text("".join(f"class_{i}\n" for i in range(n)))
    return path
