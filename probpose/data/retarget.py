"""Retarget motion capture (:class:`~probpose.data.mocap.Mocap`) to SMPL-X body joint rotations.

One method, :func:`retarget`:

1. **Maps.** A :class:`RetargetMap` names, for each SMPL-X joint it drives, a chain of source bones
   (proximal to distal: CMU's ``lowerneck, upperneck`` drive ``neck``), and the source bone whose
   rotation is the pelvis (the global orientation). Built in: ``cmu`` (ASF/AMC), ``cmu_bvh`` (the
   usual BVH conversions of CMU), ``daz`` (the "DAZ-friendly" BVH conversions of CMU: ``hip,
   abdomen, chest, neck, head, lCollar, lShldr, lForeArm, lHand, lButtock, lThigh, lShin, lFoot``),
   ``mixamo`` (Mixamo-named rigs, any ``prefix:``), ``smplx`` (a rig with SMPL-X's own names); a
   user's own map is a small YAML file (:func:`load_map`).
2. **One rule per joint, by anatomy** (:data:`RULES`; a map may override it). Two skeletons agree
   on what a segment *is* only where it is the same anatomical segment in both:

   - ``"direction"`` -- **hips, knees, shoulders, elbows** (thigh, shin, upper arm, forearm): a
     long bone between two well-defined joint centres in every skeleton, so the SMPL-X bone is
     made to point where the source bone points, keeping the source's twist about it.
   - ``"rest"`` -- **spine1-3, neck, head, collars, ankles, feet (toes), wrists**: segments that
     are not the same line in both skeletons (CMU's straight rest neck against SMPL-X's
     forward-leaning neck-to-head vector; a foot bone to the toes against SMPL-X's ankle-to-foot
     joint vector; a hand bone to the fingers). For these every SMPL-family data set means "zero
     rotation = the template's rest posture" (standing, looking ahead, feet flat), so the source's
     rest orientation of the segment maps to SMPL-X's zero rotation and the joint takes the source
     segment's rotation relative to its rest.

   Checked on all frames of CMU subjects 01-03 against the bundled AIST++ and SMPL codec clips
   (mean rotation per joint, degrees, bone direction vs rest posture): neck 44 vs 5, head 42 vs 8,
   feet 16-21 vs 0.2-7; the hips the other way (12 vs 22). ``benchmarks/retarget.py``;
   docs/architecture.md, "Retargeting".
3. **World alignment** ``W``: the rotation taking the source's rest directions of the
   ``"direction"`` chains closest to SMPL-X's (Wahba's problem, solved by SVD; every chain when
   fewer than two non-parallel ones): any up axis and facing direction.
4. **Per frame**, with source global rotations ``G_b`` (rest = identity) in SMPL-X's world
   (``W G_b W^T``), joints in SMPL-X's tree order: a ``"rest"`` joint ``j`` whose nearest driven
   ancestor ``p`` has chain last bone ``q`` gets ``G_j = G_p G_q^T G_last(j)``: its local rotation
   is the source segment's rotation relative to its parent segment, from rest (for a joint
   directly under the pelvis, the pelvis's own bone). A ``"direction"`` joint gets
   ``G_j = S_j G_last(j) A_j``, where ``A_j`` turns SMPL-X's rest bone onto the source's (the
   smallest rotation, so the twist about the bone is the source's own) and ``S_j`` the smallest
   rotation that turns the result onto the chain's actual posed direction (identity for a single
   bone; for a chain it absorbs the bend between its bones): every such SMPL-X bone points where its
   source chain points. The pelvis gets ``W G_root W^T``. Local rotations are ``G_parent^T G_j``.
   A T-posed source therefore retargets to SMPL-X's zero rotation at every ``"rest"`` joint, and
   at the ``"direction"`` joints to the two rests' real differences (CMU's rest thighs stand 20
   degrees apart, SMPL-X's 5: hips about 15 degrees; knees, shoulders and elbows 5-12).

A SMPL-X joint the map does not drive, or whose source bones hold one rotation in every frame
(CMU's clavicles: their dofs are zero throughout), is marked absent (``present`` is False) and is
listed; a driven joint whose parent is not driven takes its nearest driven ancestor's rotation as
parent, so a body that keeps the undriven joint at rest reproduces the source. Such joints, and the
degrees of freedom a source lacks (CMU's one-dof knees and toes), are given a documented spread on
import by :mod:`probpose.data.dofs`, never zeros.
:func:`bone_agreement` measures the result: the angle between every mapped source bone's posed
direction and its SMPL-X bone's, after SMPL-X forward kinematics of the retargeted rotations;
:func:`rest_offset` the angle between each SMPL-X joint's world orientation and its source
segment's rotation from rest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast

import numpy as np
import torch

from probpose.data.mocap import Mocap
from probpose.data.rest import rest_joints
from probpose.errors import DataError, short_repr
from probpose.files import input_file
from probpose.rotations import canonical_axis_angle, matrix_to_axis_angle
from probpose.safe_yaml import YamlRefused, read_yaml_file
from probpose.skeleton import SMPLX

__all__ = [
    "RetargetMap",
    "Retargeted",
    "MAPS",
    "RULES",
    "load_map",
    "choose_map",
    "retarget",
    "bone_agreement",
    "rest_offset",
    "BONE_CHILD",
]

BONE_CHILD: dict[str, str | tuple[float, float, float]] = {
    "pelvis": "spine1", "spine1": "spine2", "spine2": "spine3", "spine3": "neck", "neck": "head",
    "head": (0.0, 1.0, 0.0),
    **{f"{s}_{a}": b for s in ("left", "right") for a, b in (
        ("hip", f"{s}_knee"), ("knee", f"{s}_ankle"), ("ankle", f"{s}_foot"), ("collar", f"{s}_shoulder"),
        ("shoulder", f"{s}_elbow"), ("elbow", f"{s}_wrist"), ("wrist", f"{s}_middle1"))},
    "left_foot": (0.0, 0.0, 1.0), "right_foot": (0.0, 0.0, 1.0),
}  # fmt: skip
"""Where each SMPL-X body joint's bone points: its bone child, or a fixed rest direction."""

Rule = Literal["direction", "rest"]
RULES: dict[str, Rule] = {
    j: "direction" if j.rsplit("_", 1)[-1] in ("hip", "knee", "shoulder", "elbow") else "rest"
    for j in BONE_CHILD
    if j != "pelvis"
}
"""Each SMPL-X body joint's retarget rule by anatomy (module docstring, item 2): ``"direction"``
for the thigh, shin, upper arm and forearm, ``"rest"`` for every other segment."""


@dataclass(frozen=True)
class RetargetMap:
    """``joints``: SMPL-X joint -> source bone chain (proximal first); ``root``: the source bone
    whose rotation is the pelvis's (where the source has no bone of that name, its own root bone).
    ``strip_prefix``: match source names after a ``prefix:``.
    ``rules``: SMPL-X joint -> ``"direction"`` or ``"rest"`` where this map departs from
    :data:`RULES` (a rig whose rest posture of that segment is not the anatomical one)."""

    name: str
    root: str
    joints: Mapping[str, tuple[str, ...]]
    strip_prefix: bool = False
    rules: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [j for j in self.joints if j not in BONE_CHILD]
        if unknown:
            raise DataError(
                self.name,
                "joints",
                f"not SMPL-X body joints probpose retargets: {unknown[:5]} (known: {', '.join(BONE_CHILD)})",
            )
        if "pelvis" in self.joints:
            raise DataError(self.name, "joints", "the pelvis is the root: name its source bone as 'root'")
        empty = [j for j, chain in self.joints.items() if not chain]
        if empty:
            raise DataError(self.name, "joints", f"joints with no source bones: {empty[:5]}")
        bad = {j: r for j, r in self.rules.items() if j not in RULES or r not in ("direction", "rest")}
        if bad:
            raise DataError(
                self.name, "rules", f"expected SMPL-X body joint: direction|rest, got {dict(list(bad.items())[:3])}"
            )
        owners: dict[str, str] = {}
        for j, chain in self.joints.items():
            for b in chain:
                if b in owners:
                    raise DataError(
                        self.name,
                        f"joints.{j}",
                        f"bone {b!r} already drives {owners[b]}: one source bone drives one joint",
                    )
                owners[b] = j
        if self.root in owners:
            raise DataError(self.name, "root", f"the root bone {self.root!r} also drives {owners[self.root]}")

    def rule(self, joint: str) -> Rule:
        """The retarget rule of ``joint`` under this map (:data:`RULES` unless overridden)."""
        return cast(Rule, self.rules.get(joint, RULES[joint]))


def _sided(left: dict[str, tuple[str, ...]], swap: tuple[str, str]) -> dict[str, tuple[str, ...]]:
    """The left side's map and its mirror (SMPL-X ``left_`` -> ``right_``, source ``swap[0]`` -> ``swap[1]``)."""
    out = dict(left)
    for j, chain in left.items():
        if j.startswith("left_"):
            out["right_" + j[5:]] = tuple(b.replace(swap[0], swap[1], 1) for b in chain)
    return out


_SPINE_CMU = {"spine1": ("lowerback",), "spine2": ("upperback",), "spine3": ("thorax",),
              "neck": ("lowerneck", "upperneck"), "head": ("head",)}  # fmt: skip
_LEFT_CMU = {"left_hip": ("lfemur",), "left_knee": ("ltibia",), "left_ankle": ("lfoot",), "left_foot": ("ltoes",),
             "left_collar": ("lclavicle",), "left_shoulder": ("lhumerus",), "left_elbow": ("lradius", "lwrist"),
             "left_wrist": ("lhand",)}  # fmt: skip
# CMU's lwrist is the far end of the forearm (its one dof, ry, is the forearm's twist): the forearm
# is radius + wrist, the hand is lhand.
_LEFT_CMU_BVH = {"left_hip": ("LeftUpLeg",), "left_knee": ("LeftLeg",), "left_ankle": ("LeftFoot",),
                 "left_foot": ("LeftToeBase",), "left_collar": ("LeftShoulder",), "left_shoulder": ("LeftArm",),
                 "left_elbow": ("LeftForeArm", "LeftHand"), "left_wrist": ("LeftFingerBase",)}  # fmt: skip
# the usual BVH conversions of CMU keep its bones as joints: LeftHand is CMU's lwrist, LeftFingerBase its lhand
_LEFT_BVH: dict[str, tuple[str, ...]] = {
    "left_hip": ("LeftUpLeg",), "left_knee": ("LeftLeg",), "left_ankle": ("LeftFoot",),
    "left_foot": ("LeftToeBase",), "left_collar": ("LeftShoulder",), "left_shoulder": ("LeftArm",),
    "left_elbow": ("LeftForeArm",), "left_wrist": ("LeftHand",),
}  # fmt: skip

_LEFT_DAZ: dict[str, tuple[str, ...]] = {"left_hip": ("lThigh",), "left_knee": ("lShin",), "left_ankle": ("lFoot",),
             "left_collar": ("lCollar",), "left_shoulder": ("lShldr",), "left_elbow": ("lForeArm",),
             "left_wrist": ("lHand",)}  # fmt: skip
# the DAZ-friendly conversions of CMU have two spine bones: abdomen starts about where SMPL-X's
# spine2 does and chest where spine3 does (the root segment spans pelvis and spine1), and no toes

MAPS: dict[str, RetargetMap] = {
    "cmu": RetargetMap("cmu", "root", {**_SPINE_CMU, **_sided(_LEFT_CMU, ("l", "r"))}),
    "cmu_bvh": RetargetMap(
        "cmu_bvh",
        "Hips",
        {
            "spine1": ("LowerBack",),
            "spine2": ("Spine",),
            "spine3": ("Spine1",),
            "neck": ("Neck", "Neck1"),
            "head": ("Head",),
            **_sided(_LEFT_CMU_BVH, ("Left", "Right")),
        },
    ),
    "daz": RetargetMap(
        "daz",
        "hip",
        {
            "spine2": ("abdomen",),
            "spine3": ("chest",),
            "neck": ("neck",),
            "head": ("head",),
            **_sided(_LEFT_DAZ, ("l", "r")),
        },
    ),
    "mixamo": RetargetMap(
        "mixamo",
        "Hips",
        {
            "spine1": ("Spine",),
            "spine2": ("Spine1",),
            "spine3": ("Spine2",),
            "neck": ("Neck",),
            "head": ("Head",),
            **_sided(_LEFT_BVH, ("Left", "Right")),
        },
        strip_prefix=True,
    ),
    "smplx": RetargetMap("smplx", "pelvis", {j: (j,) for j in BONE_CHILD if j != "pelvis"}),
}
"""The built-in maps (see the module docstring)."""


MAX_MAP_BYTES = 1_000_000
"""Largest retarget map read (a full SMPL-X body map is under 2 KB)."""


def load_map(path: str | Path) -> RetargetMap:
    """A user's map from YAML: ``name`` (optional), ``root: SOURCE_BONE``, ``joints: {smplx_joint:
    [source bones, proximal first]}``, ``strip_prefix`` (optional, default false), ``rules``
    (optional: ``{smplx_joint: direction|rest}`` where the map departs from :data:`RULES`)."""
    path = input_file(path, "retarget map")
    try:
        data = read_yaml_file(path, MAX_MAP_BYTES, max_nodes=2000)
    except YamlRefused as e:
        raise DataError(str(path), None, f"retarget map refused: {e}") from None
    except OSError as e:
        raise DataError(str(path), None, f"cannot be read ({e.strerror or type(e).__name__})") from None
    if not isinstance(data, dict) or not isinstance(data.get("joints"), dict) or not isinstance(data.get("root"), str):
        raise DataError(str(path), None, "expected a mapping with 'root: BONE' and 'joints: {smplx_joint: [bones]}'")
    strip = data.get("strip_prefix", False)
    if not isinstance(strip, bool):
        raise DataError(str(path), "strip_prefix", f"expected true or false, got {short_repr(strip, 40)}")
    if "name" in data and not isinstance(data["name"], str):
        raise DataError(str(path), "name", "expected a string")
    joints = {}
    for j, chain in data["joints"].items():
        chain = [chain] if isinstance(chain, str) else chain
        if not isinstance(chain, list) or not all(isinstance(b, str) for b in chain):
            raise DataError(str(path), f"joints.{j}", "expected a bone name or a list of bone names")
        joints[str(j)] = tuple(chain)
    extra = set(data) - {"name", "root", "joints", "strip_prefix", "rules"}
    if extra:
        raise DataError(
            str(path), None, f"unknown keys {sorted(extra)}; expected name, root, joints, strip_prefix, rules"
        )
    rules = data.get("rules", {})
    if not isinstance(rules, dict) or not all(isinstance(v, str) for v in rules.values()):
        raise DataError(str(path), "rules", "expected a mapping {smplx_joint: direction|rest}")
    return RetargetMap(
        str(data.get("name", path.stem)),
        data["root"],
        joints,
        strip,
        {str(k): v for k, v in rules.items()},
    )


def _names(mocap: Mocap, strip: bool) -> dict[str, int]:
    return {(b.rsplit(":", 1)[-1] if strip else b): i for i, b in enumerate(mocap.bones)}


def _root(mocap: Mocap, m: RetargetMap, names: dict[str, int]) -> int:
    """The source bone whose rotation is the pelvis's: the map's ``root``, else the source's own
    root (BVH conversions of CMU call it ``hip`` or ``Hips``, the ASF ``root``)."""
    return names[m.root] if m.root in names else mocap.parents.index(-1)


def _coverage(mocap: Mocap, m: RetargetMap) -> list[str]:
    names = _names(mocap, m.strip_prefix)
    return [j for j, chain in m.joints.items() if all(b in names for b in chain)]


def choose_map(mocap: Mocap, mapping: str | Path | RetargetMap | None = None) -> RetargetMap:
    """``mapping`` as given (a built-in name, a YAML path, a map), or the built-in map that drives
    the most SMPL-X joints of this source (an error when none drives any)."""
    if isinstance(mapping, RetargetMap):
        return mapping
    if mapping is not None:
        if str(mapping) in MAPS:
            return MAPS[str(mapping)]
        return load_map(mapping)
    best = max(MAPS.values(), key=lambda m: len(_coverage(mocap, m)))
    if not _coverage(mocap, best):
        raise DataError(
            mocap.source,
            None,
            f"no built-in retarget map fits its bones ({', '.join(mocap.bones[:6])}, "
            f"...); give a map (YAML: root, joints) with `retarget_map`",
        )
    return best


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(n > 0, n, 1.0)


def smallest_rotation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(..., 3, 3)``: the smallest rotation taking unit vectors ``a`` to ``b`` (``(..., 3)``);
    for opposite vectors a half turn about an axis perpendicular to ``a``."""
    a, b = np.broadcast_arrays(_unit(a), _unit(b))
    v = np.cross(a, b)
    c = np.einsum("...i,...i->...", a, b)
    k = np.zeros(a.shape[:-1] + (3, 3))
    k[..., 0, 1], k[..., 0, 2], k[..., 1, 2] = -v[..., 2], v[..., 1], -v[..., 0]
    k[..., 1, 0], k[..., 2, 0], k[..., 2, 1] = v[..., 2], -v[..., 1], v[..., 0]
    opposite = c < -1 + 1e-9
    scale = np.where(opposite, 0.0, 1.0 / np.where(opposite, 1.0, 1.0 + c))
    r = np.eye(3) + k + (k @ k) * scale[..., None, None]
    if np.any(opposite):
        aa = a[opposite]
        helper = np.where(np.abs(aa[:, :1]) < 0.9, np.array([1.0, 0, 0]), np.array([0, 1.0, 0]))
        axis = _unit(np.cross(aa, helper))
        r[opposite] = 2 * np.einsum("ni,nj->nij", axis, axis) - np.eye(3)
    return r


@dataclass
class Retargeted:
    """SMPL-X rotations from a retarget: ``poses`` ``(T, 55, 3)`` axis-angle radians (the pelvis is
    the global orientation; joints not in ``driven`` are zero and must not be modelled),
    ``present`` ``(55,)``, ``transl`` ``(T, 3)`` metres (the source root in SMPL-X's world),
    ``undriven``: SMPL-X body joints the map does not drive, ``map``: the map used, ``align``: ``W``."""

    poses: np.ndarray
    present: np.ndarray
    transl: np.ndarray
    driven: list[str]
    undriven: list[str]
    map: RetargetMap
    align: np.ndarray
    chains: dict[str, tuple[int, ...]]
    ends: dict[str, tuple[str, int]]


def _rest_directions(rest: np.ndarray) -> dict[str, np.ndarray]:
    out = {}
    for j, child in BONE_CHILD.items():
        v = np.array(child) if isinstance(child, tuple) else rest[SMPLX.index(child)] - rest[SMPLX.index(j)]
        out[j] = _unit(v)
    return out


def _chain_ends(mocap: Mocap, chains: dict[str, tuple[int, ...]], names: dict[str, int]) -> dict[str, tuple[str, int]]:
    """Where each driven joint's source direction ends: ``("head", b)`` (the head of the bone
    child's chain, or of a source bone named like the SMPL-X bone child), ``("tail", b)`` (the last
    bone's own tail), ``("fixed", b)`` (a head or foot whose last bone has no tail of its own:
    SMPL-X's fixed direction, carried by that bone's rotation), or ``("mean", b)`` (a bone with
    several children and none of the above, such as a hand with finger bases: their mean head)."""
    ends = {}
    for j, chain in chains.items():
        child = BONE_CHILD[j]
        nxt = chains.get(child, (names[child],) if child in names else None) if isinstance(child, str) else None
        if nxt is not None and _descends(mocap, nxt[0], chain[-1]) and nxt[0] != chain[-1]:
            ends[j] = ("head", nxt[0])
        elif np.all(np.isfinite(mocap.rest_tails[chain[-1]])):
            ends[j] = ("tail", chain[-1])
        elif isinstance(child, tuple):
            ends[j] = ("fixed", chain[-1])
        elif any(p == chain[-1] for p in mocap.parents):
            ends[j] = ("mean", chain[-1])  # a hand's several finger bases: towards their mean
        else:
            raise DataError(
                mocap.source,
                mocap.bones[chain[-1]],
                f"cannot tell where the bone driving {j} points: "
                f"it has no children, no end site and does not start the chain of {child}",
            )
    return ends


def _with_mean_tails(mocap: Mocap) -> Mocap:
    """``mocap`` with every tail-less bone that has children ending at its children's mean head (a
    rigid point of the bone, so it moves with the bone exactly)."""
    tails = mocap.rest_tails.copy()
    for b in range(len(mocap.bones)):
        kids = [k for k, p in enumerate(mocap.parents) if p == b]
        if not np.all(np.isfinite(tails[b])) and kids:
            tails[b] = mocap.rest_heads[kids].mean(0)
    return dataclasses.replace(mocap, rest_tails=tails)


def _descends(mocap: Mocap, b: int, ancestor: int) -> bool:
    while b >= 0:
        if b == ancestor:
            return True
        b = mocap.parents[b]
    return False


def _directions(heads, tails, chains, ends, fixed=None) -> dict[str, np.ndarray]:
    """Each chain's vector: from its first head to its end; ``fixed``: ``j -> (T, 3)`` vectors for
    the ``"fixed"`` ends."""
    out = {}
    for j, chain in chains.items():
        kind, b = ends[j]
        if kind == "fixed":
            if fixed is not None:
                out[j] = fixed[j]
            continue
        end = heads[..., b, :] if kind == "head" else tails[..., b, :]  # "tail" and "mean" (filled tails)
        out[j] = end - heads[..., chain[0], :]
    return out


def _driven_parent(joint: str, driven: Mapping[str, object]) -> str:
    """``joint``'s nearest SMPL-X ancestor in ``driven`` (the pelvis, the root, always is)."""
    p = SMPLX.parents[SMPLX.index(joint)]
    while SMPLX.joint_names[p] not in driven:
        p = SMPLX.parents[p]
    return SMPLX.joint_names[p]


def retarget(
    mocap: Mocap, mapping: str | Path | RetargetMap | None = None, rest: np.ndarray | None = None
) -> Retargeted:
    """Retarget ``mocap`` to SMPL-X by the method of the module docstring. ``rest``: SMPL-X rest
    joints ``(55, 3)`` metres (default: probpose's approximate proportions).

    Example:
        A two-frame BVH on an SMPL-X-named skeleton, every joint bent by 0.3 rad about x in the second:

        >>> import os, tempfile
        >>> import numpy as np, torch
        >>> from probpose.data import read_bvh, retarget
        >>> from probpose.data.rest import SMPLX_REST_JOINTS
        >>> from probpose.rotations import axis_angle_to_matrix
        >>> from probpose.skeleton import SMPLX
        >>> from probpose.synthesis.bvh import write_bvh_tree
        >>> tree = SMPLX.select("global+body")  # the pelvis and 21 body joints
        >>> heads = SMPLX_REST_JOINTS[[SMPLX.index(n) for n in tree.joint_names]].double().numpy()
        >>> bend = axis_angle_to_matrix(torch.tensor([[0.0, 0.0, 0.0], [0.3, 0.0, 0.0]], dtype=torch.float64))
        >>> path = os.path.join(tempfile.mkdtemp(), "bend.bvh")
        >>> write_bvh_tree(path, tree.joint_names, tree.parents, heads, heads + [0.0, 0.1, 0.0],
        ...                bend[:, None].expand(2, 22, 3, 3), torch.zeros(2, 3), fps=30.0)
        >>> result = retarget(read_bvh(path), "smplx")
        >>> result.poses.shape, len(result.driven)
        ((2, 55, 3), 21)
        >>> np.round(result.poses[1, SMPLX.index("left_knee")], 4) + 0.0
        array([0.3, 0. , 0. ])
    """
    m = choose_map(mocap, mapping)
    names = _names(mocap, m.strip_prefix)
    root = _root(mocap, m, names)
    chains = {j: tuple(names[b] for b in chain) for j, chain in m.joints.items() if all(b in names for b in chain)}
    missing = {j: "its bones are not in the source" for j in m.joints if j not in chains}
    if len(mocap) > 1:  # bones that never move (CMU's clavicles: 1e-14 degrees in every frame) drive nothing
        still = np.abs(mocap.rotations - mocap.rotations[:1]).max(axis=(0, 2, 3)) < 1e-9  # radians, about
        for j in [j for j, chain in chains.items() if all(still[b] for b in chain)]:
            missing[j] = "its source bones hold one rotation in every frame"
            del chains[j]
    if not chains:
        raise DataError(mocap.source, None, f"the retarget map {m.name!r} drives none of its joints from these bones")
    for j, chain in chains.items():
        for a, b in zip(chain[:-1], chain[1:], strict=True):
            if mocap.parents[b] != a:
                raise DataError(m.name, f"joints.{j}", f"{mocap.bones[b]!r} is not a child of {mocap.bones[a]!r}")
    rest = rest_joints(SMPLX).numpy() if rest is None else np.asarray(rest, dtype=np.float64)
    d_x = _rest_directions(rest)
    ends = _chain_ends(mocap, chains, names)
    mocap = _with_mean_tails(mocap)
    rest_src = {j: _unit(v) for j, v in _directions(mocap.rest_heads, mocap.rest_tails, chains, ends).items()}
    if not rest_src:
        raise DataError(mocap.source, None, "no driven bone has a direction of its own to align the skeletons by")
    # world alignment: the rotation W taking the source's rest directions of the "direction" chains
    # closest to SMPL-X's (every chain's when those do not span two directions)
    aligned = [j for j in rest_src if m.rule(j) == "direction"]
    if np.linalg.matrix_rank(np.array([rest_src[j] for j in aligned]).reshape(-1, 3), tol=0.1) < 2:
        aligned = list(rest_src)
    cross = np.sum([np.outer(d_x[j], rest_src[j]) for j in aligned], axis=0)
    u, _, vt = np.linalg.svd(cross)
    w = u @ np.diag([1.0, 1.0, np.linalg.det(u @ vt)]) @ vt
    for j, (kind, _) in ends.items():
        if kind == "fixed":
            rest_src[j] = w.T @ d_x[j]
    source_glob = mocap.global_rotations()  # once: the posed positions need them too
    glob = np.einsum("ij,tbjk,lk->tbil", w, source_glob, w)
    heads, tails = mocap.positions(source_glob)
    fixed = {j: glob[:, bone] @ d_x[j] for j, (kind, bone) in ends.items() if kind == "fixed"}
    moved = _directions(heads, tails, chains, ends)
    posed = {j: _unit(moved[j] @ w.T) if j in moved else _unit(fixed[j]) for j in chains if m.rule(j) == "direction"}
    t = len(mocap)
    g = {"pelvis": glob[:, root]}
    for j, chain in sorted(chains.items(), key=lambda jc: SMPLX.index(jc[0])):  # parents before children
        last = glob[:, chain[-1]]
        if m.rule(j) == "rest":  # the joint's rotation from the source's rest posture of it
            p = _driven_parent(j, g)
            parent_last = glob[:, root] if p == "pelvis" else glob[:, chains[p][-1]]
            g[j] = g[p] @ np.swapaxes(parent_last, -1, -2) @ last
            continue
        rest_turn = smallest_rotation(d_x[j], w @ rest_src[j])
        before = last @ (w @ rest_src[j])
        g[j] = smallest_rotation(before, posed[j]) @ last @ rest_turn
    poses = np.zeros((t, SMPLX.num_joints, 3))
    present = np.zeros(SMPLX.num_joints, dtype=bool)
    for j, gj in g.items():
        k = SMPLX.index(j)
        local = gj if j == "pelvis" else np.swapaxes(g[_driven_parent(j, g)], -1, -2) @ gj
        poses[:, k] = canonical_axis_angle(matrix_to_axis_angle(torch.from_numpy(local))).numpy()
        present[k] = True
    body = [n for n in BONE_CHILD if n != "pelvis"]
    undriven = [f"{j} ({missing.get(j, 'not in the map')})" for j in body if j not in chains]
    return Retargeted(
        poses=poses,
        present=present,
        transl=mocap.root_position @ w.T,
        driven=[j for j in body if j in chains],
        undriven=undriven,
        map=m,
        align=w,
        chains=chains,
        ends=ends,
    )


def bone_agreement(
    mocap: Mocap, result: Retargeted, points: np.ndarray, frames: np.ndarray, rest: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Angles ``(T,)`` in degrees, per mapped source bone (named ``"smplx_joint <- bone"``) and per
    driven chain (``"smplx_joint <- chain"``), between the source's posed direction (in SMPL-X's
    world) and the SMPL-X bone's, given SMPL-X joint positions ``points`` ``(T, 55, 3)`` and world
    joint frames ``frames`` ``(T, 55, 3, 3)`` from forward kinematics of ``result.poses`` (the
    caller's, so that the check does not reuse this module's arithmetic). Bones with a fixed rest
    direction (head, feet) are measured as that direction turned by the joint's frame."""
    rest = rest_joints(SMPLX).numpy() if rest is None else np.asarray(rest, dtype=np.float64)
    d_x = _rest_directions(rest)
    heads, tails = _with_mean_tails(mocap).positions()
    heads, tails = heads @ result.align.T, tails @ result.align.T
    out = {}
    for j, chain in result.chains.items():
        child = BONE_CHILD[j]
        if isinstance(child, tuple):  # a fixed rest direction (head, feet), turned by the joint's frame
            x = _unit(frames[:, SMPLX.index(j)] @ d_x[j])
        else:
            x = _unit(points[:, SMPLX.index(child)] - points[:, SMPLX.index(j)])
        if result.ends[j][0] == "fixed":
            continue  # its direction is its own rotation's, nothing independent to compare
        pieces = [("chain", _directions(heads, tails, {j: chain}, {j: result.ends[j]})[j])]
        if len(chain) > 1:
            for k, b in enumerate(chain):
                end = (
                    heads[:, chain[k + 1]]
                    if k + 1 < len(chain)
                    else (heads[:, result.ends[j][1]] if result.ends[j][0] == "head" else tails[:, b])
                )
                pieces.append((mocap.bones[b], end - heads[:, b]))
        for label, v in pieces:
            cos = np.clip(np.einsum("ti,ti->t", _unit(v), x), -1.0, 1.0)
            out[f"{j} <- {label}"] = np.degrees(np.arccos(cos))
    return out


def rest_offset(mocap: Mocap, result: Retargeted, frames: np.ndarray) -> dict[str, np.ndarray]:
    """Angles ``(T,)`` in degrees, per driven SMPL-X joint, between its world orientation
    ``frames[:, j]`` (``(T, 55, 3, 3)`` from the caller's forward kinematics of ``result.poses``,
    rest = identity) and its source segment's rotation from rest (the chain's last bone, in SMPL-X's
    world): the rest and bend differences the bone alignment takes up for a ``"direction"`` joint;
    zero for a ``"rest"`` joint whose driven ancestors are ``"rest"`` joints too (the trunk); a
    ``"rest"`` joint below a ``"direction"`` one (ankle, foot, wrist) turns from its parent by
    exactly its source segment's local turn, so it carries its parent's offset."""
    glob = np.einsum("ij,tbjk,lk->tbil", result.align, mocap.global_rotations(), result.align)
    out = {}
    for j, chain in result.chains.items():
        rel = np.einsum("tji,tjk->tik", frames[:, SMPLX.index(j)], glob[:, chain[-1]])
        cos = np.clip((np.trace(rel, axis1=1, axis2=2) - 1) / 2, -1.0, 1.0)
        out[j] = np.degrees(np.arccos(cos))
    return out
