"""`model inspect --nodes` lists node names (the hint for an unknown node points there); a
labels file with a blank line or a directory given as --labels is said as such."""

from __future__ import annotations

import json

from mobilebuild import defaults


def _one_error(r, text):
    assert r.code == 1, r.output
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and text in errors[0], r.stderr
    assert "hint:" in r.stderr and "Traceback" not in r.output


def test_inspect_nodes_lists_every_node_on_stdout(cli):
    from mobilebuild.graphs import io

    graph = io.load_graph_def(defaults.default_model())
    r = cli("model", "inspect", "--nodes")
    assert r.code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == [n.name for n in graph.node]
    softmax = next(line for line in lines if line.startswith("final_result\t"))
    assert softmax.split("\t")[1] == "Softmax"
    data = json.loads(cli("--json", "model", "inspect", "--nodes").stdout)
    assert len(data["nodes"]) == len(graph.node) and data["nodes"][0]["name"] == graph.node[0].name


def test_unknown_node_hint_points_at_the_node_list(cli, tmp_path):
    r = cli("model", "optimize", defaults.default_model(), "-o", tmp_path / "o.pb", "--output-names", "qqqqqqqq")
    _one_error(r, "'qqqqqqqq' is not in the graph")
    assert "model inspect MODEL --nodes" in r.stderr
    assert not (tmp_path / "o.pb").exists()


def test_labels_with_a_blank_line(cli, tmp_path):
    labels = tmp_path / "labels.txt"
    names = defaults.default_labels().read_text().splitlines()
    labels.write_text("\n".join(names[:3] + [""] + names[3:]) + "\n")
    image = next(defaults.sample_images_dir().glob("*/*"))
    r = cli("model", "label", defaults.default_model(), "--image", image, "--labels", labels)
    _one_error(r, "line 4 is blank")


def test_labels_given_a_directory(cli, tmp_path):
    (tmp_path / "retrained_labels.txt").write_text("a\n")
    image = next(defaults.sample_images_dir().glob("*/*"))
    r = cli("model", "label", defaults.default_model(), "--image", image, "--labels", tmp_path)
    _one_error(r, f"--labels {tmp_path} is a directory")
    assert f"--labels {tmp_path / 'retrained_labels.txt'}" in r.stderr
