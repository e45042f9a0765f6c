"""Rest joint locations of the SMPL family, for forward kinematics (fitting, retargeting, pictures).

:data:`SMPLX_REST_JOINTS` gives one location per SMPL-X joint (metres; T-pose, y up, the person
facing +z, their left on +x). **These are approximate adult proportions, not the SMPL-X model's
regressed joints**: the body values are close to the neutral SMPL template's joints as commonly
reported (pelvis about 0.22 m below the origin, 0.17 m shoulder half-width, arms horizontal), the
hands and face are typed from average hand and head proportions. They are good enough for
experiments on relative quality of priors, and wrong for anyone's actual body. Users with the SMPL-X
or SMPL+H model should export their own rest joints (for example ``smplx.create(...)(betas=...).joints``
in the zero pose, the first 55 rows) to a ``.npy`` ``(J, 3)`` in this joint order and load them with
:func:`load_rest_joints`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from probpose.data.npz import read_npy
from probpose.errors import DataError
from probpose.skeleton import SMPLX, Skeleton

__all__ = ["SMPLX_REST_JOINTS", "rest_joints", "load_rest_joints", "REST_PROVENANCE"]

REST_PROVENANCE = "approximate adult proportions (probpose.data.rest), not the SMPL-X model's regressed joints"

_BODY = {
    "pelvis": (0.000, -0.223, 0.028),
    "left_hip": (0.069, -0.317, 0.020),
    "right_hip": (-0.068, -0.315, 0.022),
    "spine1": (-0.002, -0.104, 0.003),
    "left_knee": (0.103, -0.698, 0.013),
    "right_knee": (-0.104, -0.698, 0.011),
    "spine2": (0.005, 0.033, 0.028),
    "left_ankle": (0.088, -1.096, -0.022),
    "right_ankle": (-0.091, -1.094, -0.023),
    "spine3": (0.002, 0.093, 0.030),
    "left_foot": (0.119, -1.153, 0.102),
    "right_foot": (-0.118, -1.155, 0.105),
    "neck": (-0.002, 0.299, -0.011),
    "left_collar": (0.077, 0.208, -0.006),
    "right_collar": (-0.077, 0.208, -0.008),
    "head": (0.005, 0.375, 0.040),
    "left_shoulder": (0.172, 0.230, -0.017),
    "right_shoulder": (-0.173, 0.230, -0.018),
    "left_elbow": (0.431, 0.223, -0.037),
    "right_elbow": (-0.433, 0.220, -0.040),
    "left_wrist": (0.697, 0.226, -0.038),
    "right_wrist": (-0.701, 0.224, -0.040),
    "jaw": (0.000, 0.340, 0.030),
    "left_eye": (0.031, 0.440, 0.090),
    "right_eye": (-0.031, 0.440, 0.090),
}

# per finger: knuckle offset from the wrist (x along the arm, y up, z forward) and two segment lengths
_FINGERS = {
    "index": ((0.095, -0.008, 0.025), (0.036, 0.024)),
    "middle": ((0.097, -0.008, 0.005), (0.040, 0.027)),
    "pinky": ((0.083, -0.010, -0.033), (0.027, 0.020)),
    "ring": ((0.090, -0.010, -0.015), (0.037, 0.025)),
}


def _hand(side: str) -> dict[str, tuple[float, float, float]]:
    sign = 1.0 if side == "left" else -1.0
    wrist = np.array(_BODY[f"{side}_wrist"])
    out = {}
    for finger, (knuckle, (l1, l2)) in _FINGERS.items():
        p1 = wrist + np.array([sign * knuckle[0], knuckle[1], knuckle[2]])
        out[f"{side}_{finger}1"] = p1
        out[f"{side}_{finger}2"] = p1 + np.array([sign * l1, 0.0, 0.0])
        out[f"{side}_{finger}3"] = p1 + np.array([sign * (l1 + l2), 0.0, 0.0])
    t1 = wrist + np.array([sign * 0.025, -0.018, 0.030])
    t2 = t1 + np.array([sign * 0.028, -0.006, 0.020])
    t3 = t2 + np.array([sign * 0.025, -0.002, 0.012])
    out[f"{side}_thumb1"], out[f"{side}_thumb2"], out[f"{side}_thumb3"] = t1, t2, t3
    return {k: (float(v[0]), float(v[1]), float(v[2])) for k, v in out.items()}


_TABLE = {**_BODY, **_hand("left"), **_hand("right")}
SMPLX_REST_JOINTS = torch.tensor([_TABLE[n] for n in SMPLX.joint_names], dtype=torch.float64)
"""``(55, 3)`` approximate rest joint locations in SMPL-X order (metres); see the module docstring."""


def rest_joints(skeleton: Skeleton) -> Tensor:
    """``(J, 3)`` approximate rest locations for a preset or selected SMPL-family skeleton, by joint
    name (float64, metres). :class:`~probpose.errors.DataError` for joints the table lacks."""
    missing = [n for n in skeleton.joint_names if n not in _TABLE]
    if missing:
        raise DataError(skeleton.name, None, f"no rest locations for joints {missing[:4]}: give them (`rest_joints`)")
    return torch.tensor([_TABLE[n] for n in skeleton.joint_names], dtype=torch.float64)


MAX_REST_METRES = 100.0
"""Rest joints further than this from the origin (metres) are refused: not a body in metres."""
MIN_REST_EXTENT = 0.01
"""Rest joints all within this distance (metres) of each other are refused: no bone directions."""


def load_rest_joints(path: str | Path, skeleton: Skeleton) -> Tensor:
    """Rest joints ``(J, 3)`` metres from a ``.npy`` in ``skeleton``'s joint order (a ``(N >= J, 3)``
    array is cut to its first ``J`` rows, as ``smplx`` returns extra landmarks after the joints)."""
    arr = read_npy(path)
    j = skeleton.num_joints
    if arr.dtype.kind not in "fiu":
        raise DataError(str(path), None, f"dtype {arr.dtype}: expected real numbers (rest joint locations in metres)")
    if arr.ndim != 2 or arr.shape[1] != 3 or arr.shape[0] < j:
        raise DataError(str(path), None, f"shape {arr.shape}: expected ({j}, 3) rest joint locations in metres")
    joints = arr[:j].astype(np.float64)
    if not np.all(np.isfinite(joints)):
        raise DataError(str(path), None, "holds NaN or infinite values")
    if np.abs(joints).max() > MAX_REST_METRES:
        raise DataError(str(path), None, f"a joint lies beyond {MAX_REST_METRES:g} m: expected metres, a body's size")
    if j > 1 and np.ptp(joints, axis=0).max() < MIN_REST_EXTENT:
        raise DataError(str(path), None, f"every joint within {MIN_REST_EXTENT * 100:g} cm of the others: no skeleton")
    return torch.from_numpy(joints)
