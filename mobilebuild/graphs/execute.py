"""One way to run a model on a batch of preprocessed images, whatever its format.

GraphDefs run in a tf.compat.v1 session (an inner input like ``Mul`` is cut into a Placeholder
first, so any batch size works); memmapped packages run with their regions inlined back into
Consts (Python cannot hand a MemmappedEnv to a session); ``.tflite`` runs through LiteRT.
"""

from __future__ import annotations

from pathlib import Path

from mobilebuild.errors import ModelError
from mobilebuild.graphs import io, memmap, nodes as gn
from mobilebuild.graphs.appinfo import app_info
from mobilebuild.graphs.optimize import cut_graph
from mobilebuild.graphs.prepare import resolve_app_values
from mobilebuild.graphs.tflite import TfliteRunner


class ModelRunner:
    """``run(batch)`` -> outputs [N, classes]; plus what the model expects (size, mean, std)."""

    format: str = ""
    path: Path
    size_bytes: int = 0
    input_name: str = ""
    output_name: str = ""
    input_size: int = 0
    channels: int = 3
    mean: float = 0.0
    std: float = 1.0
    num_classes: int | None = None

    def run(self, batch):  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass


class GraphRunner(ModelRunner):
    def __init__(self, graph_def, input_name: str, output_name: str):
        import tensorflow as tf

        if gn.node_map(graph_def)[input_name].op != "Placeholder":
            graph_def, _ = cut_graph(graph_def, [input_name], [output_name])
        self.graph_def = graph_def
        self.input_name, self.output_name = input_name, output_name
        graph = gn.import_graph(graph_def)
        self._session = tf.compat.v1.Session(graph=graph)
        self._fetch = graph.get_tensor_by_name(f"{output_name}:0")
        self._feed = graph.get_tensor_by_name(f"{input_name}:0")
        # A graph built for a batch of 1 (reshapes baked for it) runs a larger batch item by item.
        self._one_at_a_time = self._feed.shape.rank is not None and self._feed.shape.as_list()[:1] == [1]

    def run(self, batch):
        import numpy as np

        batch = np.asarray(batch, dtype=self._feed.dtype.as_numpy_dtype)
        if self._one_at_a_time and len(batch) != 1:
            return np.concatenate([self.run(batch[i : i + 1]) for i in range(len(batch))])
        try:
            return np.asarray(self._session.run(self._fetch, {self._feed: batch}))
        except Exception as exc:  # TF's errors are long; the first line says what failed
            raise ModelError(
                f"the model failed to run: {str(exc).strip().splitlines()[0]}",
                "check --input-name / --input-size against `mobilebuild model inspect`",
            ) from exc

    def close(self) -> None:
        self._session.close()


class TfliteModelRunner(ModelRunner):
    def __init__(self, path):
        self._runner = TfliteRunner(path)
        self.input_name, self.output_name = self._runner.input_name, self._runner.output_name

    def run(self, batch):
        return self._runner.run(batch)


def open_model(path, *, input_name=None, output_name=None, input_size=None, mean=None, std=None, reference=None) -> ModelRunner:
    """A runner for ``path`` with the input/output, size and mean/std auto-detected unless given.
    ``reference``: a runner of the graph a .tflite was converted from, to learn its normalisation."""
    model = io.load_model(path)
    if model.format == io.TFLITE:
        return _open_tflite(model, input_size, mean, std, getattr(reference, "app", None))
    if model.graph_def is None:
        raise ModelError(
            f"{model.path} is a {model.format}; this command runs frozen GraphDefs, memmapped packages and .tflite",
            "freeze it to a .pb or convert it with `mobilebuild model tflite`",
        )
    graph_def = model.graph_def
    if model.format == io.MEMMAPPED:
        graph_def = memmap.inline_regions(graph_def, model.path, model.regions)

    specs = gn.tensor_specs(graph_def)
    app = app_info(graph_def, specs)
    values = resolve_app_values(graph_def, app, specs, input_name, output_name, input_size, mean, std)
    runner = GraphRunner(graph_def, values["input_name"], values["output_name"])
    runner.app = app
    runner.format, runner.path, runner.size_bytes = model.format, model.path, model.size_bytes
    for key in ("input_size", "mean", "std", "channels", "num_classes"):
        setattr(runner, key, values[key])
    return runner


def _open_tflite(model, input_size, mean, std, reference_app=None) -> ModelRunner:
    runner = TfliteModelRunner(model.path)
    runner.format, runner.path, runner.size_bytes = model.format, model.path, model.size_bytes
    shape = runner._runner.input_shape
    runner.input_size = int(input_size or (shape[1] if len(shape) == 4 else 0))
    runner.channels = shape[3] if len(shape) == 4 else 3
    if not runner.input_size:
        raise ModelError(f"the input size of {model.path} is unknown", "pass --input-size PIXELS")
    if (mean is None or std is None) and reference_app is not None:
        mean, std = _normalisation_from(reference_app, runner.input_name, mean, std)
    if mean is None or std is None:
        raise ModelError(
            f"{model.path} is a .tflite: it keeps no record of its input normalisation",
            "pass --mean and --std (the values of the graph it was converted from; `model inspect` on the .pb shows them)",
        )
    runner.mean, runner.std = float(mean), float(std)
    return runner


def _normalisation_from(app, tflite_input: str, mean, std):
    """A .tflite converted from a graph feeds the graph's raw input (which normalises itself:
    0/1) or the node after the normalisation (the graph's mean/std)."""
    name = tflite_input.split(":")[0]
    name = name[len("serving_default_") :] if name.startswith("serving_default_") else name
    guess = app.normalisation_of(name)
    if guess is None:
        return mean, std
    return (guess[0] if mean is None else mean, guess[1] if std is None else std)
