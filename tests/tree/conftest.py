"""Fixtures of the tree/WORKSPACE/patch area: TF-shaped git trees, fake SDK/NDK layouts, models."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.tftrees import make_ndk, make_sdk, make_tf_tree


@pytest.fixture
def sdk(tmp_path) -> Path:
    return make_sdk(tmp_path / "sdk", platforms=(21, 23, 25), build_tools=("23.0.1", "25.0.1", "25.0.2", "26.0.1"))


@pytest.fixture
def ndk(tmp_path) -> Path:
    return make_ndk(tmp_path / "android-ndk-r12b")


@pytest.fixture
def tf_tree(tmp_path):
    """tf_tree("1.2", **kw) -> Path of a fresh TF-shaped git tree at tag v1.2.0."""
    count = [0]

    def _make(version: str = "1.1", **kw) -> Path:
        count[0] += 1
        return make_tf_tree(tmp_path / f"tf-{version}-{count[0]}", version, **kw)

    return _make


@pytest.fixture(scope="session")
def retrain_model(tmp_path_factory):
    """A retrain.py-shaped frozen graph (DecodeJpeg ... Mul ... final_result) + its 5 labels."""
    from helpers.graphs import build_retrain_graph

    d = tmp_path_factory.mktemp("retrain")
    g = build_retrain_graph(d, size=64, classes=5, name="retrained_graph")
    labels = d / "retrained_labels.txt"
    labels.write_text("daisy\ndandelion\nroses\nsunflowers\ntulips\n")
    return g.path, labels
