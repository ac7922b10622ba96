"""The built-in default model shipped inside the package (no TensorFlow imported here).

A small real digit classifier (see scripts/make_default_model.py and data/default/model.json),
its labels, and a few held-out sample images laid out as ``class_name/*.png`` so that
``model compare --labels-from-dirs`` measures accuracy on them.
"""

from __future__ import annotations

import json
from pathlib import Path

from mobilebuild.paths import DATA_DIR

DEFAULT_DIR = DATA_DIR / "default"


def default_model() -> Path:
    """The frozen GraphDef of the default model (already fits every TF 1.0 - 1.4 mobile runtime)."""
    return DEFAULT_DIR / "digits.pb"


def default_labels() -> Path:
    return DEFAULT_DIR / "labels.txt"


def sample_images_dir() -> Path:
    """Held-out sample images, one sub-directory per class (named like the labels)."""
    return DEFAULT_DIR / "images"


def sample_images() -> list[Path]:
    return sorted(p for p in sample_images_dir().rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))


def default_info() -> dict:
    """What make_default_model.py recorded: input/output names, mean/std, held-out accuracy."""
    return json.loads((DEFAULT_DIR / "model.json").read_text())
