"""Shared helpers for the benchmarks: timing, checkpoints at real shapes, fresh-process probes."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

CACHE_DIR = Path(os.environ.get("CANDLE_PORT_BENCH_CACHE", Path(tempfile.gettempdir()) / "candle_port_bench"))
THREADS = int(os.environ.get("BENCH_THREADS", os.cpu_count() or 1))


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cached_checkpoint(name: str, build: Callable[[Path], None]) -> Path:
    """A checkpoint directory built once by `build(dir)` and kept between runs."""
    directory = CACHE_DIR / name
    if not (directory / "config.json").is_file():
        directory.mkdir(parents=True, exist_ok=True)
        build(directory)
    return directory


def run_fresh(code: str) -> dict:
    """Runs `code` in a fresh interpreter; it must print one JSON object as its last line."""
    env = dict(os.environ, OMP_NUM_THREADS=str(THREADS), RAYON_NUM_THREADS=str(THREADS))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def row(section: str, metric: str, ours: float, theirs: float, unit: str, higher_is_better: bool = True) -> dict:
    ratio = (ours / theirs if higher_is_better else theirs / ours) if ours and theirs else float("nan")
    return dict(section=section, metric=metric, candle_port=ours, transformers=theirs, unit=unit, speedup=ratio)
