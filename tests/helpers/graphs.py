"""Real TensorFlow graphs for tests, written as frozen GraphDef files (others may reuse them).

Each builder writes ``<dir>/<name>.pb`` and returns a GraphFile telling how to feed it. Weights are
deterministic random values (seeded), so outputs are stable; they are not trained models (the
built-in default model, mobilebuild.defaults, is the trained one).

- ``build_retrain_graph``: the shape of every model made by TF's retrain.py:
  DecodeJpeg/contents -> DecodeJpeg -> Cast -> ExpandDims -> ResizeBilinear -> Sub -> Mul -> conv
  -> FusedBatchNormV3 -> ... -> final_result (Softmax). Size 64, mean 128, std 128.
- ``build_keras3_bn_graph``: a Keras 3 functional model with BatchNormalization (non-trivial
  moving statistics), frozen through tf.function + convert_variables_to_constants_v2 (no tf-keras):
  batch norm appears as AddV2/Rsqrt/Mul/Sub ops.
- ``build_compat_v1_graph``: tf.compat.v1 style (variables, session, convert_variables_to_constants)
  with ResizeBilinear, Cast, MaxPool, MatMul, FusedBatchNormV3 and AddV2.
- ``build_mobilenet_graph``: keras.applications.MobileNet(weights=None) frozen (~17 MB): size/speed only.
- ``build_small_graph``: a few ops with one chosen feature (dilated conv, half-pixel resize, LeakyRelu...).
"""

from __future__ import annotations

import io as _io
from dataclasses import dataclass
from pathlib import Path

import numpy as np


# The TF-Mobile runtimes whose op sets are bundled (toolchains/tf-mobile-ops).
TAGS = ["v1.0.0", "v1.1.0", "v1.2.0", "v1.3.0", "v1.4.0"]


@dataclass
class GraphFile:
    path: Path
    graph_def: object
    input_name: str  # the node a test feeds (float NHWC unless noted)
    output_name: str
    input_shape: tuple  # shape of one fed batch
    raw_input: str | None = None  # e.g. DecodeJpeg/contents for retrain graphs

    def sample_input(self, seed: int = 0, batch: int | None = None):
        shape = self.input_shape if batch is None else (batch,) + tuple(self.input_shape[1:])
        return np.random.default_rng(seed).uniform(-1.0, 1.0, size=shape).astype(np.float32)


def _write(graph_def, path: Path) -> Path:
    path.write_bytes(graph_def.SerializeToString(deterministic=True))
    return path


def _rng(seed: int):
    return np.random.default_rng(seed)


def build_retrain_graph(directory: Path, size: int = 64, classes: int = 5, name: str = "retrained") -> GraphFile:
    import tensorflow as tf

    rng = _rng(2)
    graph = tf.Graph()
    with graph.as_default():
        contents = tf.compat.v1.placeholder(tf.string, [], name="DecodeJpeg/contents")
        decoded = tf.io.decode_jpeg(contents, channels=3, name="DecodeJpeg")
        as_float = tf.cast(decoded, tf.float32, name="Cast")
        batched = tf.expand_dims(as_float, 0, name="ExpandDims")
        resized = tf.compat.v1.image.resize_bilinear(batched, tf.constant([size, size], name="ResizeBilinear/size"), name="ResizeBilinear")
        sub = tf.subtract(resized, 128.0, name="Sub")
        mul = tf.multiply(sub, 1.0 / 128.0, name="Mul")
        w = tf.constant(rng.normal(0, 0.3, (3, 3, 3, 8)).astype(np.float32), name="conv/weights")
        h = tf.nn.conv2d(mul, w, [1, 2, 2, 1], "SAME", name="conv/Conv2D")
        h = tf.compat.v1.nn.fused_batch_norm(
            h,
            tf.constant(rng.uniform(0.5, 1.5, 8).astype(np.float32)),
            tf.constant(rng.normal(0, 0.2, 8).astype(np.float32)),
            mean=tf.constant(rng.normal(0, 0.5, 8).astype(np.float32)),
            variance=tf.constant(rng.uniform(0.5, 2.0, 8).astype(np.float32)),
            is_training=False,
            name="conv/BatchNorm",
        )[0]
        h = tf.nn.relu(h, name="conv/Relu")
        h = tf.reduce_mean(h, axis=[1, 2], name="pool")
        h = tf.matmul(h, tf.constant(rng.normal(0, 0.5, (8, classes)).astype(np.float32)), name="final/MatMul")
        h = tf.add(h, tf.constant(rng.normal(0, 0.1, classes).astype(np.float32)), name="final/add")
        tf.nn.softmax(h, name="final_result")
    gd = graph.as_graph_def()
    path = _write(gd, Path(directory) / f"{name}.pb")
    return GraphFile(path, gd, "Mul", "final_result", (1, size, size, 3), raw_input="DecodeJpeg/contents")


def jpeg_bytes(size: int = 40, seed: int = 0) -> bytes:
    from PIL import Image

    arr = _rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buf = _io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG")
    return buf.getvalue()


def build_keras3_bn_graph(directory: Path, size: int = 24, classes: int = 4, name: str = "keras3_bn") -> GraphFile:
    import keras
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    keras.utils.set_random_seed(3)
    inp = keras.Input((size, size, 3), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inp)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=True)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU(max_value=6.0)(x)
    x = keras.layers.Conv2D(12, 1, use_bias=True)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(16)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Dense(classes, activation="softmax")(x)
    model = keras.Model(inp, x)
    rng = _rng(4)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, c).astype(np.float32),
                    rng.normal(0, 0.3, c).astype(np.float32),
                    rng.normal(0, 0.5, c).astype(np.float32),
                    rng.uniform(0.3, 2.0, c).astype(np.float32),
                ]
            )
    fn = tf.function(lambda t: model(t, training=False)).get_concrete_function(
        tf.TensorSpec([None, size, size, 3], tf.float32, name="image")
    )
    frozen = convert_variables_to_constants_v2(fn)
    gd = frozen.graph.as_graph_def()
    output = frozen.outputs[0].name.split(":")[0]
    path = _write(gd, Path(directory) / f"{name}.pb")
    return GraphFile(path, gd, "image", output, (2, size, size, 3))


def build_compat_v1_graph(directory: Path, size: int = 20, classes: int = 6, name: str = "compat_v1") -> GraphFile:
    import tensorflow as tf

    rng = _rng(5)
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 16, 16, 3], name="input")
        h = tf.compat.v1.image.resize_bilinear(x, [size, size], align_corners=False, name="resize")
        w1 = tf.compat.v1.get_variable("w1", initializer=rng.normal(0, 0.3, (3, 3, 3, 8)).astype(np.float32))
        h = tf.nn.conv2d(h, w1, [1, 1, 1, 1], "SAME", name="conv1")
        h = tf.compat.v1.nn.fused_batch_norm(
            h,
            tf.compat.v1.get_variable("g1", initializer=rng.uniform(0.5, 1.5, 8).astype(np.float32)),
            tf.compat.v1.get_variable("b1", initializer=rng.normal(0, 0.2, 8).astype(np.float32)),
            mean=tf.compat.v1.get_variable("m1", initializer=rng.normal(0, 0.3, 8).astype(np.float32)),
            variance=tf.compat.v1.get_variable("v1", initializer=rng.uniform(0.5, 1.5, 8).astype(np.float32)),
            is_training=False,
            name="bn1",
        )[0]
        h = tf.nn.relu6(h)
        h = tf.nn.max_pool2d(h, 2, 2, "VALID", name="pool1")
        h = tf.cast(tf.cast(h, tf.float64), tf.float32, name="roundtrip")
        h = tf.reshape(h, [-1, (size // 2) * (size // 2) * 8], name="flatten")
        w2 = tf.compat.v1.get_variable("w2", initializer=rng.normal(0, 0.1, ((size // 2) ** 2 * 8, classes)).astype(np.float32))
        b2 = tf.compat.v1.get_variable("b2", initializer=rng.normal(0, 0.1, classes).astype(np.float32))
        h = tf.matmul(h, w2) + b2
        tf.nn.softmax(h, name="probs")
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            gd = tf.compat.v1.graph_util.convert_variables_to_constants(sess, graph.as_graph_def(), ["probs"])
    path = _write(gd, Path(directory) / f"{name}.pb")
    return GraphFile(path, gd, "input", "probs", (3, 16, 16, 3))


def build_mobilenet_graph(directory: Path, size: int = 224, name: str = "mobilenet") -> GraphFile:
    import keras
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    keras.utils.set_random_seed(6)
    model = keras.applications.MobileNet(weights=None, input_shape=(size, size, 3))
    fn = tf.function(lambda t: model(t, training=False)).get_concrete_function(
        tf.TensorSpec([None, size, size, 3], tf.float32, name="input")
    )
    frozen = convert_variables_to_constants_v2(fn)
    gd = frozen.graph.as_graph_def()
    path = _write(gd, Path(directory) / f"{name}.pb")
    return GraphFile(path, gd, "input", frozen.outputs[0].name.split(":")[0], (1, size, size, 3))


def build_small_graph(directory: Path, feature: str) -> GraphFile:
    """input [N,8,8,3] -> one op with ``feature`` -> Softmax 'out'. Features: plain, dilated_conv,
    half_pixel_resize, leaky_relu, addv2."""
    import tensorflow as tf

    rng = _rng(7)
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 3], name="input")
        w = tf.constant(rng.normal(0, 0.3, (3, 3, 3, 4)).astype(np.float32), name="w")
        if feature == "dilated_conv":
            h = tf.nn.conv2d(x, w, 1, "SAME", dilations=2, name="dilated")
        elif feature == "half_pixel_resize":
            h = tf.compat.v1.image.resize_bilinear(x, [10, 10], half_pixel_centers=True, name="resize_hp")
        elif feature == "leaky_relu":
            h = tf.nn.leaky_relu(tf.nn.conv2d(x, w, 1, "SAME"), alpha=0.1, name="leaky")
        elif feature == "addv2":
            h = tf.nn.conv2d(x, w, 1, "SAME") + tf.constant(rng.normal(0, 1, 4).astype(np.float32))
        else:
            h = tf.nn.conv2d(x, w, 1, "SAME")
        h = tf.reduce_mean(h, axis=[1, 2])
        tf.nn.softmax(h, name="out")
    gd = graph.as_graph_def()
    path = _write(gd, Path(directory) / f"small_{feature}.pb")
    return GraphFile(path, gd, "input", "out", (2, 8, 8, 3))


def run_graph(graph_def, feeds: dict, output: str):
    """Outputs of ``output`` for ``feeds`` ({node name: array}), via a tf.compat.v1 session."""
    import tensorflow as tf

    from mobilebuild.graphs.nodes import import_graph

    with tf.compat.v1.Session(graph=import_graph(graph_def)) as sess:
        return sess.run(f"{output}:0", {f"{k}:0": v for k, v in feeds.items()})


def assert_close(a, b, rtol=1e-5):
    """Equal to 1e-5 relative (with an absolute floor for values near 0)."""
    import numpy as np

    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape
    scale = np.maximum(np.abs(a), np.abs(b)).max()
    assert np.abs(a - b).max() <= rtol * max(scale, 1e-6), f"max diff {np.abs(a - b).max()} (scale {scale})"


def one_line_error(result) -> str:
    """The error line of a failed CLI run, checking the bad-input contract: exit 1, exactly one
    'error:' line plus a hint, no traceback."""
    assert result.code == 1, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "hint:" in result.stderr
    return errors[0]
