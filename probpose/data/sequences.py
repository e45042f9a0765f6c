"""Time series of poses: resampling to another frame rate and trimming the ends."""

from __future__ import annotations

import math

import numpy as np
import torch

from probpose import rotations

__all__ = ["resample", "trim"]


def _slerp(q0: torch.Tensor, q1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of unit quaternions ``(..., 4)`` along the shorter arc, ``t (...)``."""
    dot = (q0 * q1).sum(-1, keepdim=True)
    q1 = torch.where(dot < 0, -q1, q1)
    dot = dot.abs().clamp(max=1.0)
    omega = torch.acos(dot)
    so = torch.sin(omega)
    t = t.unsqueeze(-1)
    near = so < 1e-6
    safe = torch.where(near, torch.ones_like(so), so)
    a = torch.where(near, 1 - t, torch.sin((1 - t) * omega) / safe)
    b = torch.where(near, t, torch.sin(t * omega) / safe)
    q = a * q0 + b * q1
    return q / torch.linalg.vector_norm(q, dim=-1, keepdim=True)


def resampled_length(n: int, fps: float, target: float) -> int:
    """Frames :func:`resample` makes of ``n`` frames at ``fps`` resampled to ``target`` fps."""
    if n == 0 or fps == target:
        return n
    return int(math.floor((n - 1) * target / fps + 1e-9)) + 1


def resample(poses: np.ndarray, fps: float, target: float) -> np.ndarray:
    """A sequence ``(N, J, 3)`` (axis-angle, radians) at ``fps`` resampled to ``target`` frames per
    second: frame ``k`` is the pose at time ``k / target``. Where that time falls on a source
    frame the frame is copied exactly; between two frames each joint's rotation is interpolated
    spherically (quaternion slerp along the shorter arc). Returns ``(floor((N - 1) target / fps) + 1,
    J, 3)`` canonical axis-angle, float32."""
    n = len(poses)
    if not (math.isfinite(target) and target > 0):
        raise ValueError(f"target frame rate must be positive, got {target}")
    if n == 0 or fps == target:
        return poses
    count = resampled_length(n, fps, target)
    position = np.arange(count, dtype=np.float64) * (fps / target)
    i0 = np.minimum(np.floor(position + 1e-9).astype(np.int64), n - 1)
    frac = position - i0
    exact = frac < 1e-9
    out = poses[i0].astype(np.float32, copy=True)
    between = np.flatnonzero(~exact)
    if len(between):
        v0 = torch.from_numpy(np.ascontiguousarray(poses[i0[between]], dtype=np.float64))
        v1 = torch.from_numpy(np.ascontiguousarray(poses[np.minimum(i0[between] + 1, n - 1)], dtype=np.float64))
        t = torch.from_numpy(frac[between])[:, None].expand(v0.shape[:-1])
        q = _slerp(rotations.axis_angle_to_quaternion(v0), rotations.axis_angle_to_quaternion(v1), t)
        out[between] = rotations.quaternion_to_axis_angle(q).numpy().astype(np.float32)
    return out


def trim(poses: np.ndarray, fraction: float) -> np.ndarray:
    """Drop the first and the last ``floor(fraction N)`` frames of a sequence (where AMASS motions
    hold their calibration T- or A-poses); ``fraction`` in ``[0, 0.5)``."""
    if not 0 <= fraction < 0.5:
        raise ValueError(f"trim fraction must be in [0, 0.5), got {fraction}")
    k = int(math.floor(fraction * len(poses)))
    return poses[k : len(poses) - k] if k else poses
