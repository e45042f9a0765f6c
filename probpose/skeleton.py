"""Kinematic trees as data, named joint selections and flat-layout conversions.

A :class:`Skeleton` is an immutable list of joint names with one parent index per joint
(``-1`` for a root). Everything else -- depth levels, topological order, children -- is derived
from those two lists, so a skeleton is fully described by data and can be stored in a file.

Presets: :data:`SMPLX` (55 joints), :data:`SMPLH` (52), :data:`SMPL` (24), :data:`HAND_LEFT`
and :data:`HAND_RIGHT` (15 each), :data:`ZEBRA_LEGS` (12 joints in four chains).

Joint selections (``"body"``, ``"hands"``, ``"body+hands"``, ...) pick a subset of a skeleton's
joints; :meth:`Skeleton.select` returns the sub-skeleton in which each joint's parent is its nearest
selected ancestor (``-1`` if none is selected).

Flat layouts are the vectors users already have (AMASS ``poses`` with 165 or 156 columns, SMPL's
72, ...). :func:`unflatten` turns one into ``(N, J, 3)`` SMPL-X-ordered joints with a mask of the
joints it actually holds; :func:`flatten` goes back.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from probpose.errors import SelectionError, short_repr
from probpose.options import MAX_JOINTS

__all__ = [
    "Skeleton",
    "SMPLX",
    "SMPLH",
    "SMPL",
    "HAND_LEFT",
    "HAND_RIGHT",
    "ZEBRA_LEGS",
    "SKELETONS",
    "get_skeleton",
    "SELECTIONS",
    "Layout",
    "LAYOUTS",
    "layout_for_size",
    "unflatten",
    "flatten",
]


@dataclass(frozen=True)
class Skeleton:
    """A kinematic tree.

    Attributes:
        name: preset name (``"smplx"``, ``"zebra_legs"``, ...) or, for a selection, the preset's
            name with the selection in brackets (``"smplx[body+hands]"``); a label only.
        joint_names: one name per joint, unique.
        parents: parent index per joint, ``-1`` for a root. Parents need not precede children.
        base_name: the preset this skeleton was selected from (its own ``name`` for a preset).
        selection: the selection expression that picks these joints from ``base_name``'s preset
            (``"all"`` for a preset). Data, not parsed from ``name``: selecting from a selection
            gives an expression that is valid on the preset itself.
    """

    name: str
    joint_names: tuple[str, ...]
    parents: tuple[int, ...]
    base_name: str = ""
    selection: str = "all"

    def __post_init__(self) -> None:
        if not self.base_name:
            object.__setattr__(self, "base_name", self.name)
        n = len(self.joint_names)
        if n > MAX_JOINTS:
            raise ValueError(
                f"skeleton {short_repr(self.name)}: {n:,} joints, more than the {MAX_JOINTS:,} "
                "probpose allows (PROBPOSE_MAX_JOINTS)"
            )
        if len(self.parents) != n:
            raise ValueError(f"skeleton {self.name!r}: {n} joint names but {len(self.parents)} parents")
        if len(set(self.joint_names)) != n:
            raise ValueError(f"skeleton {self.name!r}: joint names are not unique")
        for j, p in enumerate(self.parents):
            if not -1 <= p < n or p == j:
                raise ValueError(f"skeleton {self.name!r}: joint {self.joint_names[j]!r} has invalid parent {p}")
        # Every joint must reach a root. One pass: a joint is settled once its path to a root is
        # known; a walk that meets a joint of its own unsettled path is a cycle (linear time).
        settled = [False] * n
        for j in range(n):
            path, on_path, k = [], set(), j
            while k != -1 and not settled[k]:
                if k in on_path:
                    raise ValueError(f"skeleton {self.name!r}: cycle through joint {self.joint_names[k]!r}")
                on_path.add(k)
                path.append(k)
                k = self.parents[k]
            for k in path:
                settled[k] = True

    # ------------------------------------------------------------------ derived structure
    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def __len__(self) -> int:
        return self.num_joints

    def index(self, joint: str) -> int:
        """Index of a joint by name; ``KeyError`` naming the skeleton if absent."""
        try:
            return self.joint_names.index(joint)
        except ValueError:
            raise SelectionError(f"skeleton {self.name!r} has no joint {joint!r}") from None

    @cached_property
    def depth(self) -> tuple[int, ...]:
        """Depth per joint: 0 for roots, parent's depth + 1 otherwise."""
        d: list[int] = [-1] * self.num_joints
        for j in range(self.num_joints):  # iterative: a long chain must not exhaust the call stack
            path, k = [], j
            while k >= 0 and d[k] < 0:
                path.append(k)
                k = self.parents[k]
            base = d[k] if k >= 0 else -1
            for i, k in enumerate(reversed(path)):
                d[k] = base + 1 + i
        return tuple(d)

    @cached_property
    def levels(self) -> tuple[tuple[int, ...], ...]:
        """Joint indices grouped by depth: ``levels[0]`` are the roots, ``levels[k]`` the joints
        whose parents are in ``levels[k - 1]``."""
        n_levels = max(self.depth, default=-1) + 1
        groups: list[list[int]] = [[] for _ in range(n_levels)]
        for j, k in enumerate(self.depth):
            groups[k].append(j)
        return tuple(tuple(g) for g in groups)

    @cached_property
    def topological_order(self) -> tuple[int, ...]:
        """Joint indices such that every parent comes before its children (level by level)."""
        return tuple(j for level in self.levels for j in level)

    @cached_property
    def roots(self) -> tuple[int, ...]:
        return tuple(j for j, p in enumerate(self.parents) if p < 0)

    # ------------------------------------------------------------------ selections
    def selection_indices(self, selection: str | Sequence[str] | Sequence[int]) -> tuple[int, ...]:
        """Indices (into this skeleton, ascending) of a joint selection.

        ``selection`` is a named selection of this skeleton (see :data:`SELECTIONS`), a joint name,
        or ``"all"``; terms combine left to right with ``+`` (add) and ``-`` (remove), e.g.
        ``"body+hands-feet"``. It may also be an explicit sequence of joint names or indices.
        Unknown names raise :class:`~probpose.errors.SelectionError` (a ``KeyError``) listing the
        valid ones.
        """
        if isinstance(selection, str):
            # a derived skeleton ("smplx[body+hands]") knows its preset's named selections,
            # restricted to the joints it has
            named = {
                k: tuple(n for n in v if n in self.joint_names) for k, v in SELECTIONS.get(self.base_name, {}).items()
            }
            out: set[int] = set()
            tokens = re.split(r"([+-])", selection.replace(" ", ""))
            ops = ["+", *tokens[1::2]]
            for op, part in zip(ops, tokens[0::2], strict=True):
                part_idx: set[int]
                if part == "all":
                    part_idx = set(range(self.num_joints))
                elif part in named:
                    part_idx = {self.index(name) for name in named[part]}
                elif part in self.joint_names:
                    part_idx = {self.index(part)}
                else:
                    valid = ", ".join(["all", *named])
                    raise SelectionError(f"unknown joint selection {part!r} for skeleton {self.name!r}; valid: {valid}")
                out = out | part_idx if op == "+" else out - part_idx
            return tuple(sorted(out))
        idx: set[int] = set()
        for item in selection:
            if isinstance(item, str):
                idx.add(self.index(item))
            else:
                i = int(item)
                if not 0 <= i < self.num_joints:
                    raise SelectionError(
                        f"joint index {i} out of range for skeleton {self.name!r} ({self.num_joints} joints)"
                    )
                idx.add(i)
        return tuple(sorted(idx))

    def select(self, selection: str | Sequence[str] | Sequence[int]) -> Skeleton:
        """The sub-skeleton of a selection. A joint's parent becomes its nearest selected ancestor;
        joints with no selected ancestor become roots. Its ``selection`` is an expression that
        picks the same joints from the preset ``base_name`` (the given one where it does, else
        the joint names joined by ``+``)."""
        idx = self.selection_indices(selection)
        if not idx:
            raise SelectionError(f"joint selection {selection!r} of skeleton {self.name!r} is empty")
        new_index = {old: new for new, old in enumerate(idx)}
        parents = []
        for j in idx:
            p = self.parents[j]
            while p >= 0 and p not in new_index:
                p = self.parents[p]
            parents.append(new_index[p] if p >= 0 else -1)
        names = tuple(self.joint_names[j] for j in idx)
        label = selection if isinstance(selection, str) else "+".join(names)
        if self.selection != "all" and _selected_names(self.base_name, label) != names:
            label = "+".join(names)  # the expression meant this skeleton's joints, not the preset's
        return Skeleton(f"{self.base_name}[{label}]", names, tuple(parents), self.base_name, label)

    def to_dict(self) -> dict:
        """JSON-serialisable description (name, joint names, parents, base preset, selection)."""
        return {
            "name": self.name,
            "joint_names": list(self.joint_names),
            "parents": list(self.parents),
            "base_name": self.base_name,
            "selection": self.selection,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Skeleton:
        return cls(
            str(d["name"]),
            tuple(str(n) for n in d["joint_names"]),
            tuple(int(p) for p in d["parents"]),
            str(d.get("base_name") or d["name"]),
            str(d.get("selection", "all")),
        )


def _selected_names(base: str, expression: str) -> tuple[str, ...] | None:
    """Joint names an expression selects from the preset ``base`` (None if it is no preset or the
    expression does not apply to it)."""
    preset = SKELETONS.get(base)
    if preset is None:
        return None
    try:
        return tuple(preset.joint_names[j] for j in preset.selection_indices(expression))
    except SelectionError:
        return None


# ---------------------------------------------------------------------- presets
_BODY_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist",
)  # fmt: skip
_BODY_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)
_FINGERS = ("index", "middle", "pinky", "ring", "thumb")
_HAND_JOINTS = tuple(f"{f}{k}" for f in _FINGERS for k in (1, 2, 3))
# Within one hand (15 joints): each finger is a chain of three; the first joint hangs off the wrist.
_HAND_LOCAL_PARENTS = tuple(-1 if k == 0 else 3 * f + k - 1 for f in range(5) for k in range(3))


def _hand_parents(wrist: int, offset: int) -> tuple[int, ...]:
    return tuple(wrist if p < 0 else offset + p for p in _HAND_LOCAL_PARENTS)


LEFT_HAND_NAMES = tuple(f"left_{n}" for n in _HAND_JOINTS)
RIGHT_HAND_NAMES = tuple(f"right_{n}" for n in _HAND_JOINTS)

SMPLX = Skeleton(
    "smplx",
    _BODY_NAMES + ("jaw", "left_eye", "right_eye") + LEFT_HAND_NAMES + RIGHT_HAND_NAMES,
    _BODY_PARENTS + (15, 15, 15) + _hand_parents(20, 25) + _hand_parents(21, 40),
)
"""SMPL-X, 55 joints: global (pelvis) + 21 body + jaw + 2 eyes + 2 x 15 finger joints."""

SMPLH = Skeleton(
    "smplh",
    _BODY_NAMES + LEFT_HAND_NAMES + RIGHT_HAND_NAMES,
    _BODY_PARENTS + _hand_parents(20, 22) + _hand_parents(21, 37),
)
"""SMPL+H, 52 joints: SMPL-X without jaw and eyes."""

SMPL = Skeleton("smpl", _BODY_NAMES + ("left_hand", "right_hand"), _BODY_PARENTS + (20, 21))
"""SMPL, 24 joints: the 22 SMPL-X body joints plus two hand roots with no SMPL-X counterpart."""

HAND_LEFT = Skeleton("hand_left", LEFT_HAND_NAMES, _HAND_LOCAL_PARENTS)
HAND_RIGHT = Skeleton("hand_right", RIGHT_HAND_NAMES, _HAND_LOCAL_PARENTS)
"""One hand, 15 joints in five chains (index, middle, pinky, ring, thumb; 1 = proximal)."""

ZEBRA_LEGS = Skeleton(
    "zebra_legs",
    (
        "upperleg.L", "frontleg.L", "forearm.L", "upperleg.R", "frontleg.R", "forearm.R",
        "thigh.L", "shin.L", "backfoot.L", "thigh.R", "shin.R", "backfoot.R",
    ),
    (-1, 0, 1, -1, 3, 4, -1, 6, 7, -1, 9, 10),
)  # fmt: skip
"""PASyn zebra legs, 12 joints in four chains hanging off shoulder.L/R and pelvis.L/R."""

SKELETONS: dict[str, Skeleton] = {s.name: s for s in (SMPLX, SMPLH, SMPL, HAND_LEFT, HAND_RIGHT, ZEBRA_LEGS)}


def get_skeleton(name: str) -> Skeleton:
    """A preset skeleton by name (:class:`~probpose.errors.SelectionError` listing the presets otherwise)."""
    try:
        return SKELETONS[name]
    except KeyError:
        raise SelectionError(f"unknown skeleton {name!r}; presets: {', '.join(SKELETONS)}") from None


_BODY21 = _BODY_NAMES[1:]
SELECTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "smplx": {
        "global": ("pelvis",),
        "body": _BODY21,
        "feet": ("left_foot", "right_foot"),
        "jaw": ("jaw",),
        "eyes": ("left_eye", "right_eye"),
        "left_hand": LEFT_HAND_NAMES,
        "right_hand": RIGHT_HAND_NAMES,
        "hands": LEFT_HAND_NAMES + RIGHT_HAND_NAMES,
        "body+hands": _BODY21 + LEFT_HAND_NAMES + RIGHT_HAND_NAMES,
    },
    "smplh": {
        "global": ("pelvis",),
        "body": _BODY21,
        "feet": ("left_foot", "right_foot"),
        "left_hand": LEFT_HAND_NAMES,
        "right_hand": RIGHT_HAND_NAMES,
        "hands": LEFT_HAND_NAMES + RIGHT_HAND_NAMES,
        "body+hands": _BODY21 + LEFT_HAND_NAMES + RIGHT_HAND_NAMES,
    },
    "smpl": {
        "global": ("pelvis",),
        "body": _BODY21,
        "feet": ("left_foot", "right_foot"),
        "hand_roots": ("left_hand", "right_hand"),
    },
    "hand_left": {"hand": LEFT_HAND_NAMES},
    "hand_right": {"hand": RIGHT_HAND_NAMES},
    "zebra_legs": {
        "legs": ZEBRA_LEGS.joint_names,
        "front_legs": ZEBRA_LEGS.joint_names[:6],
        "hind_legs": ZEBRA_LEGS.joint_names[6:],
    },
}
"""Named joint selections per preset skeleton (joint names). Combine with ``+`` and ``-``."""


# ---------------------------------------------------------------------- flat layouts
@dataclass(frozen=True)
class Layout:
    """A flat pose vector layout: ``size = 3 * len(joints)`` numbers, joints in the given order.

    ``joints`` are names of :data:`SMPLX` joints except for :data:`SMPL`'s two hand roots, which
    have no SMPL-X counterpart (their names are ``left_hand``/``right_hand``).
    """

    name: str
    joints: tuple[str, ...]

    @property
    def size(self) -> int:
        return 3 * len(self.joints)


_L = Layout
LAYOUTS: dict[str, Layout] = {
    lay.name: lay
    for lay in (
        _L("smplx", SMPLX.joint_names),
        _L("smplh", SMPLH.joint_names),
        _L("smpl", SMPL.joint_names),
        _L("smplx53", SMPLX.joint_names[:23] + SMPLX.joint_names[25:]),
        _L("body", _BODY21),
        _L("hands", LEFT_HAND_NAMES + RIGHT_HAND_NAMES),
        _L("left_hand", LEFT_HAND_NAMES),
        _L("right_hand", RIGHT_HAND_NAMES),
    )
}


def layout_for_size(size: int, hand: str | None = None) -> Layout:
    """The layout of a flat vector with ``size`` numbers.

    45 numbers are one hand: ``hand`` (``"left"`` or ``"right"``) must say which.
    Raises ``ValueError`` listing the known sizes otherwise.
    """
    if size == 45:
        if hand not in ("left", "right"):
            raise ValueError("a 45-number pose is one hand: say hand='left' or hand='right'")
        return LAYOUTS[f"{hand}_hand"]
    for lay in LAYOUTS.values():
        if lay.size == size and lay.name not in ("left_hand", "right_hand"):
            return lay
    known = sorted({lay.size for lay in LAYOUTS.values()})
    raise ValueError(f"unknown flat pose layout with {size} numbers; known sizes: {known}")


def unflatten(
    flat: np.ndarray, skeleton: Skeleton = SMPLX, layout: Layout | str | None = None, hand: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """A flat layout ``(N, 3K)`` -> ``(N, J, 3)`` in ``skeleton``'s joint order.

    Returns ``(poses, present)``: ``present`` is a ``(J,)`` bool mask of the joints the layout
    holds. Joints it lacks are zero in ``poses`` and ``False`` in ``present``; layout joints the
    skeleton lacks (for example SMPL's hand roots in SMPL-X) are dropped. Units are unchanged
    (axis-angle, radians, in every preset layout).
    """
    flat = np.asarray(flat)
    if flat.ndim != 2:
        raise ValueError(f"expected a (N, 3K) array, got shape {flat.shape}")
    lay = LAYOUTS[layout] if isinstance(layout, str) else layout or layout_for_size(flat.shape[1], hand)
    if flat.shape[1] != lay.size:
        raise ValueError(f"layout {lay.name!r} has {lay.size} numbers, got {flat.shape[1]}")
    src = flat.reshape(flat.shape[0], len(lay.joints), 3)
    poses = np.zeros((flat.shape[0], skeleton.num_joints, 3), dtype=flat.dtype)
    present = np.zeros(skeleton.num_joints, dtype=bool)
    for k, name in enumerate(lay.joints):
        if name in skeleton.joint_names:
            j = skeleton.index(name)
            poses[:, j] = src[:, k]
            present[j] = True
    return poses, present


def flatten(poses: np.ndarray, skeleton: Skeleton = SMPLX, layout: Layout | str = "smplx") -> np.ndarray:
    """``(N, J, 3)`` in ``skeleton``'s order -> a flat layout ``(N, 3K)``.

    Layout joints the skeleton lacks are filled with zeros (the identity rotation), which is how
    SMPL-family files represent unposed joints.
    """
    lay = LAYOUTS[layout] if isinstance(layout, str) else layout
    poses = np.asarray(poses)
    if poses.ndim != 3 or poses.shape[1:] != (skeleton.num_joints, 3):
        raise ValueError(f"expected (N, {skeleton.num_joints}, 3) poses for {skeleton.name!r}, got {poses.shape}")
    out = np.zeros((poses.shape[0], len(lay.joints), 3), dtype=poses.dtype)
    for k, name in enumerate(lay.joints):
        if name in skeleton.joint_names:
            out[:, k] = poses[:, skeleton.index(name)]
    return out.reshape(poses.shape[0], lay.size)
