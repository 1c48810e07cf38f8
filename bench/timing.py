"""The one timing helper of the benchmarks (each script runs as `python bench/<name>.py`, which puts bench/ on the path)."""
from __future__ import annotations

import statistics
import time
from typing import Callable


def per_call_us(fn: Callable[[], object], calls: int, repeats: int, warmup: int = 20) -> float:
    """Median over `repeats` of the mean microseconds of `fn()` across `calls` calls (after `warmup` calls)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(times)
