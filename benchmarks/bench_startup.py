#!/usr/bin/env python3
"""CLI start-up: `mobilebuild --help` against a bare `import typer, rich.console` (the floor any
typer + rich command pays). Target: at most 2x. Prints the figures (min and median of N runs)
and PASS/FAIL on the minimum (the least disturbed run; medians swing with machine load)."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

RUNS = 11


def timed(argv: list[str]) -> tuple[float, float]:
    times = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def main() -> int:
    bare = timed([sys.executable, "-c", "import typer, rich.console"])
    helped = timed([sys.executable, "-m", "mobilebuild", "--help"])
    ratio = helped[0] / bare[0]
    print(f"import typer, rich.console: min {bare[0] * 1000:.0f} ms, median {bare[1] * 1000:.0f} ms")
    print(f"mobilebuild --help:         min {helped[0] * 1000:.0f} ms, median {helped[1] * 1000:.0f} ms")
    print(f"ratio (min): {ratio:.2f}x  (median: {helped[1] / bare[1]:.2f}x)  target <= 2x: {'PASS' if ratio <= 2 else 'FAIL'}")
    return 0 if ratio <= 2 else 1


if __name__ == "__main__":
    sys.exit(main())
