"""The graph commands that only read and rewrite protobuf stay light: `model inspect`, `check`,
`downgrade` and `memmap` import neither numpy nor pydantic (each costs a sizeable share of
these commands' time), and the int decoding shape inference uses instead of numpy gives what
numpy gives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mobilebuild import defaults
from mobilebuild.graphs import protos

REPO = Path(__file__).resolve().parents[2]

_PROBE = r"""
import json, sys
from mobilebuild.cli import hoist_global_flags, run
codes = [run(hoist_global_flags(args)) for args in json.loads(sys.argv[1])]
sys.stdout.flush()
print(json.dumps({"codes": codes, "loaded": [m for m in ("numpy", "pydantic", "tensorflow") if m in sys.modules]}), file=sys.stderr)
"""


def test_protobuf_only_commands_import_no_numpy(tmp_path, graphs):
    commands = []
    for model in (defaults.default_model(), graphs["keras"].path):
        m, out = str(model), tmp_path / model.stem
        out.mkdir()
        commands += [
            ["model", "inspect", m],
            ["model", "inspect", m, "--tf-version", "1.1", "--json"],
            ["model", "downgrade", m, "-o", str(out / "down.pb"), "--tf-version", "1.1"],
            ["model", "check", str(out / "down.pb"), "--tf-version", "1.1"],
            ["model", "memmap", m, "-o", str(out / "m.mm"), "--min-conversion-tensor-size", "1000"],
            ["model", "inspect", str(out / "m.mm")],
        ]
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), NO_COLOR="1")
    env.pop("MOBILEBUILD_GRAPH_BACKEND", None)
    proc = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(commands)], capture_output=True, text=True, env=env, timeout=600)
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    assert report == {"codes": [0] * len(commands), "loaded": []}, proc.stderr


def _tensor(dtype, dims, content=None, field=None, values=()):
    t = protos.TensorProto(dtype=dtype)
    protos.set_shape(t.tensor_shape, dims)
    if content is not None:
        t.tensor_content = content
    if field:
        getattr(t, field).extend(values)
    return t


CASES = [
    _tensor(protos.DT_INT32, [4, 2], np.arange(-4, 4, dtype=np.int32).tobytes()),
    _tensor(protos.DT_INT64, [3], np.array([1, -(2**40), 7], np.int64).tobytes()),
    _tensor(protos.DT_INT32, [4], field="int_val", values=[3, 9]),  # the last value repeats
    _tensor(protos.DT_INT32, [2, 2], field="int_val", values=[]),  # no values: zeros
    _tensor(protos.DT_INT32, [], field="int_val", values=[-1]),
    _tensor(protos.DT_INT64, [2], field="int64_val", values=[5, 2**40]),
    _tensor(protos.DT_UINT8, [3], np.array([0, 200, 255], np.uint8).tobytes()),
    _tensor(protos.DT_UINT8, [2], field="int_val", values=[250]),
    _tensor(protos.DT_INT16, [2], field="int_val", values=[-300, 300]),
    _tensor(protos.DT_QUINT8, [2], field="int_val", values=[1, 2]),
    _tensor(protos.DT_QINT32, [2], np.array([-5, 5], np.int32).tobytes()),
    _tensor(protos.DT_UINT32, [2], field="uint32_val", values=[4_000_000_000, 1]),
]


@pytest.mark.parametrize("i", range(len(CASES)))
def test_int_values_equal_numpys(i):
    tensor = CASES[i]
    assert protos.int_values(tensor) == [int(x) for x in protos.to_ndarray(tensor).reshape(-1)]


def test_int_values_refuse_what_numpy_refuses():
    assert protos.int_values(_tensor(protos.DT_FLOAT, [2], field="float_val", values=[1.0])) is None
    for bad in (
        _tensor(protos.DT_INT32, [3], b"\0" * 8),  # content of 2 values for 3
        _tensor(protos.DT_INT32, [2], b"\0" * 7),
        _tensor(protos.DT_INT32, [1], field="int_val", values=[1, 2]),  # more values than elements
    ):
        with pytest.raises(ValueError):
            protos.to_ndarray(bad)
        with pytest.raises(ValueError):
            protos.int_values(bad)


FLOAT_CASES = [
    _tensor(protos.DT_FLOAT, [], field="float_val", values=[1 / 127.5]),
    _tensor(protos.DT_FLOAT, [3], field="float_val", values=[0.1, -2.5]),
    _tensor(protos.DT_FLOAT, [2], field="float_val", values=[]),
    _tensor(protos.DT_FLOAT, [1, 3], np.array([0.485, 0.456, 0.406], np.float32).tobytes()),
    _tensor(protos.DT_DOUBLE, [2], field="double_val", values=[0.1, float("nan")]),
    _tensor(protos.DT_DOUBLE, [2], np.array([1e300, -0.0]).tobytes()),
]


@pytest.mark.parametrize("i", range(len(FLOAT_CASES)))
def test_float_values_equal_numpys(i):
    tensor = FLOAT_CASES[i]
    want = [float(x) for x in protos.to_ndarray(tensor).astype("float64").reshape(-1)]
    assert repr(protos.float_values(tensor)) == repr(want)
