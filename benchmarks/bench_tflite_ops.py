"""How fast the TFLite runtime check is: reading every operator code of a MobileNet-size .tflite
from its flatbuffer and checking it against every bundled runtime table, against what loading
the same file into LiteRT costs (what a check by interpreter would need at least). Prints the
figures and PASS/FAIL against the target (the check well under the interpreter load).

    python benchmarks/bench_tflite_ops.py
"""

from __future__ import annotations

import contextlib
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    import keras
    import tensorflow as tf

    from mobilebuild.graphs import tflite, tflite_ops

    with tempfile.TemporaryDirectory() as tmp:
        model = keras.applications.MobileNet(weights=None, input_shape=(224, 224, 3))
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        path = Path(tmp) / "mobilenet.tflite"
        with contextlib.redirect_stdout(io.StringIO()):  # the converter's "Saved artifact" listing
            path.write_bytes(converter.convert())
        size_mb = path.stat().st_size / 1e6
        tags = tflite_ops.bundled_runtimes()
        runtimes = [tflite_ops.load_runtime(t) for t in tags]

        def check_all():
            m = tflite_ops.read_tflite(path)
            return [tflite_ops.check_model(m, rt) for rt in runtimes]

        check_all()
        times = []
        for _ in range(20):
            t = time.perf_counter()
            results = check_all()
            times.append(time.perf_counter() - t)
        loads = []
        for _ in range(5):
            t = time.perf_counter()
            tflite.open_interpreter(path)
            loads.append(time.perf_counter() - t)
    check_ms, load_ms = statistics.median(times) * 1000, statistics.median(loads) * 1000
    fits = sum(1 for r in results if not r)
    print(f"MobileNet .tflite: {size_mb:.1f} MB, {len(tags)} runtime tables ({tags[0]} .. {tags[-1]})")
    print(f"read operator codes + check against every table: {check_ms:.2f} ms (median of 20)")
    print(f"LiteRT interpreter load + allocate:               {load_ms:.1f} ms (median of 5)")
    print(f"loads in {fits} of {len(tags)} runtimes as converted today (float)")
    ok = check_ms * 5 < load_ms
    print(f"  [{'PASS' if ok else 'FAIL'}] check faster than 1/5 of an interpreter load: {check_ms:.2f} ms vs {load_ms:.1f} ms")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
