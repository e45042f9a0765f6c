"""Writing an animated rig as BVH (Biovision hierarchy), the motion format Blender, Maya and
MotionBuilder import.

BVH joints sit at the bones' heads and rotate in world-aligned rest frames, so each bone's frame
is re-expressed: with ``W_b`` the bone's rest frame in the model frame and ``G_b`` its posed world
frame, the BVH joint's world rotation is ``Q_b = G_b W_b^T`` and its channels hold
``Q_parent^T Q_b`` as ``Zrotation Yrotation Xrotation`` (R = Rz Ry Rx, degrees). Offsets are the
rest head-to-head vectors in the model frame (metres, y up); leaf bones end in an ``End Site`` at
their tails. The root's channels carry its world position (its ``OFFSET`` is zero), so every
joint's world position is the same as probpose's forward kinematics, up to the 6 decimals written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from probpose.rotations import matrix_to_euler
from probpose.synthesis.kinematics import Posed
from probpose.synthesis.rig import Rig

__all__ = ["write_bvh", "bvh_channels"]


def bvh_channels(rig: Rig, posed: Posed) -> np.ndarray:
    """Motion rows ``(N, 3 + 3B)``: root position (metres) then per bone (z, y, x) Euler degrees."""
    g = posed.rotations.detach().cpu().double()
    w = rig.frames.to(g)
    q = g @ w.transpose(-1, -2)  # world rotation of each world-aligned joint frame
    parents = list(rig.skeleton.parents)
    local = torch.empty_like(q)
    for b, p in enumerate(parents):
        local[:, b] = q[:, b] if p < 0 else q[:, p].transpose(-1, -2) @ q[:, b]
    euler = matrix_to_euler(local, "XYZ", degrees=True)  # (N, B, 3) as (x, y, z), R = Rz Ry Rx
    zyx = euler.flip(-1).reshape(len(g), -1)
    root = posed.positions[:, rig.skeleton.roots[0]].detach().cpu().double()
    return torch.cat([root, zyx], 1).numpy()


def write_bvh(path: str | Path, rig: Rig, posed: Posed, fps: float) -> None:
    """Write ``posed`` (``N`` frames of ``rig``) to ``path`` as BVH at ``fps`` frames per second."""
    if len(rig.skeleton.roots) != 1:
        raise ValueError("BVH needs a rig with exactly one root bone")
    heads = rig.heads.numpy()
    tails = rig.tails.numpy()
    parents = rig.skeleton.parents
    children: dict[int, list[int]] = {b: [] for b in range(rig.num_bones)}
    for b, p in enumerate(parents):
        if p >= 0:
            children[p].append(b)
    lines: list[str] = ["HIERARCHY"]
    order: list[int] = []  # bones in the order their channels appear

    def fmt(v: np.ndarray) -> str:
        return " ".join(f"{x:.6f}" for x in v)

    def emit(b: int, depth: int) -> None:
        pad = "  " * depth
        order.append(b)
        if parents[b] < 0:
            lines.append(f"{pad}ROOT {rig.names[b]}")
            lines.append(f"{pad}{{")
            lines.append(f"{pad}  OFFSET 0.000000 0.000000 0.000000")
            lines.append(f"{pad}  CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation")
        else:
            lines.append(f"{pad}JOINT {rig.names[b]}")
            lines.append(f"{pad}{{")
            lines.append(f"{pad}  OFFSET {fmt(heads[b] - heads[parents[b]])}")
            lines.append(f"{pad}  CHANNELS 3 Zrotation Yrotation Xrotation")
        for c in children[b]:
            emit(c, depth + 1)
        if not children[b]:
            lines.append(f"{pad}  End Site")
            lines.append(f"{pad}  {{")
            lines.append(f"{pad}    OFFSET {fmt(tails[b] - heads[b])}")
            lines.append(f"{pad}  }}")
        lines.append(f"{pad}}}")

    emit(rig.skeleton.roots[0], 0)
    rows = bvh_channels(rig, posed)
    root_cols = rows[:, :3]
    rot_cols = rows[:, 3:].reshape(len(rows), rig.num_bones, 3)[:, order].reshape(len(rows), -1)
    motion = np.concatenate([root_cols, rot_cols], 1)
    lines += ["MOTION", f"Frames: {len(motion)}", f"Frame Time: {1.0 / fps:.8f}"]
    body = "\n".join(" ".join(f"{x:.6f}" for x in row) for row in motion)
    Path(path).write_text("\n".join(lines) + "\n" + body + "\n")
