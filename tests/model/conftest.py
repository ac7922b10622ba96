"""Session-scoped real TF graphs for the model toolkit tests (built once, ~15 s)."""

from __future__ import annotations

import pytest

from helpers import graphs as G


@pytest.fixture(scope="session")
def graph_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("graphs")


@pytest.fixture(scope="session")
def retrain(graph_dir):
    return G.build_retrain_graph(graph_dir)


@pytest.fixture(scope="session")
def keras3(graph_dir):
    return G.build_keras3_bn_graph(graph_dir)


@pytest.fixture(scope="session")
def compat_v1(graph_dir):
    return G.build_compat_v1_graph(graph_dir)


@pytest.fixture(scope="session")
def default_graph():
    from mobilebuild import defaults
    from mobilebuild.graphs import io

    return G.GraphFile(defaults.default_model(), io.load_graph_def(defaults.default_model()), "Mul", "final_result", (4, 32, 32, 3), raw_input="input")


@pytest.fixture(scope="session")
def small(graph_dir):
    """small('dilated_conv') -> GraphFile, cached per feature."""
    cache = {}

    def _get(feature):
        if feature not in cache:
            cache[feature] = G.build_small_graph(graph_dir, feature)
        return cache[feature]

    return _get



