"""What every format reader shares: input checks, canonical axis-angle, one sequence as a
:class:`~probpose.data.PoseSet`, the frame-rate defaults."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from probpose import rotations
from probpose.data.npz import NpzArchive
from probpose.data.poseset import PoseSet, SequenceInfo
from probpose.errors import DataError
from probpose.files import input_file, sha256
from probpose.skeleton import Skeleton

__all__ = ["DEFAULT_FPS", "MAX_FPS"]

DEFAULT_FPS = 30.0
"""Frame rate assumed (and recorded as assumed) when a time series does not state one."""
MAX_FPS = 10_000.0
"""Highest frame rate accepted (motion capture runs at up to a few hundred frames per second)."""


def fps_in_range(fps: float) -> bool:
    """Whether ``fps`` (frames per second) is a usable frame rate: finite, in ``(0, MAX_FPS]``."""
    return bool(np.isfinite(fps) and 0 < fps <= MAX_FPS)


def _existing(path: str | Path) -> Path:
    return input_file(path)


def _float_array(path: Path, field: str, value: object, shape: tuple[int | None, ...]) -> np.ndarray:
    """``value`` as float64 with the given shape (``None`` = any), finite (no copy if it already is)."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu":
        raise DataError(str(path), field, f"expected numbers, got dtype {arr.dtype}")
    if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape, strict=True)):
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise DataError(str(path), field, f"expected shape {want}, got {arr.shape}")
    arr = np.asarray(arr, dtype=np.float64)
    if not np.isfinite(arr).all():
        bad = ~np.isfinite(arr)
        row = int(np.argwhere(bad)[0][0])
        raise DataError(str(path), field, f"{int(bad.sum())} NaN/inf values (first in row {row})")
    return arr


_CHUNK = 1 << 15


def _canonical(poses: np.ndarray) -> np.ndarray:
    """(N, J, 3) float64 axis-angle -> canonical (angle in [0, pi]) float32, in chunks of rows so
    the temporaries stay small whatever N is."""
    out = np.empty(poses.shape, dtype=np.float32)
    for start in range(0, len(poses), _CHUNK):
        block = torch.from_numpy(np.ascontiguousarray(poses[start : start + _CHUNK], dtype=np.float64))
        out[start : start + _CHUNK] = rotations.canonical_axis_angle(block).numpy()
    return out


def _scalar(path: Path, data: NpzArchive, *keys: str) -> float | None:
    """The first of ``keys`` present, as one positive finite number (a frame rate)."""
    for key in keys:
        if key in data:
            arr = data.read(key)
            if arr.size != 1 or arr.dtype.kind not in "fiu" or not np.isfinite(arr).all() or float(arr.item()) <= 0:
                raise DataError(str(path), key, f"expected one positive number, got {_describe(arr)}")
            return float(arr.item())
    return None


def _integer(path: Path, data: NpzArchive, key: str) -> int:
    """``key`` as one integer (a version number, a frame count)."""
    arr = data.read(key)
    value = arr.item() if arr.size == 1 and arr.dtype.kind in "fiu" else None
    if value is None or not np.isfinite(value) or float(value) != int(value):
        raise DataError(str(path), key, f"expected one integer, got {_describe(arr)}")
    return int(value)


def _describe(arr: np.ndarray) -> str:
    if arr.size == 0:
        return f"an empty array of shape {arr.shape}"
    if arr.size == 1:
        text = repr(arr.item())
        return text if len(text) <= 40 else text[:37] + "..."
    return f"an array of shape {arr.shape} and dtype {arr.dtype}"


def _one_sequence(
    path: Path,
    fmt: str,
    skeleton: Skeleton,
    poses: np.ndarray,
    present: np.ndarray,
    fps: float | None,
    notes: list[str] | None = None,
) -> PoseSet:
    n = len(poses)
    if n == 0:
        raise DataError(str(path), None, "holds no frames")
    notes = list(notes or [])
    assumed = fps is None
    if assumed:
        fps = DEFAULT_FPS
        notes.append(f"frame rate not stated; assumed {fps:g} fps")
    return PoseSet(
        skeleton=skeleton,
        poses=_canonical(poses),
        present=present,
        sequence=np.zeros(n, dtype=np.int64),
        frame=np.arange(n, dtype=np.int64),
        sequences=[SequenceInfo(path.name, path.name, fps, fps_assumed=assumed, ordered=True)],
        sources=[{"file": path.name, "format": fmt, "sha256": sha256(path), "frames": n, "notes": notes}],
    )
