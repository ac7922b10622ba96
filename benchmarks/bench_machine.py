"""Benchmark: `mobilebuild doctor` wall time, and the downloader's throughput and resume cost.

1. doctor: `python -m mobilebuild doctor --tf-ref v1.4.0` as a fresh process, N runs (the adb
   server started once before; a private ANDROID_ADB_SERVER_PORT, killed at the end).
   Target: well under 2 s.
2. downloader: a SIZE MB file from the test HTTP server on 127.0.0.1 (tests/helpers/httpserver.py):
   fetch + sha256 verification (MB/s), a cache hit (ms), and a fetch whose connection drops at
   75 % — the bytes sent again after the drop must be only the missing 25 %.

Run: python benchmarks/bench_machine.py [--runs N] [--size MB] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def bench_doctor(runs: int) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tmp = Path(tempfile.mkdtemp(prefix="mbbench-"))
    env = dict(os.environ, ANDROID_ADB_SERVER_PORT=str(port), MOBILEBUILD_CACHE=str(tmp / "cache"), MOBILEBUILD_HOME=str(tmp / "home"), NO_COLOR="1")
    adb = shutil.which("adb")
    try:
        if adb:
            subprocess.run([adb, "start-server"], env=env, capture_output=True, timeout=60)
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "mobilebuild", "doctor", "--tf-ref", "v1.4.0"], env=env, cwd=tmp, capture_output=True, timeout=120)
            times.append(time.perf_counter() - t)
    finally:
        if adb:
            subprocess.run([adb, "kill-server"], env=env, capture_output=True, timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)
    return {"doctor_runs": runs, "doctor_median_s": round(statistics.median(times), 3), "doctor_max_s": round(max(times), 3)}


def bench_downloads(size_mb: int) -> dict:
    from helpers.httpserver import Fault, FaultyServer

    tmp = Path(tempfile.mkdtemp(prefix="mbbench-dl-"))
    os.environ["MOBILEBUILD_CACHE"] = str(tmp)
    os.environ["NO_PROXY"] = "127.0.0.1"
    from mobilebuild import console
    from mobilebuild.net.downloads import fetch

    console.configure(json_mode=True)  # no progress lines in the figures
    data = os.urandom(size_mb * 1024 * 1024)
    digest = hashlib.sha256(data).hexdigest()
    out: dict = {"size_mb": size_mb}
    try:
        with FaultyServer() as srv:
            url = srv.add("/big.bin", data, etag='"b"')
            t = time.perf_counter()
            fetch(url, sha256=digest)
            dt = time.perf_counter() - t
            out["fetch_verify_MBps"] = round(size_mb / dt, 1)
            t = time.perf_counter()
            fetch(url, sha256=digest)
            out["cache_hit_ms"] = round((time.perf_counter() - t) * 1000, 2)
            shutil.rmtree(tmp / "downloads")
            cut = len(data) * 3 // 4
            srv.fault("/big.bin", Fault.drop_after(cut))
            t = time.perf_counter()
            fetch(url, sha256=digest)
            out["drop_resume_s"] = round(time.perf_counter() - t, 2)
            last = srv.requests_for("/big.bin")[-1]
            out["resume_range"] = last.range
            out["bytes_resent_after_drop"] = last.sent
            out["bytes_missing_at_drop"] = len(data) - cut
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--size", type=int, default=100, help="MB for the download figures")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    result = {**bench_doctor(args.runs), **bench_downloads(args.size)}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for k, v in result.items():
            print(f"{k:28} {v}")


if __name__ == "__main__":
    main()
