"""Forward kinematics of any kinematic tree: the one implementation (docs/architecture.md,
"Synthesis and fitting conventions").

A tree is a :class:`~probpose.skeleton.Skeleton` (names and parents) plus rest geometry:

- ``offsets`` ``(J, 3)``: where each joint's pivot sits relative to its parent's pivot, in the
  parent's rest frame (metres); for a root, its position in the model frame.
- ``rest`` ``(J, 3, 3)`` or ``None``: each joint's rest frame relative to its parent's rest frame
  (for a root: relative to the model frame). ``None`` means identity everywhere: the SMPL family,
  whose local rotations are expressed in world-aligned rest frames.

A pose is one local rotation per joint, ``(..., J, 3, 3)``, applied in the joint's own rest frame:

    G_j = G_parent(j) @ rest_j @ R_j          (G_root = root_rotation @ rest_root @ R_root)
    p_j = p_parent(j) + G_parent(j) @ offsets_j
    p_root = root_position + root_rotation @ offsets_root

``G_j`` is joint ``j``'s posed frame (frame -> world), ``p_j`` its pivot. For SMPL/SMPL-X (``rest=None``,
``offsets_j = J_j - J_parent(j)`` from the rest joint locations, ``R_0`` the global orientation,
``root_position`` the translation) this is exactly SMPL's joint regression chain.

Batched over any leading shape, one batched matrix product per depth level (no loop over joints),
any dtype and device, differentiable.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from probpose.skeleton import Skeleton

__all__ = ["Posed", "forward_kinematics", "offsets_from_joints"]


@dataclass(frozen=True)
class Posed:
    """The result of forward kinematics.

    Attributes:
        rotations: ``(..., J, 3, 3)`` world orientation of each joint's frame (frame -> world).
        positions: ``(..., J, 3)`` world position of each joint's pivot (metres).
    """

    rotations: Tensor
    positions: Tensor

    def points(self, local: Tensor) -> Tensor:
        """World positions of points fixed in the joints' frames: ``local`` ``(J, 3)`` (one point per
        joint, metres in that joint's frame) -> ``(..., J, 3)``."""
        return self.positions + (self.rotations @ local.to(self.positions).unsqueeze(-1)).squeeze(-1)


def offsets_from_joints(skeleton: Skeleton, joints: Tensor) -> Tensor:
    """Offsets ``(J, 3)`` for world-aligned rest frames (``rest=None``, the SMPL family) from rest
    joint locations ``(J, 3)`` (metres): ``J_j - J_parent(j)``, and ``J_root`` for a root."""
    if joints.shape != (skeleton.num_joints, 3):
        raise ValueError(f"joints must be ({skeleton.num_joints}, 3), got {tuple(joints.shape)}")
    parents = torch.tensor(skeleton.parents, device=joints.device)
    parent_pos = torch.where((parents >= 0).unsqueeze(-1), joints[parents.clamp_min(0)], torch.zeros_like(joints))
    return joints - parent_pos


def _check(skeleton: Skeleton, rotations: Tensor, offsets: Tensor, rest: Tensor | None) -> None:
    j = skeleton.num_joints
    if rotations.shape[-3:] != (j, 3, 3):
        shape = tuple(rotations.shape)
        raise ValueError(f"rotations must be (..., {j}, 3, 3) for skeleton {skeleton.name!r}, got {shape}")
    if offsets.shape != (j, 3):
        raise ValueError(f"offsets must be ({j}, 3), got {tuple(offsets.shape)}")
    if rest is not None and rest.shape != (j, 3, 3):
        raise ValueError(f"rest must be ({j}, 3, 3) or None, got {tuple(rest.shape)}")


def _root_terms(rotations: Tensor, root_rotation: Tensor | None, root_position: Tensor | None) -> tuple[Tensor, Tensor]:
    batch = rotations.shape[:-3]
    eye = torch.eye(3, dtype=rotations.dtype, device=rotations.device)
    rr = eye.expand(batch + (3, 3)) if root_rotation is None else root_rotation.to(rotations).expand(batch + (3, 3))
    zero = rotations.new_zeros(batch + (3,))
    rp = zero if root_position is None else root_position.to(rotations).expand(batch + (3,))
    return rr, rp


def forward_kinematics(
    skeleton: Skeleton,
    rotations: Tensor,
    offsets: Tensor,
    rest: Tensor | None = None,
    root_rotation: Tensor | None = None,
    root_position: Tensor | None = None,
) -> Posed:
    """World joint frames and positions from local rotations.

    Args:
        skeleton: the tree (parents need not precede children).
        rotations: ``(..., J, 3, 3)`` local pose rotations, each in its joint's rest frame.
        offsets: ``(J, 3)`` rest offsets (metres; see the module docstring).
        rest: ``(J, 3, 3)`` rest frames relative to the parents' rest frames, or ``None`` (identity).
        root_rotation: ``(..., 3, 3)`` model -> world rotation, or ``None`` (identity).
        root_position: ``(..., 3)`` model origin in the world (metres), or ``None`` (zero).

    Returns:
        :class:`Posed` with ``rotations (..., J, 3, 3)`` and ``positions (..., J, 3)``.
    """
    _check(skeleton, rotations, offsets, rest)
    offsets = offsets.to(rotations)
    rr, rp = _root_terms(rotations, root_rotation, root_position)
    local = rotations if rest is None else rest.to(rotations) @ rotations
    batch = rotations.shape[:-3]
    frames: list[Tensor] = []  # per level: (..., n_level, 3, 3)
    points: list[Tensor] = []  # per level: (..., n_level, 3)
    where: dict[int, tuple[int, int]] = {}  # joint -> (level, position in level)
    for k, level in enumerate(skeleton.levels):
        idx = torch.tensor(level, device=rotations.device)
        for i, j in enumerate(level):
            where[j] = (k, i)
        if k == 0:
            g = rr.unsqueeze(-3) @ local.index_select(-3, idx)
            p = rp.unsqueeze(-2) + (rr.unsqueeze(-3) @ offsets[idx].unsqueeze(-1)).squeeze(-1)
        else:
            pidx = torch.tensor([where[skeleton.parents[j]][1] for j in level], device=rotations.device)
            gp, pp = frames[k - 1].index_select(-3, pidx), points[k - 1].index_select(-2, pidx)
            g = gp @ local.index_select(-3, idx)
            p = pp + (gp @ offsets[idx].unsqueeze(-1)).squeeze(-1)
        frames.append(g)
        points.append(p)
    flat = [j for level in skeleton.levels for j in level]
    inverse = torch.empty(len(flat), dtype=torch.long)
    inverse[torch.tensor(flat)] = torch.arange(len(flat))
    inverse = inverse.to(rotations.device)
    g_all = torch.cat(frames, dim=-3).index_select(-3, inverse) if frames else rotations.new_zeros(batch + (0, 3, 3))
    p_all = torch.cat(points, dim=-2).index_select(-2, inverse) if points else rotations.new_zeros(batch + (0, 3))
    return Posed(g_all, p_all)
