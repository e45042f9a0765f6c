"""The one timing helper of probpose: median wall time of repeated calls, synchronised on CUDA."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

__all__ = ["median_seconds", "per_second"]


def _sync(device: torch.device | str | None) -> None:
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(torch.device(device))


def median_seconds(
    fn: Callable[[], object], repeats: int = 5, device: torch.device | str | None = None, warmup: int = 1
) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls after ``warmup`` calls; on a CUDA
    ``device`` every call is synchronised, so the time is the device's, not the launch's."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def per_second(
    n: int, fn: Callable[[], object], repeats: int = 5, device: torch.device | str | None = None, warmup: int = 1
) -> float:
    """Items per second: ``n`` over :func:`median_seconds` of ``fn``."""
    return n / median_seconds(fn, repeats, device, warmup)
