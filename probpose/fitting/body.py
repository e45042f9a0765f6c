"""Bodies: what turns a pose (the prior's joints), a global orientation and a translation into the
3D points an observation sees. One forward kinematics for all: :func:`probpose.kinematics.forward_kinematics`.

- :class:`SkeletonBody`: the SMPL family. The tree's joints are the points; rest frames are world
  aligned (``rest=None``); the root joint's rotation is the global orientation and the root sits at
  the translation plus its rest location (SMPL's convention).
- :class:`RigBody`: a rigged animal (the zebra). The prior drives its leg bones; the other bones keep
  their rest rotation; the root transform is the global orientation and translation; the points are
  the rig's keypoints (PASyn's 19).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from probpose.data.rest import load_rest_joints, rest_joints
from probpose.errors import DataError
from probpose.kinematics import ZEBRA_RIG, Rig, forward_kinematics, offsets_from_joints
from probpose.rotations import axis_angle_to_matrix
from probpose.skeleton import Skeleton, get_skeleton

__all__ = ["Body", "SkeletonBody", "RigBody", "make_body"]


class Body:
    """Base: ``tree`` (the FK skeleton), ``point_names`` (what observations index), ``driven``
    (indices in ``tree`` of the prior's joints), and :meth:`points`."""

    tree: Skeleton
    point_names: tuple[str, ...]

    def __init__(self, joint_names: Sequence[str]) -> None:
        names = list(joint_names)
        unknown = [n for n in names if n not in self.tree.joint_names]
        if unknown:
            first = ", ".join(self.tree.joint_names[:4])
            raise DataError(
                self.tree.name,
                None,
                f"the prior's joints {unknown[:4]} are not joints of this "
                f"body ({self.tree.num_joints} joints: {first}, ...)",
            )
        self.joint_names = tuple(names)
        self.driven = torch.tensor([self.tree.index(n) for n in names], dtype=torch.long)

    def _rotations(self, pose: Tensor) -> Tensor:
        """``(..., J_prior, 3)`` axis-angle -> ``(..., J_tree, 3, 3)`` local rotations (identity elsewhere)."""
        lead = pose.shape[:-2]
        full = torch.eye(3, dtype=pose.dtype, device=pose.device).expand(lead + (self.tree.num_joints, 3, 3))
        full = full.clone()
        full[..., self.driven.to(pose.device), :, :] = axis_angle_to_matrix(pose)
        return full

    @property
    def point_edges(self) -> list[tuple[int, int]]:
        """Pairs of indices into :meth:`points`' K points that a stick figure joins."""
        raise NotImplementedError

    def points(self, pose: Tensor, orient: Tensor, transl: Tensor) -> Tensor:
        """Pose ``(..., J_prior, 3)`` axis-angle radians, ``orient`` ``(..., 3)`` axis-angle,
        ``transl`` ``(..., 3)`` metres -> world points ``(..., K, 3)`` metres."""
        raise NotImplementedError


class SkeletonBody(Body):
    """An SMPL-family tree with rest joint locations ``(J_tree, 3)`` (metres)."""

    def __init__(self, tree: Skeleton, rest_joints: Tensor, joint_names: Sequence[str]) -> None:
        self.tree = tree
        if rest_joints.shape != (tree.num_joints, 3):
            raise DataError("rest joints", None, f"expected ({tree.num_joints}, 3), got {tuple(rest_joints.shape)}")
        self.rest_joints = rest_joints.double()
        self.offsets = offsets_from_joints(tree, self.rest_joints)
        self.point_names = tree.joint_names
        super().__init__(joint_names)
        roots = [j for j, p in enumerate(tree.parents) if p < 0]
        if len(roots) != 1:
            raise DataError(tree.name, None, f"a body needs one root joint, this tree has {len(roots)}")
        self.root = roots[0]
        if self.root in self.driven.tolist():
            raise DataError(
                tree.name,
                None,
                f"the prior models the root joint {tree.joint_names[self.root]!r}: "
                "its rotation is the global orientation, fitted separately",
            )
        # Forward kinematics runs on the joints that can move (the root, the driven joints and their
        # ancestors); every other joint keeps its rest rotation, so it moves rigidly with its nearest
        # moving ancestor ``a``: ``p_j = p_a + G_a (J_j - J_a)`` (world-aligned rest frames). Same
        # points as the whole tree's FK (tested), at a fraction of its cost when hands are fixed.
        moving = {self.root}
        for j in self.driven.tolist():
            while j >= 0 and j not in moving:
                moving.add(j)
                j = tree.parents[j]
        order = sorted(moving)
        self._moving = torch.tensor(order)
        keep = {j: i for i, j in enumerate(order)}
        self._moving_root = keep[self.root]
        self._moving_tree = Skeleton(
            f"{tree.name}[moving]",
            tuple(tree.joint_names[j] for j in order),
            tuple(keep[tree.parents[j]] if tree.parents[j] >= 0 else -1 for j in order),
        )
        self._moving_offsets = offsets_from_joints(self._moving_tree, self.rest_joints[self._moving])
        self._moving_driven = torch.tensor([keep[j] for j in self.driven.tolist()], dtype=torch.long)
        anchor = []
        for j in range(tree.num_joints):
            a = j
            while a not in moving:
                a = tree.parents[a]
            anchor.append(keep[a])
        self._anchor = torch.tensor(anchor)  # (J_tree,) index into the moving joints
        self._anchor_offset = self.rest_joints - self.rest_joints[self._moving][self._anchor]  # (J_tree, 3)

    @property
    def point_edges(self) -> list[tuple[int, int]]:
        return [(p, j) for j, p in enumerate(self.tree.parents) if p >= 0]

    def points(self, pose: Tensor, orient: Tensor, transl: Tensor) -> Tensor:
        lead = torch.broadcast_shapes(pose.shape[:-2], orient.shape[:-1], transl.shape[:-1])
        dev = pose.device
        eye = torch.eye(3, dtype=pose.dtype, device=dev)
        rot = eye.expand(lead + (self._moving_tree.num_joints, 3, 3)).clone()
        rot[..., self._moving_driven.to(dev), :, :] = axis_angle_to_matrix(pose).expand(lead + pose.shape[-2:] + (3,))
        rot[..., self._moving_root, :, :] = axis_angle_to_matrix(orient).expand(lead + (3, 3))
        posed = forward_kinematics(self._moving_tree, rot, self._moving_offsets.to(pose), None, None, transl)
        anchor = self._anchor.to(dev)
        rel = (posed.rotations.index_select(-3, anchor) @ self._anchor_offset.to(pose).unsqueeze(-1)).squeeze(-1)
        return posed.positions.index_select(-2, anchor) + rel


class RigBody(Body):
    """A rig (its bones' rest frames and keypoints): the prior drives the bones named like its joints."""

    def __init__(self, rig: Rig, joint_names: Sequence[str] | None = None) -> None:
        self.rig = rig
        self.tree = rig.skeleton
        self.point_names = tuple(k.name for k in rig.keypoints)
        super().__init__(rig.legs.joint_names if joint_names is None else joint_names)

    @property
    def point_edges(self) -> list[tuple[int, int]]:
        return list(self.rig.keypoint_edges)

    def points(self, pose: Tensor, orient: Tensor, transl: Tensor) -> Tensor:
        posed = self.rig.pose(self._rotations(pose), axis_angle_to_matrix(orient), transl)
        return self.rig.keypoints_of(posed)


def make_body(skeleton: str, joint_names: Sequence[str], rest: str | Path | None = None) -> Body:
    """The body a prior over ``joint_names`` of the base ``skeleton`` drives: the zebra rig for
    ``zebra_legs``, the SMPL family's tree with ``rest`` joints (a ``(J, 3)`` ``.npy`` in metres;
    default: probpose's approximate proportions) otherwise."""
    base = get_skeleton(skeleton)
    if base.name == "zebra_legs":
        if rest is not None:
            raise DataError(str(rest), None, "rest joints are for the SMPL family; the zebra rig has its own rest pose")
        return RigBody(ZEBRA_RIG, joint_names)
    joints = load_rest_joints(rest, base) if rest is not None else rest_joints(base)
    return SkeletonBody(base, joints, joint_names)
