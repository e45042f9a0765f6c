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

from probpose.kinematics.forward import Posed
from probpose.kinematics.rig import Rig
from probpose.rotations import matrix_to_euler

__all__ = ["write_bvh", "write_bvh_tree", "bvh_channels"]


def _world_aligned_locals(frames: torch.Tensor, parents: list[int]) -> torch.Tensor:
    """World rotations ``(N, B, 3, 3)`` of world-aligned joint frames -> local ``Q_parent^T Q_b``."""
    local = torch.empty_like(frames)
    for b, p in enumerate(parents):
        local[:, b] = frames[:, b] if p < 0 else frames[:, p].transpose(-1, -2) @ frames[:, b]
    return local


def bvh_channels(rig: Rig, posed: Posed) -> np.ndarray:
    """Motion rows ``(N, 3 + 3B)``: root position (metres) then per bone (z, y, x) Euler degrees."""
    g = posed.rotations.detach().cpu().double()
    q = g @ rig.frames.to(g).transpose(-1, -2)  # world rotation of each world-aligned joint frame
    local = _world_aligned_locals(q, list(rig.skeleton.parents))
    root = posed.positions[:, rig.skeleton.roots[0]].detach().cpu().double()
    return _rows(local, root)


def _rows(local: torch.Tensor, root: torch.Tensor) -> np.ndarray:
    euler = matrix_to_euler(local, "XYZ", degrees=True)  # (N, B, 3) as (x, y, z), R = Rz Ry Rx
    return torch.cat([root, euler.flip(-1).reshape(len(local), -1)], 1).numpy()


def write_bvh(path: str | Path, rig: Rig, posed: Posed, fps: float) -> None:
    """Write ``posed`` (``N`` frames of ``rig``) to ``path`` as BVH at ``fps`` frames per second."""
    if len(rig.skeleton.roots) != 1:
        raise ValueError("BVH needs a rig with exactly one root bone")
    g = posed.rotations.detach().cpu().double()
    local = _world_aligned_locals(g @ rig.frames.to(g).transpose(-1, -2), list(rig.skeleton.parents))
    root = posed.positions[:, rig.skeleton.roots[0]].detach().cpu().double()
    write_bvh_tree(path, rig.names, rig.skeleton.parents, rig.heads.numpy(), rig.tails.numpy(), local, root, fps)


def write_bvh_tree(
    path: str | Path,
    names: tuple[str, ...] | list[str],
    parents: tuple[int, ...] | list[int],
    heads: np.ndarray,
    tails: np.ndarray,
    local: torch.Tensor,
    root_position: torch.Tensor,
    fps: float,
) -> None:
    """Write any tree as BVH: joints at rest ``heads`` ``(B, 3)`` (metres, world), leaves ending in
    an ``End Site`` at their ``tails``, ``N`` frames of ``local`` rotations ``(N, B, 3, 3)`` in
    world-aligned rest frames, the root at ``root_position`` ``(N, 3)``."""
    roots = [b for b, p in enumerate(parents) if p < 0]
    if len(roots) != 1:
        raise ValueError("BVH needs a tree with exactly one root")
    children: dict[int, list[int]] = {b: [] for b in range(len(names))}
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
            lines.append(f"{pad}ROOT {names[b]}")
            lines.append(f"{pad}{{")
            lines.append(f"{pad}  OFFSET 0.000000 0.000000 0.000000")
            lines.append(f"{pad}  CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation")
        else:
            lines.append(f"{pad}JOINT {names[b]}")
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

    emit(roots[0], 0)
    rows = _rows(local.double(), root_position.double())
    root_cols = rows[:, :3]
    rot_cols = rows[:, 3:].reshape(len(rows), len(names), 3)[:, order].reshape(len(rows), -1)
    motion = np.concatenate([root_cols, rot_cols], 1)
    lines += ["MOTION", f"Frames: {len(motion)}", f"Frame Time: {1.0 / fps:.8f}"]
    body = "\n".join(" ".join(f"{x:.6f}" for x in row) for row in motion)
    Path(path).write_text("\n".join(lines) + "\n" + body + "\n")
