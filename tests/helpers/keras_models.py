"""Small real Keras models saved the ways users save them today: ``.keras`` (model.save), ``.h5``
(legacy model.save), a SavedModel directory (model.export). Seeded random weights; tiny so that
freezing them costs a second or two. Shared by the freeze, app and retrain tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class KerasFiles:
    model: object  # the keras.Model (to compare predictions)
    keras: Path
    h5: Path
    savedmodel: Path
    size: int

    def pixels(self, n: int = 3, seed: int = 0):
        """Raw 0..255 pixels as the app feeds them (the models normalise inside)."""
        return np.random.default_rng(seed).integers(0, 256, (n, self.size, self.size, 3)).astype(np.float32)


def image_classifier(size: int = 16, classes: int = 3, *, rescaling=(1 / 127.5, -1.0), normalization=None, seed: int = 11):
    """Input 'image' -> [Rescaling] [Normalization] -> Conv2D -> BatchNorm -> Dropout -> GAP ->
    Dense softmax 'probs' (batch norm with non-trivial statistics, dropout: training-only op)."""
    import keras

    keras.utils.set_random_seed(seed)
    inp = keras.Input((size, size, 3), name="image")
    x = inp
    if rescaling is not None:
        x = keras.layers.Rescaling(rescaling[0], offset=rescaling[1])(x)
    if normalization is not None:
        mean, var = normalization
        x = keras.layers.Normalization(axis=None, mean=mean, variance=var)(x)
    x = keras.layers.Conv2D(6, 3, padding="same")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Dropout(0.5)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(classes, activation="softmax", name="probs")(x)
    model = keras.Model(inp, x)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.3, c), rng.normal(0, 0.5, c), rng.uniform(0.3, 2.0, c)])
    return model


def save_all(model, directory: Path, name: str = "model") -> KerasFiles:
    """The model as .keras, .h5 and a SavedModel directory (quietly: export prints its endpoints)."""
    import contextlib
    import io

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    keras_path, h5_path, sm_path = directory / f"{name}.keras", directory / f"{name}.h5", directory / f"{name}_savedmodel"
    model.save(keras_path)
    model.save(h5_path)
    with contextlib.redirect_stdout(io.StringIO()):
        model.export(str(sm_path))
    return KerasFiles(model, keras_path, h5_path, sm_path, int(model.inputs[0].shape[1]))


def feature_extractor(size: int = 32, features: int = 16, seed: int = 21):
    """A tiny image feature extractor (a stand-in for MobileNetV2 without the download): raw
    pixels in, a feature vector out; normalisation (x / 127.5 - 1) inside."""
    import keras

    keras.utils.set_random_seed(seed)
    inp = keras.Input((size, size, 3), name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inp)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(features, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="features")(x)
    return keras.Model(inp, x)
