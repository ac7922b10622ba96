#!/usr/bin/env python3
"""CLI start-up: `mobilebuild --help` against a bare `import typer, rich.console` (the floor any
typer + rich command pays). Target: at most 2x. Prints wall-clock figures (min and median of N
runs) and the CPU time (user + sys of the child processes, median), which a loaded machine
disturbs far less; PASS/FAIL is on the CPU-time ratio. Our modules' bytecode is compiled first, as
installing the package does (under PYTHONDONTWRITEBYTECODE a checkout recompiles them in every
process, while typer's and rich's come compiled from their install)."""

from __future__ import annotations

import pathlib
import resource
import statistics
import subprocess
import sys
import time

RUNS = 11


def timed(argv: list[str]) -> tuple[float, float, float]:
    times, cpu = [], []
    for _ in range(RUNS):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return min(times), statistics.median(times), statistics.median(cpu)


def main() -> int:
    package = pathlib.Path(__file__).resolve().parent.parent / "mobilebuild"
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True, capture_output=True)
    bare = timed([sys.executable, "-c", "import typer, rich.console"])
    helped = timed([sys.executable, "-m", "mobilebuild", "--help"])
    ratio = helped[2] / bare[2]
    for name, (lo, med, cpu) in (("import typer, rich.console", bare), ("mobilebuild --help", helped)):
        print(f"{name:27} wall min {lo * 1000:.0f} ms, median {med * 1000:.0f} ms; cpu median {cpu * 1000:.0f} ms")
    print(f"ratio: cpu {ratio:.2f}x, wall min {helped[0] / bare[0]:.2f}x, wall median {helped[1] / bare[1]:.2f}x; "
          f"target <= 2x (cpu): {'PASS' if ratio <= 2 else 'FAIL'}")
    return 0 if ratio <= 2 else 1


if __name__ == "__main__":
    sys.exit(main())
