"""PASyn's zebra leg poses: ``.npz`` of Euler angles in degrees, and the conversions to and from
axis-angle."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from probpose import rotations
from probpose.data.formats.common import (
    _existing,
    _float_array,
)
from probpose.data.npz import NpzArchive
from probpose.data.poseset import PoseSet, SequenceInfo
from probpose.errors import DataError
from probpose.files import sha256
from probpose.skeleton import ZEBRA_LEGS

__all__ = ["load_pasyn", "check_pasyn_degrees", "pasyn_to_axis_angle", "axis_angle_to_pasyn", "PASYN_EULER_ORDER"]

log = logging.getLogger(__name__)

PASYN_EULER_ORDER = "XYZ"
"""PASyn columns are (x, y, z) angles composed R = Rz Ry Rx: extrinsic XYZ."""


def load_pasyn(path: str | Path, fps: float | None = None) -> PoseSet:
    """PASyn zebra ``.npz`` -> :class:`PoseSet` on :data:`ZEBRA_LEGS` (12 joints).

    ``poses`` (N, 39) in degrees: columns 0-2 are a placeholder (dropped; a note is recorded if
    they are not zero), then 12 joints x (x, y, z) Euler angles with ``R = Rz Ry Rx``. ``(N, 36)``
    (no placeholder) is accepted. Rows are independent poses (``fps`` is ignored)."""
    del fps
    p = _existing(path)
    with NpzArchive(p) as data:
        if "poses" not in data:
            raise DataError(str(p), "poses", f"missing: unknown layout (keys: {sorted(data.keys)})")
        shape = data.shape("poses")
        if len(shape) != 2 or shape[1] not in (39, 36):
            raise DataError(str(p), "poses", f"expected (N, 39) or (N, 36) Euler angles in degrees, got {shape}")
        raw = _float_array(p, "poses", data.read("poses"), (None, shape[1]))
    notes = []
    if raw.shape[1] == 39:
        if np.any(raw[:, :3] != 0):
            notes.append("placeholder columns 0-2 are not all zero; dropped as the PASyn layout specifies")
            log.warning("%s: PASyn placeholder columns 0-2 are not all zero; dropped", p)
        raw = raw[:, 3:]
    n = len(raw)
    if n == 0:
        raise DataError(str(p), "poses", "holds no rows")
    check_pasyn_degrees(raw, p, "poses")
    return PoseSet(
        skeleton=ZEBRA_LEGS,
        poses=pasyn_to_axis_angle(raw.reshape(n, 12, 3)),
        present=np.ones(12, dtype=bool),
        sequence=np.zeros(n, dtype=np.int64),
        frame=np.arange(n, dtype=np.int64),
        sequences=[SequenceInfo(p.name, p.name, None, ordered=False)],
        sources=[{"file": p.name, "format": "pasyn", "sha256": sha256(p), "frames": n, "notes": notes}],
    )


def check_pasyn_degrees(euler_degrees: np.ndarray, path: str | Path, field: str | None = None) -> None:
    """Refuse PASyn Euler angles (degrees, ``(N, ...)``) beyond one turn (+-360): not degrees."""
    size = np.abs(euler_degrees).reshape(len(euler_degrees), -1).max(-1) if len(euler_degrees) else np.zeros(0)
    if (size > 360).any():
        row = int(np.flatnonzero(size > 360)[0])
        raise DataError(
            str(path),
            field,
            f"row {row}: Euler angles beyond +-360 degrees (up to {size.max():.4g}): not PASyn leg angles in degrees",
        )


def pasyn_to_axis_angle(euler_degrees: np.ndarray) -> np.ndarray:
    """PASyn Euler angles ``(..., 3)`` in degrees (``R = Rz Ry Rx``) -> canonical axis-angle
    ``(..., 3)`` float32 radians."""
    euler = torch.from_numpy(np.ascontiguousarray(euler_degrees, dtype=np.float64))
    mats = rotations.euler_to_matrix(euler, PASYN_EULER_ORDER, degrees=True)
    return rotations.matrix_to_axis_angle(mats).numpy().astype(np.float32)


def axis_angle_to_pasyn(poses: torch.Tensor) -> torch.Tensor:
    """Axis-angle ``(..., 3)`` radians -> PASyn Euler angles ``(..., 3)`` in degrees (``R = Rz Ry Rx``)."""
    return rotations.matrix_to_euler(rotations.axis_angle_to_matrix(poses.double()), PASYN_EULER_ORDER, degrees=True)
