"""The PASyn zebra rig as data: 27 bones with rest geometry, the 12 leg joints the pose priors
drive, the 19 keypoints of PASyn's ground truth, body shapes for rendering, and motion ranges.

Model frame (metres): x forward, y up, z to the animal's right; the ground is y = 0 in the rest
pose. Every bone has a head (its pivot) and a tail; its frame has Y along the bone (head -> tail),
X towards the animal's left (orthogonalised against Y) and Z = X x Y -- one convention for both
sides, which is how the PASyn leg angles behave (the mean flexion has the same sign on both sides,
abduction and twist opposite signs). A bone's pose rotation is applied in its own frame, so a
PASyn angle triple (x, y, z) with R = Rz Ry Rx bends about the bone's lateral axis first.

**Proportions are chosen, not measured** (PASyn publishes no bone lengths): a plains zebra of about
1.3 m at the withers and 2.4 m from muzzle to rump. The leg chains are straight in the rest pose
(every leg joint's identity rotation continues its parent's direction); the scapulae point 66
degrees below the horizontal and the pelvis bones straight back, so that the mean PASyn pose stands
(upperleg ~ -140, frontleg ~ -75, forearm ~ -105, thigh ~ -90, shin ~ -130 and backfoot ~ -75
degrees from the forward axis) -- the same rest directions PASyn-v2's Blender script implies with
its offsets (upperleg 74, frontleg -50, thigh -90, shin 31, backfoot -31 degrees).

Of the 27 bones, 23 are PASyn's (the 21 listed in its rig plus the two eye bones its keypoints
use); ``ear.L``, ``ear.R``, ``jaw`` and ``tail.001`` (the tail's tuft) are ours, for the silhouette.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from torch import Tensor

from probpose.kinematics.forward import Posed, forward_kinematics
from probpose.skeleton import ZEBRA_LEGS, Skeleton

__all__ = ["Bone", "Rig", "Keypoint", "ZEBRA_RIG", "PASYN_KEYPOINTS", "MotionRange"]


@dataclass(frozen=True)
class Bone:
    """One bone: ``head`` and ``tail`` in the rest pose (model frame, metres); the body part drawn
    for it, an ellipsoid whose semi-axes are ``width`` (along X, lateral), ``half_length + pad``
    (along the bone) and ``depth`` (along Z), centred ``drop`` metres along Z from the bone's
    midpoint; ``albedo`` (0-1 grey level of its light parts); ``stripes``; ``dark_end``: the last
    metres of the bone drawn dark (hooves, the muzzle)."""

    name: str
    parent: str | None
    head: tuple[float, float, float]
    tail: tuple[float, float, float]
    width: float
    depth: float
    pad: float = 0.0
    drop: float = 0.0
    albedo: float = 0.92
    stripes: bool = True
    dark_end: float = 0.0


@dataclass(frozen=True)
class Keypoint:
    """A ground-truth keypoint: the ``end`` (``"head"`` or ``"tail"``) of ``bone``."""

    name: str
    bone: str
    end: str = "tail"


@dataclass(frozen=True)
class MotionRange:
    """Range of a bone's smooth motion: Euler (x, y, z) angles in degrees, R = Rz Ry Rx, each a
    ``(low, high)`` pair, in the bone's frame."""

    x: tuple[float, float] = (0.0, 0.0)
    y: tuple[float, float] = (0.0, 0.0)
    z: tuple[float, float] = (0.0, 0.0)


def _frame(head: np.ndarray, tail: np.ndarray) -> np.ndarray:
    """Rest frame (columns X, Y, Z) of a bone: Y along it, X towards the animal's left (-z)."""
    y = tail - head
    y = y / np.linalg.norm(y)
    for hint in (np.array([0.0, 0.0, -1.0]), np.array([1.0, 0.0, 0.0])):
        x = hint - (hint @ y) * y
        if np.linalg.norm(x) > 0.2:
            break
    x = x / np.linalg.norm(x)
    return np.stack([x, y, np.cross(x, y)], axis=1)


class Rig:
    """A rigged body: bones (parents before children), keypoints, leg joints, motion ranges.

    Tensors are float64 on the CPU; :meth:`pose` moves them to the pose's dtype and device."""

    def __init__(
        self,
        name: str,
        bones: list[Bone],
        keypoints: list[Keypoint],
        edges: list[tuple[str, str]],
        legs: Skeleton,
        motion: dict[str, MotionRange],
        hooves: tuple[str, ...],
    ) -> None:
        self.name = name
        self.bones = tuple(bones)
        self.names = tuple(b.name for b in bones)
        index = {n: i for i, n in enumerate(self.names)}
        if len(index) != len(bones):
            raise ValueError(f"rig {name!r}: bone names are not unique")
        parents = tuple(-1 if b.parent is None else index[b.parent] for b in bones)
        if any(p >= i for i, p in enumerate(parents)):
            raise ValueError(f"rig {name!r}: every bone's parent must come before it")
        self.skeleton = Skeleton(name, self.names, parents)
        self.keypoints = tuple(keypoints)
        self.edges = tuple(edges)
        names = {k.name for k in keypoints}
        if any(a not in names or b not in names for a, b in edges):
            raise ValueError(f"rig {name!r}: an edge names an unknown keypoint")
        self.legs = legs
        self.leg_bones = tuple(index[n] for n in legs.joint_names)
        """Index of the bone each leg joint (in ``legs``' order) drives."""
        self.motion = {index[n]: r for n, r in motion.items()}
        self.hooves = tuple(index[n] for n in hooves)
        heads = np.array([b.head for b in bones], dtype=np.float64)
        tails = np.array([b.tail for b in bones], dtype=np.float64)
        frames = np.stack([_frame(h, t) for h, t in zip(heads, tails, strict=True)])
        rest = np.empty_like(frames)
        offsets = np.empty_like(heads)
        for i, p in enumerate(parents):
            if p < 0:
                rest[i], offsets[i] = frames[i], heads[i]
            else:
                rest[i] = frames[p].T @ frames[i]
                offsets[i] = frames[p].T @ (heads[i] - heads[p])
        self.heads = torch.from_numpy(heads)
        """``(B, 3)`` rest heads (pivots), model frame, metres."""
        self.tails = torch.from_numpy(tails)
        self.frames = torch.from_numpy(frames)
        """``(B, 3, 3)`` rest frames (columns X, Y, Z) in the model frame."""
        self.rest = torch.from_numpy(rest)
        """``(B, 3, 3)`` each bone's rest frame relative to its parent's (root: to the model frame)."""
        self.offsets = torch.from_numpy(offsets)
        """``(B, 3)`` each head relative to its parent's head, in the parent's frame (root: model frame)."""
        self.lengths = torch.from_numpy(np.linalg.norm(tails - heads, axis=1))

    @property
    def num_bones(self) -> int:
        return len(self.bones)

    def index(self, name: str) -> int:
        return self.skeleton.index(name)

    @cached_property
    def ellipsoids(self) -> tuple[Tensor, Tensor]:
        """Body shapes: centres ``(B, 3)`` and semi-axes ``(B, 3)`` in each bone's frame (metres)."""
        half = self.lengths.numpy() / 2
        centres = np.array([[0.0, h, b.drop] for b, h in zip(self.bones, half, strict=True)])
        radii = np.array([[b.width, h + b.pad, b.depth] for b, h in zip(self.bones, half, strict=True)])
        return torch.from_numpy(centres), torch.from_numpy(radii)

    @cached_property
    def keypoint_locals(self) -> tuple[Tensor, Tensor]:
        """Keypoints as (bone index ``(K,)``, point in that bone's frame ``(K, 3)``, metres)."""
        bones = torch.tensor([self.index(k.bone) for k in self.keypoints])
        local = torch.zeros(len(self.keypoints), 3, dtype=torch.float64)
        for i, k in enumerate(self.keypoints):
            if k.end == "tail":
                local[i, 1] = self.lengths[self.index(k.bone)]
        return bones, local

    @cached_property
    def keypoint_owners(self) -> tuple[frozenset[int], ...]:
        """Per keypoint, the bones whose surface around it counts as the keypoint itself (for
        visibility): its bone, and bones whose head or tail sits at the keypoint (within 1 cm)."""
        bones, local = self.keypoint_locals
        pts = self.heads[bones] + (self.frames[bones] @ local.unsqueeze(-1)).squeeze(-1)
        owners = []
        for k, p in enumerate(pts):
            near = (self.heads - p).norm(dim=1).lt(0.01) | (self.tails - p).norm(dim=1).lt(0.01)
            owners.append(frozenset([int(bones[k])] + near.nonzero().flatten().tolist()))
        return tuple(owners)

    @cached_property
    def keypoint_edges(self) -> tuple[tuple[int, int], ...]:
        """Pairs of keypoint indices (0-based) joined for drawing and COCO's ``skeleton``."""
        index = {k.name: i for i, k in enumerate(self.keypoints)}
        return tuple((index[a], index[b]) for a, b in self.edges)

    def pose(
        self, rotations: Tensor, root_rotation: Tensor | None = None, root_position: Tensor | None = None
    ) -> Posed:
        """Forward kinematics: local rotations ``(..., B, 3, 3)`` -> world bone frames and heads."""
        return forward_kinematics(self.skeleton, rotations, self.offsets, self.rest, root_rotation, root_position)

    def tails_of(self, posed: Posed) -> Tensor:
        """World tail positions ``(..., B, 3)`` of a posed rig."""
        y = torch.zeros(self.num_bones, 3, dtype=posed.positions.dtype, device=posed.positions.device)
        y[:, 1] = self.lengths.to(y)
        return posed.points(y)

    def keypoints_of(self, posed: Posed) -> Tensor:
        """World keypoint positions ``(..., K, 3)`` of a posed rig."""
        bones, local = self.keypoint_locals
        bones = bones.to(posed.positions.device)
        local = local.to(posed.positions)
        g = posed.rotations[..., bones, :, :]
        return posed.positions[..., bones, :] + (g @ local.unsqueeze(-1)).squeeze(-1)


def _leg(side: str, z: float) -> list[Bone]:
    """One side's front and hind leg chains (z > 0: right). Straight chains in the rest pose."""
    front_dir = np.array([np.cos(np.radians(-66.0)), np.sin(np.radians(-66.0)), 0.0])
    hind_dir = np.array([-1.0, 0.0, 0.0])
    bones: list[Bone] = []

    Spec = tuple[str, str, float, float, float, float, float]

    def chain(start: np.ndarray, direction: np.ndarray, specs: list[Spec]) -> None:
        head = start
        for name, parent, length, width, depth, pad, dark in specs:
            tail = head + length * direction
            head_t, tail_t = tuple(head.round(6)), tuple(tail.round(6))
            bones.append(Bone(name, parent, head_t, tail_t, width, depth, pad, dark_end=dark))
            head = tail

    chain(np.array([0.50, 1.28, z]), front_dir, [
        (f"shoulder.{side}", "neck2", 0.38, 0.09, 0.13, 0.04, 0.0),
        (f"upperleg.{side}", f"shoulder.{side}", 0.30, 0.075, 0.095, 0.04, 0.0),
        (f"frontleg.{side}", f"upperleg.{side}", 0.35, 0.055, 0.065, 0.03, 0.0),
        (f"forearm.{side}", f"frontleg.{side}", 0.40, 0.04, 0.045, 0.025, 0.07),
    ])  # fmt: skip
    chain(np.array([-0.30, 1.28, z]), hind_dir, [
        (f"pelvis.{side}", "torso", 0.28, 0.12, 0.16, 0.05, 0.0),
        (f"thigh.{side}", f"pelvis.{side}", 0.42, 0.10, 0.13, 0.04, 0.0),
        (f"shin.{side}", f"thigh.{side}", 0.40, 0.06, 0.07, 0.03, 0.0),
        (f"backfoot.{side}", f"shin.{side}", 0.50, 0.04, 0.045, 0.025, 0.07),
    ])  # fmt: skip
    return bones


def _zebra() -> Rig:
    b = Bone
    front = [
        b("torso", None, (-0.45, 1.30, 0.0), (0.55, 1.30, 0.0), width=0.25, depth=0.32, pad=0.18, drop=0.18),
        b("neck2", "torso", (0.55, 1.30, 0.0), (0.78, 1.52, 0.0), width=0.15, depth=0.20, pad=0.08),
    ]
    legs = _leg("R", 0.13)
    legs_r_front, legs_r_hind = legs[:4], legs[4:]
    legs = _leg("L", -0.13)
    legs_l_front, legs_l_hind = legs[:4], legs[4:]
    rest = [
        b("tail", "torso", (-0.60, 1.30, 0.0), (-0.72, 1.02, 0.0), width=0.03, depth=0.03, pad=0.02),
        b("neck", "neck2", (0.78, 1.52, 0.0), (0.98, 1.80, 0.0), width=0.10, depth=0.15, pad=0.06),
        b("head", "neck", (0.98, 1.80, 0.0), (1.36, 1.42, 0.0), width=0.085, depth=0.12, pad=0.03, dark_end=0.10),
        b("lefteye", "head", (1.05, 1.76, -0.05), (1.09, 1.74, -0.09), width=0.022, depth=0.022, pad=0.005,
          albedo=0.05, stripes=False),
        b("righteye", "head", (1.05, 1.76, 0.05), (1.09, 1.74, 0.09), width=0.022, depth=0.022, pad=0.005,
          albedo=0.05, stripes=False),
        b("ear.L", "head", (0.97, 1.86, -0.05), (0.93, 2.02, -0.10), width=0.025, depth=0.05, pad=0.01),
        b("ear.R", "head", (0.97, 1.86, 0.05), (0.93, 2.02, 0.10), width=0.025, depth=0.05, pad=0.01),
        b("jaw", "head", (1.02, 1.66, 0.0), (1.30, 1.40, 0.0), width=0.06, depth=0.05, pad=0.01, albedo=0.25,
          stripes=False),
        b("tail.001", "tail", (-0.72, 1.02, 0.0), (-0.76, 0.72, 0.0), width=0.04, depth=0.045, pad=0.02,
          albedo=0.08, stripes=False),
    ]  # fmt: skip
    bones = front + legs_r_front + legs_l_front + legs_r_hind + legs_l_hind + rest
    keypoints = [
        Keypoint("head", "head"), Keypoint("neck2", "neck2"), Keypoint("torso", "torso"),
        Keypoint("upperleg.R", "upperleg.R"), Keypoint("frontleg.R", "frontleg.R"), Keypoint("forearm.R", "forearm.R"),
        Keypoint("upperleg.L", "upperleg.L"), Keypoint("frontleg.L", "frontleg.L"), Keypoint("forearm.L", "forearm.L"),
        Keypoint("pelvis", "torso", "head"),
        Keypoint("pelvis.R", "pelvis.R"), Keypoint("shin.R", "shin.R"), Keypoint("backfoot.R", "backfoot.R"),
        Keypoint("pelvis.L", "pelvis.L"), Keypoint("shin.L", "shin.L"), Keypoint("backfoot.L", "backfoot.L"),
        Keypoint("tail", "tail"), Keypoint("lefteye", "lefteye"), Keypoint("righteye", "righteye"),
    ]  # fmt: skip
    motion = {
        # PASyn-v2's ranges for the bones it moves (there: new random integers every frame; here:
        # smooth curves inside the same ranges), small ones for the bones it keeps still.
        "torso": MotionRange(x=(-3, 3), z=(-2, 2)),
        "neck2": MotionRange(x=(-10, 10)),
        "neck": MotionRange(x=(-10, 10), y=(-10, 10), z=(-10, 10)),
        "head": MotionRange(x=(-30, 30), y=(-20, 30), z=(-40, 40)),
        "tail": MotionRange(x=(-30, 30), z=(0, 10)),
        "tail.001": MotionRange(x=(-20, 20), z=(-10, 10)),
        "ear.L": MotionRange(x=(-20, 20), z=(-10, 10)),
        "ear.R": MotionRange(x=(-20, 20), z=(-10, 10)),
        "jaw": MotionRange(x=(0, 6)),
    }
    edges = [
        ("torso", "neck2"),
        ("neck2", "head"),
        ("head", "lefteye"),
        ("head", "righteye"),
        ("torso", "pelvis"),
        ("pelvis", "tail"),
    ]
    for side in "RL":
        edges += [
            ("torso", f"upperleg.{side}"),
            (f"upperleg.{side}", f"frontleg.{side}"),
            (f"frontleg.{side}", f"forearm.{side}"),
            ("pelvis", f"pelvis.{side}"),
            (f"pelvis.{side}", f"shin.{side}"),
            (f"shin.{side}", f"backfoot.{side}"),
        ]
    hooves = ("forearm.R", "forearm.L", "backfoot.R", "backfoot.L")
    return Rig("zebra", bones, keypoints, edges, ZEBRA_LEGS, motion, hooves=hooves)


ZEBRA_RIG = _zebra()
"""The 27-bone zebra rig (see the module docstring for its conventions and provenance)."""

PASYN_KEYPOINTS = tuple(k.name for k in ZEBRA_RIG.keypoints)
"""PASyn's 19 keypoints, in the order of ``blender_gt.npy``'s (x, y) pairs."""
