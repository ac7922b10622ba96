"""Fixtures for quantize / memmap / tflite: real TF graphs built once per session, a runner
for GraphDefs, and the C++ MemmappedEnv loader compiled once against TF's own pip headers."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).parent


@dataclass
class Graph:
    """A frozen test graph, its file, and how to feed it."""

    name: str
    graph_def: object
    path: Path
    input: str
    outputs: list[str]
    input_shape: tuple[int, ...]  # without the batch dimension

    def sample(self, n: int = 8, seed: int = 0) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return rng.uniform(-1, 1, size=(n, *self.input_shape)).astype(np.float32)


def _run_graph(graph_def, input_name: str, x, output: str):
    """Run a GraphDef in a tf.compat.v1 session (the way TF 1.x runtimes run it)."""
    from helpers.graphs import run_graph

    return run_graph(graph_def, {input_name: x}, output)


@pytest.fixture(scope="session")
def run_graph():
    """run_graph(graph_def, input_name, x, output_name) -> ndarray."""
    return _run_graph


def _v1_mixed_graph():
    """Conv2D/BiasAdd/Relu/MaxPool, Relu6, AvgPool, ConcatV2 on axis -1, Reshape, MatMul,
    Softmax: every op family eightbit rewrites, written in tf.compat.v1 style."""
    import tensorflow as tf

    rng = np.random.default_rng(1)
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 16, 16, 3], name="input")
        w1 = tf.constant(rng.normal(size=(3, 3, 3, 16)).astype(np.float32) * 0.3, name="conv1/weights")
        b1 = tf.constant(rng.normal(size=16).astype(np.float32) * 0.1, name="conv1/biases")
        r1 = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, w1, 1, "SAME"), b1), name="conv1/Relu")
        p1 = tf.nn.max_pool2d(r1, 2, 2, "SAME", name="pool1")
        w2 = tf.constant(rng.normal(size=(3, 3, 16, 16)).astype(np.float32) * 0.2, name="conv2/weights")
        r2 = tf.nn.relu6(tf.nn.conv2d(p1, w2, 1, "VALID"), name="conv2/Relu6")
        a2 = tf.nn.avg_pool2d(p1, 3, 1, "VALID", name="pool2")
        cat = tf.concat([r2, a2], axis=-1, name="concat")
        flat = tf.reshape(cat, [-1, 6 * 6 * 32], name="flatten")
        wd = tf.constant(rng.normal(size=(6 * 6 * 32, 10)).astype(np.float32) * 0.05, name="fc/weights")
        bd = tf.constant(rng.normal(size=10).astype(np.float32), name="fc/biases")
        logits = tf.nn.bias_add(tf.matmul(flat, wd), bd, name="logits")
        tf.nn.softmax(logits, name="probs")
    return g.as_graph_def()


def _v1_fallback_graph():
    """Quantizable ops around ops eightbit leaves in float (Tanh, Mul by a tensor, Sigmoid,
    a depthwise conv with float weights): the rewrite must bridge them with Dequantize. Also the
    old Concat op and x + vector (rewritten as QuantizedConcat / QuantizedBiasAdd)."""
    import tensorflow as tf

    rng = np.random.default_rng(2)
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 12, 12, 4], name="input")
        w1 = tf.constant(rng.normal(size=(3, 3, 4, 8)).astype(np.float32) * 0.3)
        c1 = tf.nn.conv2d(x, w1, 1, "SAME")
        t = tf.tanh(c1, name="tanh")
        dw = tf.constant(rng.normal(size=(3, 3, 8, 1)).astype(np.float32) * 0.3)
        d = tf.nn.depthwise_conv2d(t, dw, [1, 1, 1, 1], "SAME", name="depthwise")
        gate = tf.sigmoid(d, name="gate")
        m = tf.multiply(d, gate, name="swish")
        r = tf.nn.relu(m, name="relu")
        # The pre-ConcatV2 op (axis first), as TF 1.0 graphs have it, and a vector AddV2.
        both = tf.raw_ops.Concat(concat_dim=tf.constant(3), values=[r, t], name="concat_v1")
        shifted = tf.add(both, tf.constant(rng.normal(size=16).astype(np.float32) * 0.1), name="shift")
        flat = tf.reshape(shifted, [-1, 12 * 12 * 16])
        wd = tf.constant(rng.normal(size=(12 * 12 * 16, 5)).astype(np.float32) * 0.05)
        tf.identity(tf.matmul(flat, wd), name="logits")
    return g.as_graph_def()


def _keras_graph():
    """A Keras 3 model frozen the TF 2.x way (convert_variables_to_constants_v2): AddV2,
    unfused batch norm, Conv2D with dilations attrs... what users actually bring."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    keras = tf.keras
    keras.utils.set_random_seed(3)
    inp = keras.Input((20, 20, 3), name="image")
    h = keras.layers.Conv2D(12, 3, padding="same", activation="relu")(inp)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.MaxPooling2D(2)(h)
    h = keras.layers.Conv2D(24, 3, activation="relu")(h)
    h = keras.layers.AveragePooling2D(2)(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(32, activation="relu")(h)
    out = keras.layers.Dense(6, activation="softmax")(h)
    model = keras.Model(inp, out)
    # Non-trivial batch-norm statistics, as after training.
    bn = model.layers[2]
    bn.moving_mean.assign(np.linspace(-0.2, 0.3, 12).astype(np.float32))
    bn.moving_variance.assign(np.linspace(0.5, 2.0, 12).astype(np.float32))
    fn = tf.function(lambda t: model(t, training=False)).get_concrete_function(tf.TensorSpec([None, 20, 20, 3], tf.float32))
    frozen = convert_variables_to_constants_v2(fn)
    return frozen.graph.as_graph_def()


def _sinks(graph_def):
    from mobilebuild.graphs.quantize import sink_names

    return sink_names(graph_def)


@pytest.fixture(scope="session")
def graphs(tmp_path_factory) -> dict[str, Graph]:
    """name -> Graph, written to .pb files once per session."""
    base = tmp_path_factory.mktemp("model_formats_graphs")
    made = {}
    for name, builder, inp, shape, outputs in [
        ("mixed", _v1_mixed_graph, "input", (16, 16, 3), ["logits", "probs"]),
        ("fallback", _v1_fallback_graph, "input", (12, 12, 4), ["logits"]),
        ("keras", _keras_graph, None, (20, 20, 3), None),
    ]:
        gd = builder()
        if inp is None:
            inp = next(n.name for n in gd.node if n.op == "Placeholder")
            outputs = _sinks(gd)
        path = base / f"{name}.pb"
        path.write_bytes(gd.SerializeToString(deterministic=True))
        made[name] = Graph(name, gd, path, inp, outputs, shape)
    return made


# --------------------------------------------------------------------------------------------
# The C++ loader: TensorFlow's own MemmappedEnv, as the iOS camera example uses it


@dataclass
class MemmappedRunner:
    binary: Path

    def run(self, package: Path, input_name: str, output_name: str, x: np.ndarray, out_shape, workdir: Path):
        inp = workdir / "input.raw"
        out = workdir / "output.raw"
        np.ascontiguousarray(x, dtype=np.float32).tofile(inp)
        proc = subprocess.run(
            [str(self.binary), str(package), input_name, output_name, str(inp), str(out), *map(str, x.shape)],
            capture_output=True, text=True, timeout=300,
        )
        assert proc.returncode == 0, f"C++ MemmappedEnv run failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
        return np.fromfile(out, dtype=np.float32).reshape(out_shape)


@pytest.fixture(scope="session")
def memmapped_runner(tmp_path_factory) -> MemmappedRunner:
    """memmapped_run.cc compiled once per session against the headers and shared libraries of
    the installed TensorFlow wheel (tf.sysconfig)."""
    import tensorflow as tf

    gxx = shutil.which("g++")
    assert gxx, "g++ is required for the MemmappedEnv test (apt install g++)"
    lib = tf.sysconfig.get_lib()
    binary = tmp_path_factory.mktemp("memmapped_run") / "memmapped_run"
    cmd = [
        gxx, "-w", "-O1", *tf.sysconfig.get_compile_flags(), str(HERE / "memmapped_run.cc"), "-o", str(binary),
        # --no-as-needed: nothing references libtensorflow_cc by symbol except via static
        # registration (DirectSession's factory), so the linker would otherwise drop it.
        "-Wl,--no-as-needed", f"-L{lib}", "-l:libtensorflow_cc.so.2", "-l:libtensorflow_framework.so.2",
        f"-Wl,-rpath,{lib}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"compiling the MemmappedEnv loader failed:\n{proc.stderr[-4000:]}"
    return MemmappedRunner(binary)
