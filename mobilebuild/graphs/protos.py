"""The protobuf messages of a model file: parsing a GraphDef, with a clear error for what is not one.

Kept below io and memmap (both parse GraphDefs) so neither has to import the other for it.
"""

from __future__ import annotations

from mobilebuild.errors import ModelError


def parse_graph_def(data: bytes, source: str = "model"):
    """Bytes -> GraphDef, or a ModelError saying why it is not one."""
    from google.protobuf.message import DecodeError

    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(data)
    except (DecodeError, RuntimeWarning, ValueError) as exc:
        raise ModelError(
            f"{source} is not a TensorFlow GraphDef (it does not parse: {exc})".replace("\n", " "),
            "pass a frozen graph .pb (e.g. from freeze_graph or retrain.py); truncated downloads fail this way too",
        ) from exc
    if not graph_def.node or any(not n.op or not n.name for n in graph_def.node):
        raise ModelError(
            f"{source} is not a TensorFlow GraphDef (no valid nodes)",
            "pass a frozen graph .pb (e.g. from freeze_graph or retrain.py)",
        )
    return graph_def
