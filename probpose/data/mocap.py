"""Motion capture in its own skeleton: CMU's ASF/AMC and BVH, read into one form, :class:`Mocap`.

A :class:`Mocap` is a tree of bones, each with a rest head and tail (world metres, the rest pose)
and, per frame, a local rotation in *world-aligned rest frames*: the identity everywhere is the rest
pose, and a bone's global rotation is its parent's times its own, ``G_b = G_parent(b) L_b``, so a
posed bone runs from ``head_b`` along ``G_b (tail_b - head_b)`` at rest.
:func:`probpose.data.retarget.retarget` turns it into SMPL-X joint rotations.

**ASF/AMC** (Acclaim, as CMU distributes its database). The ASF gives ``:units`` (``length``: the
file's lengths are metres / ``unit_metres`` x ``length`` -- CMU's are inches x 0.45, so
``unit_metres`` defaults to 0.0254; ``angle deg|rad``), the ``:root`` (``order`` of the AMC root
values, ``axis`` order of its rotation, ``position``, ``orientation``), and per bone a ``direction``
and ``length`` (its rest segment), an ``axis a1 a2 a3 ORDER`` frame ``C`` and its ``dof`` (a subset
of ``rx ry rz``, plus ``tx ty tz l`` which probpose reads and ignores) in the order the AMC lists
them. A bone's rotation is ``C M C^-1`` with ``M`` the AMC's dof angles composed in the axis
``ORDER`` (``XYZ``: ``M = Rz Ry Rx``, the Acclaim convention). The AMC: optional ``:FULLY-SPECIFIED``,
``:DEGREES`` or ``:RADIANS`` (else the ASF's ``angle``), then per frame its number and a line per bone
with dofs. CMU's frame rate is 120 fps (the database's stated rate; AMC files do not say).

**BVH**: a ``HIERARCHY`` of ``ROOT``/``JOINT``s with ``OFFSET`` and ``CHANNELS`` (any subset and
order of ``Xposition Yposition Zposition Xrotation Yrotation Zrotation``), ``End Site``s, then
``MOTION`` with ``Frames:``, ``Frame Time:`` (seconds) and one line per frame. A joint's rotation is
the product of its rotation channels in the listed order (``Zrotation Xrotation Yrotation``:
``Rz Rx Ry``). Offsets are in the file's length unit times ``unit_metres`` (default 0.01: most BVH
files, CMU's conversions and Mixamo's, are in centimetres); only bone directions matter to a
retarget, lengths only to positions.

Every problem (a missing skeleton, a bone the ASF lacks, a wrong count of values, NaN, text where a
number belongs, a truncated file) is a :class:`~probpose.errors.DataError` naming the file and line.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from probpose.data.formats.common import MAX_FPS
from probpose.errors import DataError
from probpose.files import input_file
from probpose.options import MAX_JOINTS
from probpose.rotations import _elementary, euler_to_matrix

__all__ = ["Mocap", "CMU_FPS", "read_asf", "read_amc", "read_bvh", "find_asf", "AsfSkeleton"]

CMU_FPS = 120.0
"""The CMU database's capture rate; its AMC files do not state one."""
_MAX_FRAMES = 10_000_000
MAX_MOCAP_BYTES = 1 << 30
"""Largest ASF, AMC or BVH file read (1 GiB; CMU's longest trial is about 10 MB), checked before reading."""
MAX_FRAME_TIME = 60.0
"""Longest BVH ``Frame Time`` accepted, seconds (shortest: ``1 / MAX_FPS``)."""
MIN_LENGTH_SCALE, MAX_LENGTH_SCALE = 1e-6, 1e6
"""The range of an ASF's ``:units length`` (CMU: 0.45): outside it lengths lose their precision."""
_AXIS = {"x": 0, "y": 1, "z": 2}


@dataclass
class Mocap:
    """Motion capture in its source skeleton (see the module docstring).

    Attributes:
        bones: names, parents before children; ``parents`` ``-1`` for the root.
        rest_heads, rest_tails: ``(B, 3)`` float64 metres, the rest pose in world coordinates
            (a tail is NaN where a bone has no segment of its own: a BVH joint with several children).
        rotations: ``(T, B, 3, 3)`` float64 local rotations in world-aligned rest frames.
        root_position: ``(T, 3)`` float64 metres.
        fps: frames per second; ``fps_stated``: False when it is the format's convention.
        source, format, notes: the file name, ``"amc"`` or ``"bvh"``, what the reader noticed.
    """

    bones: tuple[str, ...]
    parents: tuple[int, ...]
    rest_heads: np.ndarray
    rest_tails: np.ndarray
    rotations: np.ndarray
    root_position: np.ndarray
    fps: float
    fps_stated: bool
    source: str
    format: str
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rotations)

    def index(self, name: str) -> int:
        return self.bones.index(name)

    def global_rotations(self) -> np.ndarray:
        """``(T, B, 3, 3)`` world rotations ``G_b = G_parent L_b``."""
        g = np.empty_like(self.rotations)
        for b, p in enumerate(self.parents):
            g[:, b] = self.rotations[:, b] if p < 0 else g[:, p] @ self.rotations[:, b]
        return g

    def positions(self, glob: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Posed heads and tails ``(T, B, 3)`` metres (tails NaN where the bone has none)."""
        g = self.global_rotations() if glob is None else glob
        heads = np.empty(g.shape[:2] + (3,))
        for b, p in enumerate(self.parents):
            if p < 0:
                heads[:, b] = self.root_position
            else:
                heads[:, b] = heads[:, p] + g[:, p] @ (self.rest_heads[b] - self.rest_heads[p])
        tails = heads + np.einsum("tbij,bj->tbi", g, self.rest_tails - self.rest_heads)
        return heads, tails


# ---------------------------------------------------------------------- helpers
def _number(text: str, file: str, line: int, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DataError(file, f"line {line}", f"{what}: expected a number, got {text[:30]!r}") from None
    if not math.isfinite(value):
        raise DataError(file, f"line {line}", f"{what}: {text!r} is not a finite number")
    return value


def _read_lines(path: Path) -> list[str]:
    """The text lines of a motion capture file: a regular file of at most :data:`MAX_MOCAP_BYTES`
    (checked before reading), UTF-8 with or without a byte-order mark, LF or CRLF."""
    input_file(path)
    size = path.stat().st_size
    if size > MAX_MOCAP_BYTES:
        raise DataError(str(path), None, f"{size:,} bytes, more than a motion capture file's {MAX_MOCAP_BYTES:,}")
    with path.open("rb") as f:
        raw = f.read(MAX_MOCAP_BYTES + 1)
    if len(raw) > MAX_MOCAP_BYTES:
        raise DataError(str(path), None, f"more than a motion capture file's {MAX_MOCAP_BYTES:,} bytes")
    try:
        text = raw.decode("utf-8-sig", errors="strict")
    except UnicodeDecodeError as e:
        raise DataError(str(path), None, f"not a text file ({e.reason} at byte {e.start})") from None
    return text.splitlines()  # LF and CRLF alike


def _euler(angles: np.ndarray, order: str) -> np.ndarray:
    """``angles`` ``(..., 3)`` about x, y, z, composed in ``order`` (``"XYZ"``: ``Rz Ry Rx``)."""
    order = order.upper()
    picked = angles[..., [_AXIS[c.lower()] for c in order]]
    return euler_to_matrix(torch.from_numpy(np.ascontiguousarray(picked, dtype=np.float64)), order).numpy()


# ---------------------------------------------------------------------- ASF
@dataclass
class AsfSkeleton:
    """An ASF file: bones (root first) with direction, length (metres), axis frame ``C``, dofs."""

    name: str
    bones: list[str]
    parents: list[int]
    direction: np.ndarray  # (B, 3) unit, world
    length: np.ndarray  # (B,) metres
    frames: np.ndarray  # (B, 3, 3) C
    dofs: list[list[str]]
    axis_order: list[str]
    root_order: list[str]
    root_position: np.ndarray
    degrees: bool
    metres_per_unit: float


def read_asf(path: str | Path, unit_metres: float = 0.0254) -> AsfSkeleton:
    """Read an ASF skeleton. ``unit_metres``: metres per file unit before ``:units length``
    (CMU: inches)."""
    path = Path(path)
    file = str(path)
    lines = _read_lines(path)
    length_scale, degrees = 1.0, True
    root_order = ["tx", "ty", "tz", "rx", "ry", "rz"]
    root_axis, root_pos, root_orient = "XYZ", np.zeros(3), np.zeros(3)
    bones: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    hierarchy: list[tuple[int, list[str]]] = []
    section: str | None = None
    current: dict[str, Any] | None = None
    for k, raw in enumerate(lines, start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith(":"):
            key, *rest = line.split()
            section = key[1:].lower()
            continue
        words = line.split()
        head = words[0].lower()
        if section == "units":
            if head == "length":
                length_scale = _number(words[1] if len(words) > 1 else "", file, k, "units length")
                if not MIN_LENGTH_SCALE <= length_scale <= MAX_LENGTH_SCALE:
                    raise DataError(
                        file,
                        f"line {k}",
                        f"units length must be in [{MIN_LENGTH_SCALE:g}, {MAX_LENGTH_SCALE:g}], got {length_scale:g}",
                    )
            elif head == "angle":
                angle_unit = words[1].lower() if len(words) > 1 else ""
                if angle_unit not in ("deg", "rad"):
                    raise DataError(file, f"line {k}", f"units angle must be deg or rad, got {angle_unit!r}")
                degrees = angle_unit == "deg"
        elif section == "root":
            if head == "order":
                root_order = [w.lower() for w in words[1:]]
                bad = [w for w in root_order if w not in ("tx", "ty", "tz", "rx", "ry", "rz")]
                if bad or len(set(root_order)) != len(root_order):
                    raise DataError(file, f"line {k}", f"root order: unknown or repeated channels {words[1:]}")
            elif head == "axis":
                root_axis = _order(words[1] if len(words) > 1 else "", file, k)
            elif head in ("position", "orientation"):
                triple = np.array([_number(w, file, k, f"root {head}") for w in words[1:4]])
                if len(triple) != 3:
                    raise DataError(file, f"line {k}", f"root {head}: expected 3 numbers, got {len(triple)}")
                if head == "position":
                    root_pos = triple
                else:
                    root_orient = triple
        elif section == "bonedata":
            if head == "begin":
                current = {"dof": [], "axis": np.zeros(3), "order": "XYZ", "line": k}
            elif head == "end":
                if current is None or "name" not in current:
                    raise DataError(file, f"line {k}", "a bone without a name")
                for key in ("direction", "length"):
                    if key not in current:
                        raise DataError(file, f"line {current['line']}", f"bone {current['name']!r} has no {key}")
                if current["name"] in bones or current["name"] == "root":
                    raise DataError(file, f"line {k}", f"bone {current['name']!r} is defined twice")
                if len(order) + 1 >= MAX_JOINTS:
                    raise DataError(file, f"line {k}", f"more than {MAX_JOINTS:,} bones (PROBPOSE_MAX_JOINTS)")
                bones[current["name"]] = current
                order.append(current["name"])
                current = None
            elif current is not None:
                if head == "name":
                    current["name"] = words[1] if len(words) > 1 else ""
                elif head == "direction":
                    vals = [_number(w, file, k, "direction") for w in words[1:]]
                    if len(vals) != 3:
                        raise DataError(file, f"line {k}", f"direction: expected 3 numbers, got {len(vals)}")
                    v = np.array(vals)
                    if np.linalg.norm(v) < 1e-12:
                        raise DataError(file, f"line {k}", "direction is the zero vector")
                    current["direction"] = v / np.linalg.norm(v)
                elif head == "length":
                    current["length"] = _number(words[1] if len(words) > 1 else "", file, k, "length")
                    if current["length"] <= 0:
                        raise DataError(file, f"line {k}", f"length must be positive, got {words[1][:30]!r}")
                elif head == "axis":
                    if len(words) != 5:
                        raise DataError(file, f"line {k}", "axis: expected three angles and an order such as XYZ")
                    current["axis"] = np.array([_number(w, file, k, "axis") for w in words[1:4]])
                    current["order"] = _order(words[4], file, k)
                elif head == "dof":
                    dofs = [w.lower() for w in words[1:]]
                    bad = [w for w in dofs if w not in ("rx", "ry", "rz", "tx", "ty", "tz", "l")]
                    if bad or len(set(dofs)) != len(dofs):
                        raise DataError(file, f"line {k}", f"dof: unknown or repeated degrees of freedom {words[1:]}")
                    current["dof"] = dofs
        elif section == "hierarchy":
            if head in ("begin", "end"):
                continue
            hierarchy.append((k, words))
    if current is not None:
        raise DataError(file, f"line {len(lines)}", "the file ends inside a bone's begin/end block (truncated?)")
    if not bones:
        raise DataError(file, None, "no :bonedata bones: not an ASF skeleton")
    parent_of: dict[str, str] = {}
    for k, words in hierarchy:
        for child in words[1:]:
            if child not in bones:
                raise DataError(file, f"line {k}", f"hierarchy names bone {child!r}, which :bonedata does not define")
            if child in parent_of:
                raise DataError(file, f"line {k}", f"bone {child!r} has two parents")
            if words[0] != "root" and words[0] not in bones:
                raise DataError(file, f"line {k}", f"hierarchy names bone {words[0]!r}, not in :bonedata")
            parent_of[child] = words[0]
    orphans = [b for b in order if b not in parent_of]
    if orphans:
        raise DataError(file, ":hierarchy", f"bones without a parent: {orphans[:5]}")
    depth: dict[str, int] = {"root": 0}
    for b in order:  # each bone's depth, by walking up to a known one: linear in the bones
        walk: list[str] = []
        on_walk: set[str] = set()
        at = b
        while at not in depth:
            if at in on_walk:
                raise DataError(file, ":hierarchy", f"a cycle among bones {walk[walk.index(at) :][:5]}")
            walk.append(at)
            on_walk.add(at)
            at = parent_of[at]
        for d, bone in enumerate(reversed(walk), start=depth[at] + 1):
            depth[bone] = d
    position = {b: i for i, b in enumerate(order)}
    names = ["root", *sorted(order, key=lambda b: (depth[b], position[b]))]  # parents before children
    index = {n: i for i, n in enumerate(names)}
    unit = unit_metres / length_scale
    b_all = [bones[n] for n in names[1:]]  # the root has no bone data
    direction = np.array([[0.0, 0.0, 0.0]] + [b["direction"] for b in b_all])
    length = np.array([0.0] + [b["length"] * unit for b in b_all])
    to_rad = math.pi / 180 if degrees else 1.0
    frames = np.stack(
        [_euler(root_orient * to_rad, root_axis)] + [_euler(b["axis"] * to_rad, b["order"]) for b in b_all]
    )
    return AsfSkeleton(
        name=path.name,
        bones=names,
        parents=[-1] + [index[parent_of[n]] for n in names[1:]],
        direction=direction,
        length=length,
        frames=frames,
        dofs=[[], *(b["dof"] for b in b_all)],
        axis_order=[root_axis] + [b["order"] for b in b_all],
        root_order=root_order,
        root_position=root_pos * unit,
        degrees=degrees,
        metres_per_unit=unit,
    )


def _order(text: str, file: str, line: int) -> str:
    o = text.upper()
    if sorted(o) != ["X", "Y", "Z"]:
        raise DataError(file, f"line {line}", f"rotation order must be a permutation of XYZ, got {text!r}")
    return o


def find_asf(amc: str | Path) -> Path:
    """The ASF of an AMC file: ``<trial>.asf`` or ``<subject>.asf`` (the name before the first
    ``_``) in the same folder; the only ``.asf`` there otherwise. None, or several candidates
    and none named so, is an error naming the AMC."""
    amc = Path(amc)
    folder = amc.parent
    for stem in (amc.stem, amc.stem.split("_", 1)[0]):
        for cand in (folder / f"{stem}.asf", folder / f"{stem}.ASF"):
            if cand.is_file():
                return cand
    others = sorted(p for p in folder.glob("*") if p.suffix.lower() == ".asf" and p.is_file())
    if len(others) == 1:
        return others[0]
    if not others:
        raise DataError(str(amc), None, f"no skeleton: expected {amc.stem.split('_', 1)[0]}.asf in the same folder")
    names = ", ".join(p.name for p in others[:4])
    raise DataError(
        str(amc),
        None,
        f"ambiguous skeleton: no {amc.stem.split('_', 1)[0]}.asf, and several ASF files in the folder ({names})",
    )


# ---------------------------------------------------------------------- AMC
def read_amc(
    path: str | Path, asf: str | Path | AsfSkeleton | None = None, fps: float | None = None, unit_metres: float = 0.0254
) -> Mocap:
    """Read an AMC motion with its ASF skeleton (``None``: :func:`find_asf`). ``fps``: the frame
    rate (default :data:`CMU_FPS`, recorded as the format's convention)."""
    path = Path(path)
    file = str(path)
    skel = asf if isinstance(asf, AsfSkeleton) else read_asf(find_asf(path) if asf is None else asf, unit_metres)
    lines = _read_lines(path)
    degrees = skel.degrees
    columns: dict[str, list[str]] = {"root": skel.root_order, **dict(zip(skel.bones[1:], skel.dofs[1:], strict=True))}
    start = None
    for k, raw in enumerate(lines):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(":"):
            key = line.split()[0].upper()
            if key == ":DEGREES":
                degrees = True
            elif key == ":RADIANS":
                degrees = False
            continue
        start = k
        break
    if start is None:
        raise DataError(file, None, "holds no frames")
    moving = [b for b, d in columns.items() if d]
    if not moving:
        raise DataError(str(skel.name), None, "no bone has degrees of freedom: nothing moves")
    values = _amc_fast(lines, start, columns, moving)
    if values is None:  # anything irregular: the line-by-line reader, which names the line at fault
        values = _amc_lines(lines, start, columns, moving, skel, file)
    n, nb = len(next(iter(values.values()))), len(skel.bones)
    angles = np.zeros((n, nb, 3))
    root_t = np.zeros((n, 3))
    to_rad = math.pi / 180 if degrees else 1.0
    for b, name in enumerate(skel.bones):
        dofs = columns[name]
        if not dofs:
            continue
        vals = values[name]
        for c, d in enumerate(dofs):
            if d[0] == "r":
                angles[:, b, _AXIS[d[1]]] = vals[:, c] * to_rad
            elif name == "root" and d[0] == "t":
                root_t[:, _AXIS[d[1]]] = vals[:, c] * skel.metres_per_unit
    rot = np.empty((n, nb, 3, 3))
    for b in range(nb):
        m = _euler(angles[:, b], skel.axis_order[b])
        frame = skel.frames[b]
        rot[:, b] = frame @ m @ frame.T
    heads = np.zeros((nb, 3))
    tails = np.zeros((nb, 3))
    for b in range(1, nb):
        p = skel.parents[b]
        heads[b] = tails[p] if p > 0 else skel.root_position
        tails[b] = heads[b] + skel.length[b] * skel.direction[b]
    heads[0] = tails[0] = skel.root_position
    tails[0] = np.nan  # the root has no segment of its own
    return Mocap(
        bones=tuple(skel.bones),
        parents=tuple(skel.parents),
        rest_heads=heads,
        rest_tails=tails,
        rotations=rot,
        root_position=root_t,
        fps=CMU_FPS if fps is None else float(fps),
        fps_stated=fps is not None,
        source=path.name,
        format="amc",
        notes=[] if fps is not None else [f"AMC states no frame rate: {CMU_FPS:g} fps, the CMU database's rate"],
    )


def _amc_lines(
    lines: list[str], start: int, columns: dict[str, list[str]], moving: list[str], skel: AsfSkeleton, file: str
) -> dict[str, np.ndarray]:
    """Per moving bone its values ``(T, dofs)``, read line by line (every error names its line)."""
    index = {n: i for i, n in enumerate(skel.bones)}
    frames: list[dict[str, list[float]]] = []
    frame: dict[str, list[float]] | None = None
    expected = 1
    for k in range(start, len(lines)):
        line = lines[k].strip()
        if not line or line.startswith("#"):
            continue
        words = line.split()
        if len(words) == 1 and words[0].lstrip("-").isdigit():
            number = int(words[0])
            if number != expected:
                raise DataError(file, f"line {k + 1}", f"frame {number} where frame {expected} was expected")
            if len(frames) >= _MAX_FRAMES:
                raise DataError(file, f"line {k + 1}", f"more than {_MAX_FRAMES:,} frames")
            frame = {}
            frames.append(frame)
            expected += 1
            continue
        if frame is None:
            raise DataError(file, f"line {k + 1}", f"expected a frame number, got {line[:40]!r}")
        bone = words[0]
        if bone not in index:
            raise DataError(file, f"line {k + 1}", f"bone {bone!r} is not in the skeleton {skel.name}")
        want = columns[bone]
        if len(words) - 1 != len(want):
            raise DataError(
                file,
                f"line {k + 1}",
                f"bone {bone!r}: {len(words) - 1} values where the skeleton "
                f"declares {len(want)} ({' '.join(want) or 'none'})",
            )
        if bone in frame:
            raise DataError(file, f"line {k + 1}", f"bone {bone!r} appears twice in frame {expected - 1}")
        frame[bone] = [_number(w, file, k + 1, f"bone {bone!r}") for w in words[1:]]
    if not frames:
        raise DataError(file, None, "holds no frames")
    for t, fr in enumerate(frames):
        missing = [b for b in moving if b not in fr]
        if missing:
            what = "the file ends in the middle of it (truncated?)" if t == len(frames) - 1 else "lines missing"
            raise DataError(file, f"frame {t + 1}", f"no values for bones {missing[:4]}: {what}")
    return {b: np.array([fr[b] for fr in frames], dtype=np.float64) for b in moving}


def _amc_fast(
    lines: list[str], start: int, columns: dict[str, list[str]], moving: list[str]
) -> dict[str, np.ndarray] | None:
    """The same values by whole columns, for the regular layout CMU writes (every frame lists the
    same bones in the same order, no blank or comment lines); ``None`` when anything differs."""
    body = [ln.strip() for ln in lines[start:]]
    while body and not body[-1]:
        body.pop()
    if not body or body[0] != "1":
        return None
    size = 1
    while size < len(body) and not body[size].isdigit():
        size += 1
    names = [ln.split(None, 1)[0] if ln else "" for ln in body[1:size]]
    if sorted(names) != sorted(moving) or len(body) % size:
        return None
    n = len(body) // size
    if n > _MAX_FRAMES or body[0::size] != [str(k) for k in range(1, n + 1)]:
        return None
    out = {}
    for k, name in enumerate(names, start=1):
        rows = body[k::size]
        head = name + " "
        if not all(r.startswith(head) for r in rows):
            return None
        try:
            vals = np.array(" ".join(r[len(head) :] for r in rows).split(), dtype=np.float64)
        except ValueError:
            return None
        width = len(columns[name])
        if vals.size != n * width or not np.isfinite(vals).all():
            return None
        out[name] = vals.reshape(n, width)
    return out


# ---------------------------------------------------------------------- BVH
_CHANNELS = {f"{a}{kind}": (kind, a.lower()) for a in "XYZ" for kind in ("position", "rotation")}


def read_bvh(path: str | Path, fps: float | None = None, unit_metres: float = 0.01) -> Mocap:
    """Read a BVH file (any hierarchy and channel order). ``fps``: overrides ``Frame Time``."""
    path = Path(path)
    file = str(path)
    lines = _read_lines(path)
    tokens: list[tuple[str, int]] = [(w, k) for k, raw in enumerate(lines, start=1) for w in raw.split()]
    pos = 0

    def take(what: str) -> tuple[str, int]:
        nonlocal pos
        if pos >= len(tokens):
            raise DataError(file, f"line {len(lines)}", f"the file ends where {what} was expected (truncated?)")
        pos += 1
        return tokens[pos - 1]

    word, k = take("HIERARCHY")
    if word.upper() != "HIERARCHY":
        raise DataError(file, f"line {k}", f"expected HIERARCHY, got {word[:30]!r}: not a BVH file")
    names: list[str] = []
    seen: set[str] = set()
    parents: list[int] = []
    offsets: list[np.ndarray] = []
    channels: list[list[tuple[str, str]]] = []
    ends: dict[int, list[np.ndarray]] = {}
    children: dict[int, list[int]] = {}
    stack: list[int] = []
    word, k = take("ROOT")
    if word.upper() != "ROOT":
        raise DataError(file, f"line {k}", f"expected ROOT, got {word[:30]!r}")
    kind = "ROOT"
    while True:
        if kind in ("ROOT", "JOINT"):
            name, k = take("a joint name")
            if name in seen:
                raise DataError(file, f"line {k}", f"joint {name[:40]!r} is defined twice")
            if len(names) >= MAX_JOINTS:
                raise DataError(file, f"line {k}", f"more than {MAX_JOINTS:,} joints (PROBPOSE_MAX_JOINTS)")
            seen.add(name)
            brace, k = take("{")
            if brace != "{":
                raise DataError(file, f"line {k}", f"expected '{{' after joint {name!r}, got {brace[:30]!r}")
            word, k = take("OFFSET")
            if word.upper() != "OFFSET":
                raise DataError(file, f"line {k}", f"joint {name!r}: expected OFFSET, got {word[:30]!r}")
            off = np.array([_number(take("an offset")[0], file, k, f"{name} OFFSET") for _ in range(3)])
            word, k = take("CHANNELS")
            if word.upper() != "CHANNELS":
                raise DataError(file, f"line {k}", f"joint {name!r}: expected CHANNELS, got {word[:30]!r}")
            count_text, k = take("a channel count")
            count = _number(count_text, file, k, f"{name} CHANNELS")
            if count != int(count) or not 0 <= count <= 6:
                raise DataError(file, f"line {k}", f"joint {name!r}: a channel count of 0 to 6, got {count_text!r}")
            chans = []
            for _ in range(int(count)):
                c, k = take("a channel name")
                if c not in _CHANNELS:
                    raise DataError(file, f"line {k}", f"joint {name!r}: unknown channel {c[:30]!r}")
                chans.append(_CHANNELS[c])
            if len(set(chans)) != len(chans):
                raise DataError(file, f"line {k}", f"joint {name!r}: repeated channels")
            j = len(names)
            names.append(name)
            parents.append(stack[-1] if stack else -1)
            if stack:
                children.setdefault(stack[-1], []).append(j)
            offsets.append(off)
            channels.append(chans)
            stack.append(j)
        elif kind == "END":
            site, k = take("Site")
            if site.upper() != "SITE" or take("{")[0] != "{":
                raise DataError(file, f"line {k}", "expected 'End Site {'")
            word, k = take("OFFSET")
            if word.upper() != "OFFSET":
                raise DataError(file, f"line {k}", f"End Site: expected OFFSET, got {word[:30]!r}")
            off = np.array([_number(take("an offset")[0], file, k, "End Site OFFSET") for _ in range(3)])
            if take("}")[0] != "}":
                raise DataError(file, f"line {k}", "expected '}' closing an End Site")
            if not stack:
                raise DataError(file, f"line {k}", "an End Site outside any joint")
            ends.setdefault(stack[-1], []).append(off)
        word, k = take("JOINT, End Site, '}' or MOTION")
        while word == "}":
            if not stack:
                raise DataError(file, f"line {k}", "an unmatched '}'")
            stack.pop()
            word, k = take("JOINT, End Site, '}' or MOTION")
        up = word.upper()
        if up == "MOTION":
            if stack:
                raise DataError(file, f"line {k}", f"MOTION inside joint {names[stack[-1]]!r}: a '}}' is missing")
            break
        if up in ("JOINT", "END"):
            if not stack:
                raise DataError(file, f"line {k}", "a second ROOT hierarchy is not supported")
            kind = up
            continue
        if up == "ROOT":
            raise DataError(file, f"line {k}", "a second ROOT hierarchy is not supported")
        raise DataError(file, f"line {k}", f"expected JOINT, End Site, '}}' or MOTION, got {word[:30]!r}")
    word, k = take("Frames:")
    if word.lower() != "frames:":
        raise DataError(file, f"line {k}", f"expected 'Frames:', got {word[:30]!r}")
    n_text, k = take("the frame count")
    n = _number(n_text, file, k, "Frames")
    if n != int(n) or n < 1:
        raise DataError(file, f"line {k}", f"Frames must be a positive integer, got {n_text!r}")
    if n > _MAX_FRAMES:
        raise DataError(file, f"line {k}", f"Frames: {int(n):,} is more than {_MAX_FRAMES:,}")
    n = int(n)
    w1, k = take("Frame Time:")
    w2, _ = take("Frame Time:")
    if (w1 + " " + w2).lower() != "frame time:":
        raise DataError(file, f"line {k}", f"expected 'Frame Time:', got {w1[:20]!r} {w2[:20]!r}")
    ft_text, k = take("the frame time")
    frame_time = _number(ft_text, file, k, "Frame Time")
    if not (1 / MAX_FPS <= frame_time <= MAX_FRAME_TIME):
        raise DataError(
            file,
            f"line {k}",
            f"Frame Time must be {1 / MAX_FPS:g} to {MAX_FRAME_TIME:g} seconds ({MAX_FPS:g} to "
            f"{1 / MAX_FRAME_TIME:g} fps), got {ft_text[:30]!r}",
        )
    width = sum(len(c) for c in channels)
    first = k  # data lines follow the Frame Time line
    rows = [ln for ln in lines[first:] if ln.strip()]
    if len(rows) < n:
        raise DataError(file, f"line {len(lines)}", f"Frames says {n} but {len(rows)} frame lines follow (truncated?)")
    data = np.empty((n, width))
    for t in range(n):
        vals = rows[t].split()
        if len(vals) != width:
            raise DataError(file, f"frame {t + 1}", f"{len(vals)} values where the channels declare {width}")
        try:
            data[t] = np.array(vals, dtype=np.float64)
        except ValueError:
            bad = next(v for v in vals if not re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", v))
            raise DataError(file, f"frame {t + 1}", f"expected a number, got {bad[:30]!r}") from None
        if not np.isfinite(data[t]).all():
            raise DataError(file, f"frame {t + 1}", "holds NaN or infinite values")
    if len(rows) > n:
        raise DataError(file, f"frame {n + 1}", f"Frames says {n} but {len(rows)} frame lines follow")
    nb = len(names)
    rot = np.broadcast_to(np.eye(3), (n, nb, 3, 3)).copy()
    root = np.zeros((n, 3))
    col = 0
    moved: list[int] = []
    for j, chans in enumerate(channels):
        m = None
        for kind_, axis in chans:
            v = data[:, col]
            col += 1
            if kind_ == "rotation":
                e = _elementary(_AXIS[axis], torch.from_numpy(np.deg2rad(v))).numpy()
                m = e if m is None else m @ e
            elif parents[j] < 0:
                root[:, _AXIS[axis]] = v * unit_metres
            elif j not in moved and np.ptp(v) > 0:
                moved.append(j)
        if m is not None:
            rot[:, j] = m
    heads = np.zeros((nb, 3))
    for j in range(nb):
        heads[j] = offsets[j] * unit_metres + (heads[parents[j]] if parents[j] >= 0 else 0.0)
    if nb > 1 and not np.abs(np.array(offsets[1:])).max() > 0:
        raise DataError(file, None, "every joint's OFFSET is zero: no rest skeleton (bone directions) to read")
    if not any(kind_ == "position" for kind_, _ in channels[0]):
        root += heads[0]
    tails = np.full((nb, 3), np.nan)
    for j in range(nb):
        kids = children.get(j, [])
        if len(kids) == 1:
            tails[j] = heads[kids[0]]
        elif not kids and ends.get(j):
            tails[j] = heads[j] + ends[j][0] * unit_metres
    notes: list[str] = []
    if moved:
        notes.append(f"position channels of non-root joints ignored: {[names[j] for j in moved][:4]}")
    return Mocap(
        bones=tuple(names),
        parents=tuple(parents),
        rest_heads=heads,
        rest_tails=tails,
        rotations=rot,
        root_position=root,
        fps=float(fps) if fps is not None else 1.0 / frame_time,
        fps_stated=True,
        source=path.name,
        format="bvh",
        notes=notes,
    )
