"""Every degree of freedom covered: a documented spread for the rotations a source does not record.

A prior for SMPL-X puts density on all three degrees of freedom of every joint it models. Motion
capture in another skeleton often records fewer: CMU's tibia and toes have one rotational dof, its
foot and hand two, its clavicles never move; the DAZ-friendly conversions of CMU have no toes and
one spine bone fewer than SMPL-X. A density fitted to such data puts its mass on a curve (CMU's
knees: principal spreads 29, 0.2 and 0.01 degrees), and a real SMPL-X pose off that curve scores
10^4 nats. :func:`fill_dofs` models the missing freedom explicitly, once, on import:

1. **A floor per joint**, :data:`SPREAD_DEGREES`: the smallest spread (standard deviation, degrees)
   each SMPL-X body joint's rotation must have along every axis. Where a source records the dof it
   is far above the floor and untouched; the floors are set for the dofs marker skeletons lack, at
   about a quarter of the range of motion commonly quoted for that motion (the range covering about
   +-2 standard deviations): knee axial rotation (about 40 degrees at 90 degrees of flexion) and
   varus-valgus -> 8; foot abduction about the shin (about 30) -> 7; toe abduction (about 20) -> 5;
   clavicle elevation, protraction and axial rotation (30-50 each) -> 10; the forearm twist fits give
   the wrist -> 8; the elbow's carrying angle (about +-5) -> 3; 3 for joints whose three dofs marker
   skeletons record (spine, neck, head, hips, shoulders). None of them was fitted to a recording.
2. **Per trial**, for each body joint: the mean rotation ``M`` and the covariance ``C`` of
   ``v = log(M^T R)`` over the trial's frames; along each principal axis ``u_k`` of ``C`` (variance
   ``l_k``) the rotation gets extra noise of variance ``max(s^2 - l_k, 0)``, so its spread along
   every axis is at least the floor ``s``. A joint the source does not drive at all (absent) is held
   at SMPL-X's rest (zero rotation) and gets the full floor along all three axes.
3. **Smooth and world-preserving.** The noise is smooth in time (white noise filtered by a Gaussian
   of :data:`SMOOTH_SECONDS` standard deviation, rescaled to unit variance), so filled motion moves
   as joints do, and each joint's perturbation ``J_j`` is applied as ``R_j <- J_parent^T R_j J_j``:
   every segment's world orientation turns by its own ``J_j`` only, so the limbs point where the
   source recorded them and the fill adds the freedom the source lacks without moving what it saw.
4. **Deterministic**: the noise of a trial is seeded by ``seed`` and the trial's name.

The density this adds is known exactly (a Gaussian in the tangent space per trial and joint), so
the fill is a stated model, not made-up data; imports record it in every source's notes.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import replace

import numpy as np
import torch

from probpose.data.poseset import PoseSet
from probpose.errors import DataError
from probpose.rotations import axis_angle_to_matrix, canonical_axis_angle, matrix_to_axis_angle, mean_rotation
from probpose.skeleton import SMPLX

__all__ = ["SPREAD_DEGREES", "SMOOTH_SECONDS", "MAX_ABSENT", "fill_dofs", "principal_spread_degrees"]

SPREAD_DEGREES: dict[str, float] = {
    "spine1": 3.0, "spine2": 3.0, "spine3": 3.0, "neck": 3.0, "head": 3.0,
    **{f"{s}_{j}": v for s in ("left", "right") for j, v in (
        ("hip", 3.0), ("knee", 8.0), ("ankle", 7.0), ("foot", 5.0),
        ("collar", 10.0), ("shoulder", 3.0), ("elbow", 3.0), ("wrist", 8.0))},
}  # fmt: skip
"""The floor of each SMPL-X body joint's spread along every axis, degrees (module docstring)."""

SMOOTH_SECONDS = 0.25
"""Standard deviation in time of the Gaussian that smooths the fill's noise, seconds."""


def _log_rotations(rot: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """``log(mean^T rot)`` ``(T, 3)`` for rotations ``(T, 3, 3)``."""
    rel = torch.from_numpy(np.einsum("ji,tjk->tik", mean, rot))
    return matrix_to_axis_angle(rel).numpy()


def principal_spread_degrees(rotvecs: np.ndarray) -> np.ndarray:
    """Principal spreads ``(..., 3)`` in degrees, largest first, of axis-angle rotations
    ``(N, ..., 3)`` (radians): the square roots of the eigenvalues of the covariance of
    ``log(M^T R)`` about their mean rotation ``M``, per joint."""
    x = np.asarray(rotvecs, dtype=np.float64)
    rot = axis_angle_to_matrix(torch.from_numpy(x)).numpy()
    mean = mean_rotation(torch.from_numpy(rot)).numpy()
    flat_rot = rot.reshape(len(x), -1, 3, 3)
    flat_mean = mean.reshape(-1, 3, 3)
    out = np.empty((flat_mean.shape[0], 3))
    for j in range(flat_mean.shape[0]):
        v = _log_rotations(flat_rot[:, j], flat_mean[j])
        out[j] = np.sqrt(np.clip(np.linalg.eigvalsh(np.cov(v.T)), 0, None))[::-1]
    return np.degrees(out.reshape(mean.shape[:-2] + (3,)))


def _seed(seed: int, name: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}\0{name}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _smooth_noise(rng: np.random.Generator, n: int, fps: float | None) -> np.ndarray:
    """``(n, 3)`` standard normal noise, smooth in time over :data:`SMOOTH_SECONDS` at ``fps``
    (white where the frames are not a time series)."""
    white = rng.standard_normal((n, 3))
    if fps is None or n < 2:
        return white
    sigma = SMOOTH_SECONDS * fps
    half = int(math.ceil(3 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
    kernel /= np.sqrt((kernel**2).sum())  # unit variance of the filtered stationary noise
    padded = rng.standard_normal((n + 2 * half, 3))
    padded[half : half + n] = white
    return np.stack([np.convolve(padded[:, k], kernel, mode="valid") for k in range(3)], -1)


MAX_ABSENT = 6
"""At most this many body joints a source does not drive are held at rest by :func:`fill_dofs`
(CMU's two collars, the DAZ rig's toes and spine1): more means a map that does not fit the rig."""


def fill_dofs(poses: PoseSet, seed: int = 0, spread: Mapping[str, float] | None = None) -> PoseSet:
    """``poses`` (SMPL-X, any joints present) with every body joint in ``spread`` (default
    :data:`SPREAD_DEGREES`, degrees) given at least that spread along every axis, per trial, and
    every such absent joint held at rest with the full spread (the module docstring). The result
    marks those joints present and says so in every source's notes. More than :data:`MAX_ABSENT`
    absent joints is an error (a retarget map that does not fit the source)."""
    spread = SPREAD_DEGREES if spread is None else spread
    if poses.skeleton.name != "smplx" or poses.num_joints != SMPLX.num_joints:
        raise DataError("fill_dofs", None, f"needs poses on the full SMPL-X skeleton, got {poses.skeleton.name!r}")
    unknown = [j for j in spread if j not in SPREAD_DEGREES]
    bad = [j for j, s in spread.items() if not (math.isfinite(s) and 0 < s <= 90)]
    if unknown or bad:
        raise DataError(
            "fill_dofs", "spread", f"SMPL-X body joints with spreads in (0, 90] degrees, got {unknown or bad}"
        )
    joints = [SMPLX.index(j) for j in spread]
    floors = np.radians([spread[j] for j in spread])
    present = poses.present.copy()
    filled_absent = [SMPLX.joint_names[j] for j in joints if not present[j]]
    if len(filled_absent) > MAX_ABSENT:
        files = ", ".join(src["file"] for src in poses.sources) or "poses"
        maps = sorted({str(src.get("retarget_map")) for src in poses.sources if src.get("retarget_map")})
        raise DataError(
            files,
            None,
            f"{len(filled_absent)} of {len(joints)} body joints are not driven"
            + (f" by the {', '.join(maps)} map" if maps else "")
            + f" ({', '.join(filled_absent[:6])}, ...): give a retarget map that fits these bones, or import "
            "without filling (`fill_dofs` off) and choose the joints it drives",
        )
    present[joints] = True
    parents = np.array(SMPLX.parents)
    compensated = (parents >= 0) & present  # a recorded joint below a filled one keeps its world orientation
    out = poses.poses.astype(np.float64, copy=True)
    for s, info in enumerate(poses.sequences):
        members = np.flatnonzero(poses.sequence == s)
        if not len(members):
            continue
        members = members[np.argsort(poses.frame[members], kind="stable")]
        rot = axis_angle_to_matrix(torch.from_numpy(out[members])).numpy()  # (T, 55, 3, 3)
        rng = _seed(seed, info.name)
        turn = np.broadcast_to(np.eye(3), (len(members), SMPLX.num_joints, 3, 3)).copy()
        for j, floor in zip(joints, floors, strict=True):
            noise = _smooth_noise(rng, len(members), info.fps if info.ordered else None)
            if poses.present[j] and len(members) > 1:
                mean = mean_rotation(torch.from_numpy(rot[:, j])).numpy()
                var, axes = np.linalg.eigh(np.cov(_log_rotations(rot[:, j], mean).T))
            else:  # held at rest: no spread of its own
                var, axes = np.zeros(3), np.eye(3)
            scale = np.sqrt(np.clip(floor**2 - var, 0.0, None))
            w = (noise * scale) @ axes.T  # (T, 3) in the joint's frame
            turn[:, j] = axis_angle_to_matrix(torch.from_numpy(w)).numpy()
        parent_turn = np.where(compensated[None, :, None, None], turn[:, np.maximum(parents, 0)], np.eye(3))
        rot = np.swapaxes(parent_turn, -1, -2) @ rot @ turn
        out[members] = canonical_axis_angle(matrix_to_axis_angle(torch.from_numpy(rot))).numpy()
    note = (
        f"degrees of freedom filled (probpose.data.dofs, seed {seed}): every body joint's spread floored at "
        + ", ".join(f"{j} {spread[j]:g}" for j in spread)
        + " degrees"
        + (f"; not recorded, so held at rest with that spread: {', '.join(filled_absent)}" if filled_absent else "")
    )
    sources = [dict(src, notes=[*src.get("notes", []), note]) for src in poses.sources]
    return replace(poses, poses=out.astype(poses.poses.dtype), present=present, sources=sources)
