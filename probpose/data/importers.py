"""One importer per source format, each returning a :class:`PoseSet` in its own skeleton.

Formats:

- ``amass``: AMASS-style ``.npz`` -- ``poses`` with 165 (SMPL-X), 159 (SMPL-X without eyes),
  156 (SMPL+H) or 72 (SMPL) columns, or the split keys ``root_orient``/``pose_body``/``pose_hand``/
  ``pose_jaw``/``pose_eye``. Frame rate from ``mocap_frame_rate``/``mocap_framerate``.
- ``smplcodec``: Meshcapade's ``.smpl`` (an ``.npz`` with ``smplVersion``, ``bodyPose``, ...).
- ``aistpp``: AIST++ motion ``.pkl`` (``smpl_poses`` (N, 72), 60 fps), read with an unpickler that
  admits NumPy arrays only.
- ``pasyn``: PASyn zebra ``.npz`` -- ``poses`` (N, 39) Euler angles in DEGREES, ``R = Rz Ry Rx``;
  columns 0-2 are a placeholder and dropped, 3-38 are the 12 leg joints. (N, 36) without the
  placeholder is accepted too. Rows are independent poses, not a time series.
- ``amc``: CMU ASF/AMC motion capture (the ASF found beside the AMC), 120 fps by CMU's convention;
- ``bvh``: BVH motion capture (any hierarchy and channel order), ``Frame Time`` from the file.
  Both are read by :mod:`probpose.data.mocap` and retargeted to SMPL-X body joints by
  :mod:`probpose.data.retarget` (joints the source cannot drive are marked absent, never zero).

Every importer rejects a missing file, an unknown layout, wrong shapes and NaN/inf with a
:class:`DataError` naming the file and field, and returns canonical axis-angle in radians.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from probpose import rotations
from probpose.data.checks import selection_without
from probpose.data.mocap import Mocap, read_amc, read_bvh
from probpose.data.npz import NpzArchive
from probpose.data.poseset import PoseSet, SequenceInfo
from probpose.data.retarget import retarget
from probpose.data.safe_pickle import UnsafePickleError, safe_load
from probpose.errors import DataError, SelectionError
from probpose.files import input_file, sha256
from probpose.skeleton import SMPL, SMPLH, SMPLX, ZEBRA_LEGS, Skeleton, get_skeleton, unflatten

__all__ = [
    "FORMATS",
    "DEFAULT_FPS",
    "detect_format",
    "load_source",
    "load_amass",
    "load_smplcodec",
    "load_aistpp",
    "load_pasyn",
    "load_amc",
    "load_bvh",
    "load_poses",
    "save_poses",
    "MOCAP_FORMATS",
    "import_poses",
    "import_recording",
    "DEFAULT_JOINTS",
    "pasyn_to_axis_angle",
    "axis_angle_to_pasyn",
]

log = logging.getLogger(__name__)

DEFAULT_FPS = 30.0
"""Frame rate assumed (and recorded as assumed) when a time series does not state one."""
MAX_FPS = 10_000.0
"""Highest frame rate accepted (motion capture runs at up to a few hundred frames per second)."""
AISTPP_FPS = 60.0
"""AIST++ SMPL motions are sampled at 60 frames per second."""

DEFAULT_JOINTS = {"smplx": "body+hands", "smplh": "body+hands", "smpl": "body", "zebra_legs": "legs"}
"""Default joint selection per target skeleton (docs/architecture.md, "Event space and metrics")."""


# ---------------------------------------------------------------------- helpers
def _existing(path: str | Path) -> Path:
    return input_file(path)


def _float_array(path: Path, field: str, value: object, shape: tuple[int | None, ...]) -> np.ndarray:
    """``value`` as float64 with the given shape (``None`` = any), finite (no copy if it already is)."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu":
        raise DataError(str(path), field, f"expected numbers, got dtype {arr.dtype}")
    if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape, strict=True)):
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise DataError(str(path), field, f"expected shape {want}, got {arr.shape}")
    arr = np.asarray(arr, dtype=np.float64)
    if not np.isfinite(arr).all():
        bad = ~np.isfinite(arr)
        row = int(np.argwhere(bad)[0][0])
        raise DataError(str(path), field, f"{int(bad.sum())} NaN/inf values (first in row {row})")
    return arr


_CHUNK = 1 << 15


def _canonical(poses: np.ndarray) -> np.ndarray:
    """(N, J, 3) float64 axis-angle -> canonical (angle in [0, pi]) float32, in chunks of rows so
    the temporaries stay small whatever N is."""
    out = np.empty(poses.shape, dtype=np.float32)
    for start in range(0, len(poses), _CHUNK):
        block = torch.from_numpy(np.ascontiguousarray(poses[start : start + _CHUNK], dtype=np.float64))
        out[start : start + _CHUNK] = rotations.canonical_axis_angle(block).numpy()
    return out


def _scalar(path: Path, data: NpzArchive, *keys: str) -> float | None:
    """The first of ``keys`` present, as one positive finite number (a frame rate)."""
    for key in keys:
        if key in data:
            arr = data.read(key)
            if arr.size != 1 or arr.dtype.kind not in "fiu" or not np.isfinite(arr).all() or float(arr.item()) <= 0:
                raise DataError(str(path), key, f"expected one positive number, got {_describe(arr)}")
            return float(arr.item())
    return None


def _integer(path: Path, data: NpzArchive, key: str) -> int:
    """``key`` as one integer (a version number, a frame count)."""
    arr = data.read(key)
    value = arr.item() if arr.size == 1 and arr.dtype.kind in "fiu" else None
    if value is None or not np.isfinite(value) or float(value) != int(value):
        raise DataError(str(path), key, f"expected one integer, got {_describe(arr)}")
    return int(value)


def _describe(arr: np.ndarray) -> str:
    if arr.size == 0:
        return f"an empty array of shape {arr.shape}"
    if arr.size == 1:
        text = repr(arr.item())
        return text if len(text) <= 40 else text[:37] + "..."
    return f"an array of shape {arr.shape} and dtype {arr.dtype}"


def _one_sequence(
    path: Path,
    fmt: str,
    skeleton: Skeleton,
    poses: np.ndarray,
    present: np.ndarray,
    fps: float | None,
    notes: list[str] | None = None,
) -> PoseSet:
    n = len(poses)
    if n == 0:
        raise DataError(str(path), None, "holds no frames")
    notes = list(notes or [])
    assumed = fps is None
    if assumed:
        fps = DEFAULT_FPS
        notes.append(f"frame rate not stated; assumed {fps:g} fps")
    return PoseSet(
        skeleton=skeleton,
        poses=_canonical(poses),
        present=present,
        sequence=np.zeros(n, dtype=np.int64),
        frame=np.arange(n, dtype=np.int64),
        sequences=[SequenceInfo(path.name, path.name, fps, fps_assumed=assumed, ordered=True)],
        sources=[{"file": path.name, "format": fmt, "sha256": sha256(path), "frames": n, "notes": notes}],
    )


# ---------------------------------------------------------------------- formats
_AMASS_SPLIT_KEYS = (  # key, columns, SMPL-X joint names it holds
    ("root_orient", 3, SMPLX.joint_names[:1]),
    ("pose_body", 63, SMPLX.joint_names[1:22]),
    ("pose_jaw", 3, SMPLX.joint_names[22:23]),
    ("pose_eye", 6, SMPLX.joint_names[23:25]),
    ("pose_hand", 90, SMPLX.joint_names[25:]),
)


def load_amass(path: str | Path, fps: float | None = None) -> PoseSet:
    """AMASS-style ``.npz`` -> :class:`PoseSet` on :data:`SMPLX` (or :data:`SMPL` for 72 columns).

    The file's own frame rate is used; ``fps`` is assumed (and noted) where it states none, else
    :data:`DEFAULT_FPS`.
    When both ``poses`` and split keys are present they must agree.
    """
    p = _existing(path)
    with NpzArchive(p) as data:
        return _load_amass(p, data, fps)


def _load_amass(p: Path, data: NpzArchive, fps: float | None) -> PoseSet:
    file_fps = _scalar(p, data, "mocap_frame_rate", "mocap_framerate", "frame_rate", "fps")
    fps = file_fps if file_fps is not None else fps
    split = {}
    for key, cols, names in _AMASS_SPLIT_KEYS:
        if key in data:
            split[key] = (_float_array(p, key, data.read(key), (None, cols)), names)
    if "poses" in data:
        shape = data.shape("poses")
        if len(shape) != 2 or shape[1] not in (165, 159, 156, 72):
            raise DataError(str(p), "poses", f"expected (N, 165|159|156|72) axis-angle columns, got {shape}")
        flat = _float_array(p, "poses", data.read("poses"), (None, shape[1]))
        skel = SMPL if flat.shape[1] == 72 else SMPLX
        poses, present = unflatten(flat, skel)
        for key, (arr, names) in split.items():
            if len(arr) != len(poses):
                raise DataError(str(p), key, f"has {len(arr)} rows but 'poses' has {len(poses)}")
            idx = [skel.index(n) for n in names if n in skel.joint_names]
            if not all(present[idx]):
                continue  # poses lacks these joints (e.g. 156 columns, no jaw): nothing to compare
            if not np.allclose(arr.reshape(len(arr), -1, 3), poses[:, idx], atol=1e-6, rtol=0):
                raise DataError(str(p), key, "disagrees with the same joints in 'poses'")
    elif "root_orient" in split and "pose_body" in split:
        n = len(split["root_orient"][0])
        poses = np.zeros((n, SMPLX.num_joints, 3))
        present = np.zeros(SMPLX.num_joints, dtype=bool)
        skel = SMPLX
        for key, (arr, names) in split.items():
            if len(arr) != n:
                raise DataError(str(p), key, f"has {len(arr)} rows but 'root_orient' has {n}")
            idx = [SMPLX.index(name) for name in names]
            poses[:, idx] = arr.reshape(n, -1, 3)
            present[idx] = True
    else:
        raise DataError(
            str(p), "poses", f"unknown layout: need 'poses' or 'root_orient' + 'pose_body'; keys: {sorted(data.keys)}"
        )
    return _one_sequence(p, "amass", skel, poses, present, fps)


_CODEC_VERSIONS = {0: ("SMPL", SMPL), 1: ("SMPL-H", SMPLH), 2: ("SMPL-X", SMPLX)}


def load_smplcodec(path: str | Path, fps: float | None = None) -> PoseSet:
    """Meshcapade SMPL codec ``.smpl`` -> :class:`PoseSet` on SMPL, SMPL+H or SMPL-X.

    ``smplVersion`` 0 (SMPL: ``bodyPose`` (N, 24, 3)), 1 (SMPL-H) or 2 (SMPL-X: ``bodyPose``
    (N, 22, 3), ``headPose`` (N, 3, 3), ``leftHandPose``/``rightHandPose`` (N, 15, 3)). Parts that
    are absent are marked absent. A single pose ``(J, 3)`` is one frame.
    """
    p = _existing(path)
    with NpzArchive(p) as data:
        return _load_smplcodec(p, data, fps)


def _load_smplcodec(p: Path, data: NpzArchive, fps: float | None) -> PoseSet:
    if "smplVersion" not in data:
        raise DataError(str(p), "smplVersion", f"missing: not an SMPL codec file (keys: {sorted(data.keys)})")
    version = _integer(p, data, "smplVersion")
    if version not in _CODEC_VERSIONS:
        raise DataError(
            str(p), "smplVersion", f"unsupported model version {version}; supported: 0 SMPL, 1 SMPL-H, 2 SMPL-X"
        )
    skel = _CODEC_VERSIONS[version][1]
    if "bodyPose" not in data:
        raise DataError(str(p), "bodyPose", "missing")
    n_body = 24 if version == 0 else 22
    parts = [("bodyPose", skel.joint_names[:n_body])]
    if version == 2:
        parts.append(("headPose", SMPLX.joint_names[22:25]))
    if version in (1, 2):
        parts += [("leftHandPose", skel.joint_names[-30:-15]), ("rightHandPose", skel.joint_names[-15:])]
    frames = None
    poses = present = None
    for key, names in parts:
        if key not in data:
            continue
        arr = data.read(key)
        if arr.ndim == 2:
            arr = arr[None]
        arr = _float_array(p, key, arr, (None, len(names), 3))
        if frames is None:
            frames = len(arr)
            poses = np.zeros((frames, skel.num_joints, 3))
            present = np.zeros(skel.num_joints, dtype=bool)
        elif len(arr) != frames:
            raise DataError(str(p), key, f"has {len(arr)} frames but bodyPose has {frames}")
        idx = [skel.index(n) for n in names]
        poses[:, idx] = arr
        present[idx] = True
    if "frameCount" in data and (count := _integer(p, data, "frameCount")) != frames:
        raise DataError(str(p), "frameCount", f"says {count} but bodyPose has {frames} frames")
    file_fps = _scalar(p, data, "frameRate")
    fps = file_fps if file_fps is not None else fps
    assert poses is not None and present is not None  # bodyPose is required above
    return _one_sequence(p, "smplcodec", skel, poses, present, fps)


def load_aistpp(path: str | Path, fps: float | None = None) -> PoseSet:
    """AIST++ motion ``.pkl`` (dict with ``smpl_poses`` (N, 72)) -> :class:`PoseSet` on :data:`SMPL`.

    Read with :func:`probpose.data.safe_pickle.safe_load`: anything but NumPy arrays and plain
    containers is refused before it is constructed. Frame rate 60 fps unless ``fps`` is given."""
    p = _existing(path)
    try:
        obj = safe_load(p.read_bytes())
    except UnsafePickleError as e:
        raise DataError(str(p), None, f"unsafe pickle: {e}") from None
    except Exception as e:  # truncated or not a pickle at all
        raise DataError(str(p), None, f"not a readable pickle ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise DataError(str(p), None, f"expected a dict of arrays, got {type(obj).__name__}")
    if "smpl_poses" not in obj:
        raise DataError(str(p), "smpl_poses", f"missing: unknown layout (keys: {sorted(map(str, obj))[:20]})")
    if not isinstance(obj["smpl_poses"], np.ndarray):  # nested lists could expand to any size
        raise DataError(str(p), "smpl_poses", f"expected a NumPy array, got {type(obj['smpl_poses']).__name__}")
    flat = _float_array(p, "smpl_poses", obj["smpl_poses"], (None, 72))
    poses, present = unflatten(flat, SMPL)
    return _one_sequence(p, "aistpp", SMPL, poses, present, fps if fps is not None else AISTPP_FPS)


PASYN_EULER_ORDER = "XYZ"
"""PASyn columns are (x, y, z) angles composed R = Rz Ry Rx: extrinsic XYZ."""


def load_pasyn(path: str | Path, fps: float | None = None) -> PoseSet:
    """PASyn zebra ``.npz`` -> :class:`PoseSet` on :data:`ZEBRA_LEGS` (12 joints).

    ``poses`` (N, 39) in degrees: columns 0-2 are a placeholder (dropped; a note is recorded if
    they are not zero), then 12 joints x (x, y, z) Euler angles with ``R = Rz Ry Rx``. ``(N, 36)``
    (no placeholder) is accepted. Rows are independent poses (``fps`` is ignored)."""
    del fps
    p = _existing(path)
    with NpzArchive(p) as data:
        if "poses" not in data:
            raise DataError(str(p), "poses", f"missing: unknown layout (keys: {sorted(data.keys)})")
        shape = data.shape("poses")
        if len(shape) != 2 or shape[1] not in (39, 36):
            raise DataError(str(p), "poses", f"expected (N, 39) or (N, 36) Euler angles in degrees, got {shape}")
        raw = _float_array(p, "poses", data.read("poses"), (None, shape[1]))
    notes = []
    if raw.shape[1] == 39:
        if np.any(raw[:, :3] != 0):
            notes.append("placeholder columns 0-2 are not all zero; dropped as the PASyn layout specifies")
            log.warning("%s: PASyn placeholder columns 0-2 are not all zero; dropped", p)
        raw = raw[:, 3:]
    n = len(raw)
    if n == 0:
        raise DataError(str(p), "poses", "holds no rows")
    check_pasyn_degrees(raw, p, "poses")
    return PoseSet(
        skeleton=ZEBRA_LEGS,
        poses=pasyn_to_axis_angle(raw.reshape(n, 12, 3)),
        present=np.ones(12, dtype=bool),
        sequence=np.zeros(n, dtype=np.int64),
        frame=np.arange(n, dtype=np.int64),
        sequences=[SequenceInfo(p.name, p.name, None, ordered=False)],
        sources=[{"file": p.name, "format": "pasyn", "sha256": sha256(p), "frames": n, "notes": notes}],
    )


def check_pasyn_degrees(euler_degrees: np.ndarray, path: str | Path, field: str | None = None) -> None:
    """Refuse PASyn Euler angles (degrees, ``(N, ...)``) beyond one turn (+-360): not degrees."""
    size = np.abs(euler_degrees).reshape(len(euler_degrees), -1).max(-1) if len(euler_degrees) else np.zeros(0)
    if (size > 360).any():
        row = int(np.flatnonzero(size > 360)[0])
        raise DataError(
            str(path),
            field,
            f"row {row}: Euler angles beyond +-360 degrees (up to {size.max():.4g}): not PASyn leg angles in degrees",
        )


def pasyn_to_axis_angle(euler_degrees: np.ndarray) -> np.ndarray:
    """PASyn Euler angles ``(..., 3)`` in degrees (``R = Rz Ry Rx``) -> canonical axis-angle
    ``(..., 3)`` float32 radians."""
    euler = torch.from_numpy(np.ascontiguousarray(euler_degrees, dtype=np.float64))
    mats = rotations.euler_to_matrix(euler, PASYN_EULER_ORDER, degrees=True)
    return rotations.matrix_to_axis_angle(mats).numpy().astype(np.float32)


def axis_angle_to_pasyn(poses: torch.Tensor) -> torch.Tensor:
    """Axis-angle ``(..., 3)`` radians -> PASyn Euler angles ``(..., 3)`` in degrees (``R = Rz Ry Rx``)."""
    return rotations.matrix_to_euler(rotations.axis_angle_to_matrix(poses.double()), PASYN_EULER_ORDER, degrees=True)


def _from_mocap(mocap: Mocap, path: Path, retarget_map: str | Path | None) -> PoseSet:
    """A retargeted :class:`~probpose.data.mocap.Mocap` as a SMPL-X :class:`PoseSet`."""
    result = retarget(mocap, retarget_map)
    notes = list(mocap.notes) + [f"retargeted to SMPL-X with the {result.map.name!r} map (probpose.data.retarget)"]
    if result.undriven:
        notes.append(f"not driven by the source, so not modelled: {', '.join(result.undriven)}")
    n = len(mocap)
    return PoseSet(
        skeleton=SMPLX,
        poses=result.poses.astype(np.float32),
        present=result.present,
        sequence=np.zeros(n, dtype=np.int64),
        frame=np.arange(n, dtype=np.int64),
        sequences=[SequenceInfo(path.name, path.name, mocap.fps, fps_assumed=not mocap.fps_stated, ordered=True)],
        sources=[
            {
                "file": path.name,
                "format": mocap.format,
                "sha256": sha256(path),
                "frames": n,
                "notes": notes,
                "retarget_map": result.map.name,
            }
        ],
    )


def load_amc(path: str | Path, fps: float | None = None, retarget_map: str | Path | None = None) -> PoseSet:
    """CMU ASF/AMC -> SMPL-X :class:`PoseSet` (:mod:`probpose.data.mocap`, then
    :func:`~probpose.data.retarget.retarget`). The ASF is found beside the AMC
    (:func:`~probpose.data.mocap.find_asf`); ``fps``: the frame rate (default 120, CMU's).
    ``retarget_map``: a built-in map's name or a YAML file (default: the best fitting built-in)."""
    p = _existing(path)
    return _from_mocap(read_amc(p, fps=fps), p, retarget_map)


def load_bvh(path: str | Path, fps: float | None = None, retarget_map: str | Path | None = None) -> PoseSet:
    """BVH -> SMPL-X :class:`PoseSet`; the frame rate is the file's ``Frame Time`` unless ``fps``
    is given. ``retarget_map`` as for :func:`load_amc`."""
    p = _existing(path)
    return _from_mocap(read_bvh(p, fps=fps), p, retarget_map)


POSES_VERSION = 1
"""Version of probpose's own poses ``.npz`` (:func:`save_poses`)."""


def save_poses(path: str | Path, poses: PoseSet, licence: str = "") -> Path:
    """Write a :class:`PoseSet` as probpose's poses ``.npz`` (read back by :func:`load_poses`):
    ``probpose_poses`` (the version), ``skeleton`` (the base preset), ``joint_names`` ``(J,)``,
    ``poses`` ``(N, J, 3)`` float32 radians of the recorded joints only, ``sequence`` ``(N,)``,
    ``frame`` ``(N,)``, per sequence ``sequence_names``, ``fps`` (NaN: unordered poses),
    ``fps_assumed``, and ``sources`` (JSON: files, formats, notes) and ``licence`` text.
    Written atomically."""
    import json

    from probpose.files import atomic_path

    keep = np.flatnonzero(poses.present)
    names = np.array([poses.skeleton.joint_names[j] for j in keep])
    seqs = poses.sequences
    arrays: dict[str, Any] = {
        "probpose_poses": np.array(POSES_VERSION),
        "skeleton": np.array(poses.skeleton.base_name or poses.skeleton.name),
        "joint_names": names,
        "poses": poses.poses[:, keep].astype(np.float32),
        "sequence": poses.sequence,
        "frame": poses.frame,
        "sequence_names": np.array([s.name for s in seqs]),
        "fps": np.array([np.nan if s.fps is None else s.fps for s in seqs]),
        "fps_assumed": np.array([s.fps_assumed for s in seqs]),
        "sources": np.array(json.dumps(poses.sources)),
        "licence": np.array(licence),
    }
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    return path


def load_poses(path: str | Path, fps: float | None = None) -> PoseSet:
    """probpose's own poses ``.npz`` (:func:`save_poses`) -> :class:`PoseSet` on its base
    skeleton, the joints it lists present; ``fps`` replaces the stored frame rates."""
    from probpose.files import parse_json

    p = _existing(path)
    with NpzArchive(p) as data:
        for key in (
            "probpose_poses",
            "skeleton",
            "joint_names",
            "poses",
            "sequence",
            "frame",
            "sequence_names",
            "fps",
            "fps_assumed",
            "sources",
        ):
            if key not in data:
                raise DataError(str(p), key, "missing: not a probpose poses file")
        if _integer(p, data, "probpose_poses") != POSES_VERSION:
            raise DataError(str(p), "probpose_poses", f"unsupported version; this probpose reads {POSES_VERSION}")
        base = get_skeleton(str(data.read("skeleton")))
        names = [str(n) for n in data.read("joint_names")]
        unknown = [n for n in names if n not in base.joint_names]
        if unknown or len(set(names)) != len(names):
            raise DataError(str(p), "joint_names", f"unknown or repeated joints of {base.name}: {unknown[:4]}")
        arr = _float_array(p, "poses", data.read("poses"), (None, len(names), 3))
        n = len(arr)
        sequence, frame = data.read("sequence"), data.read("frame")
        seq_names = [str(x) for x in data.read("sequence_names")]
        rates, assumed = data.read("fps"), data.read("fps_assumed")
        if sequence.shape != (n,) or frame.shape != (n,) or sequence.dtype.kind not in "iu":
            raise DataError(str(p), "sequence", f"expected ({n},) integers")
        if n and (sequence.min() < 0 or sequence.max() >= len(seq_names)) or rates.shape != (len(seq_names),):
            raise DataError(str(p), "sequence", "sequence ids and per-sequence fields disagree")
        sources = parse_json(str(data.read("sources")), p, "sources")
    poses = np.zeros((n, base.num_joints, 3), dtype=np.float32)
    present = np.zeros(base.num_joints, dtype=bool)
    idx = [base.index(name) for name in names]
    poses[:, idx], present[idx] = arr, True
    infos = [
        SequenceInfo(
            name,
            name,
            None if not np.isfinite(r) else float(fps or r),
            bool(a) and fps is None,
            ordered=bool(np.isfinite(r)),
        )
        for name, r, a in zip(seq_names, rates, assumed, strict=True)
    ]
    for src in sources:
        src["notes"] = [*src.get("notes", []), f"read from probpose poses file {p.name}"]
    return PoseSet(base, poses, present, sequence.astype(np.int64), frame.astype(np.int64), infos, sources)


FORMATS: dict[str, Callable[..., PoseSet]] = {
    "amass": load_amass,
    "smplcodec": load_smplcodec,
    "aistpp": load_aistpp,
    "pasyn": load_pasyn,
    "amc": load_amc,
    "bvh": load_bvh,
    "poses": load_poses,
}
MOCAP_FORMATS = ("amc", "bvh")
"""Formats in another skeleton, retargeted to SMPL-X body joints on import."""


def detect_format(path: str | Path) -> str:
    """The format of a file, from its extension and (for ``.npz``) its keys."""
    p = _existing(path)
    suffix = p.suffix.lower()
    if suffix == ".smpl":
        return "smplcodec"
    if suffix in (".pkl", ".pickle"):
        return "aistpp"
    if suffix == ".amc":
        return "amc"
    if suffix == ".bvh":
        return "bvh"
    if suffix == ".npz":
        with NpzArchive(p) as z:
            keys = set(z.keys)
            shape = z.shape("poses") if "poses" in keys else None
        cols = shape[1] if shape is not None and len(shape) == 2 else None
        if "smplVersion" in keys:
            return "smplcodec"
        if "probpose_poses" in keys:
            return "poses"
        if cols in (39, 36):
            return "pasyn"
        if cols in (165, 159, 156, 72) or {"root_orient", "pose_body"} <= keys:
            return "amass"
        if "poses" in keys:
            raise DataError(
                str(p),
                "poses",
                f"unknown layout: shape {shape}; expected (N, 165|159|156|72) for AMASS or (N, 39|36) for PASyn",
            )
        raise DataError(str(p), None, f"unknown layout (keys: {sorted(keys)})")
    raise DataError(str(p), None, f"unknown file type {suffix!r}; expected .npz, .smpl, .pkl, .amc or .bvh")


def load_source(
    path: str | Path, format: str = "auto", fps: float | None = None, retarget_map: str | Path | None = None
) -> PoseSet:
    """Import one file with the importer for ``format`` (``"auto"``: :func:`detect_format`);
    ``fps``: the frame rate to assume where the file states none (or to use instead of its own);
    ``retarget_map``: for motion capture in another skeleton (ASF/AMC, BVH), the map to SMPL-X."""
    fmt = detect_format(path) if format == "auto" else format
    if fmt not in FORMATS:
        raise DataError(str(path), None, f"unknown format {format!r}; known: auto, {', '.join(FORMATS)}")
    if fps is not None and not (np.isfinite(fps) and 0 < fps <= MAX_FPS):
        raise DataError(str(path), "fps", f"the assumed frame rate must be in (0, {MAX_FPS:g}], got {fps!r}")
    if fmt in MOCAP_FORMATS:
        return FORMATS[fmt](path, fps=fps, retarget_map=retarget_map)
    if retarget_map is not None:
        raise DataError(str(path), None, f"a retarget map is for ASF/AMC and BVH files, not {fmt}")
    return FORMATS[fmt](path, fps=fps)


def _prepare(ps: PoseSet, path: str | Path, target: Skeleton, joints: str, fps: float | None, trim: float) -> PoseSet:
    """One file's poses on the target skeleton and selection, resampled and trimmed."""
    try:
        ps = ps.to_skeleton(target).select(joints)
    except DataError as e:
        raise DataError(str(path), None, e.reason) from None
    except SelectionError as e:
        raise DataError(str(path), "joints", str(e)) from None
    except ValueError as e:  # no joints in common with the target skeleton
        raise DataError(str(path), None, str(e)) from None
    if fps is not None:
        ps = ps.resampled(fps)
    if trim:
        ps = ps.trimmed(trim)
    return ps


def _check_timing(fps: float | None, trim: float) -> None:
    if fps is not None and not (np.isfinite(fps) and 0 < fps <= MAX_FPS):
        raise DataError("`fps`", None, f"target frame rate must be in (0, {MAX_FPS:g}], got {fps!r}")
    if not (np.isfinite(trim) and 0 <= trim < 0.5):
        raise DataError("`trim`", None, f"must be a fraction in [0, 0.5), got {trim!r}")


def _target(sets: Sequence[PoseSet], skeleton: str | None, paths: Sequence[str | Path]) -> Skeleton:
    animal = [s.skeleton.name == "zebra_legs" for s in sets]
    if skeleton is None:
        if any(animal) and not all(animal):
            raise DataError(", ".join(map(str, paths)), None, "cannot mix zebra (PASyn) and human sources in one store")
        skeleton = "zebra_legs" if all(animal) else "smplx"
    return get_skeleton(skeleton)


def import_poses(
    paths: Sequence[str | Path],
    skeleton: str | None = None,
    joints: str | None = None,
    format: str = "auto",
    assume_fps: float | None = None,
    fps: float | None = None,
    trim: float = 0.0,
    retarget_map: str | Path | None = None,
) -> PoseSet:
    """Import several files into one :class:`PoseSet` of ``skeleton`` restricted to ``joints``.

    ``skeleton`` defaults to ``zebra_legs`` for PASyn files and ``smplx`` otherwise; ``joints`` to
    :data:`DEFAULT_JOINTS` of that skeleton. ``assume_fps``: the frame rate of files that state
    none (default :data:`DEFAULT_FPS`, noted). ``fps``: resample every time series to this rate;
    ``trim``: drop this fraction of each time series' frames at both ends. A file lacking a selected
    joint is an error (never padded), as is an empty result. Motion capture in another skeleton
    (ASF/AMC, BVH) is retargeted to SMPL-X (``retarget_map``) and defaults to the ``body`` joints."""
    if not paths:
        raise DataError("import", None, "no source files given")
    _check_timing(fps, trim)
    out, target, animal, chosen = [], None, None, joints
    for path in paths:  # one file at a time: memory holds the prepared poses, not every raw file
        ps = load_source(path, format, assume_fps, retarget_map)
        is_animal = ps.skeleton.name == "zebra_legs"
        if animal is not None and is_animal != animal and skeleton is None:
            raise DataError(", ".join(map(str, paths)), None, "cannot mix zebra (PASyn) and human sources in one store")
        if target is None:
            animal = is_animal
            target = _target([ps], skeleton, [path])
            chosen = joints or DEFAULT_JOINTS.get(target.name, "all")
            if joints is None and ps.sources[0]["format"] in MOCAP_FORMATS and target.name == "smplx":
                # the body joints the retarget drives (CMU's clavicles never move: not the collars)
                body = ps.skeleton.selection_indices("body")
                absent = [ps.skeleton.joint_names[j] for j in body if not ps.present[j]]
                chosen = selection_without("smplx", "body", absent)
        out.append(_prepare(ps, path, target, chosen, fps, trim))
    result = PoseSet.concatenate(out)
    if len(result) == 0:
        raise DataError(", ".join(map(str, paths)), None, "no poses imported")
    return result


def import_recording(
    paths: Sequence[str | Path],
    skeleton: str | None = None,
    joints: str | None = None,
    format: str = "auto",
    assume_fps: float | None = None,
    fps: float | None = None,
    trim: float = 0.0,
    retarget_map: str | Path | None = None,
) -> tuple[PoseSet, list[str]]:
    """Like :func:`import_poses`, but leaves out files that do not record the selected joints.

    Returns the pose set and one line per file left out (say them to the user). At least one file
    must remain."""
    kept, skipped = [], []
    for path in paths:
        try:
            kept.append(import_poses([path], skeleton, joints, format, assume_fps, fps, trim, retarget_map))
        except DataError as e:
            if "does not record" not in e.reason:
                raise
            skipped.append(f"left out {Path(path).name}: {e.reason.split(';')[0]}")
    if not kept:
        raise DataError(", ".join(map(str, paths)), None, f"no file records joint selection {joints!r}")
    return PoseSet.concatenate(kept), skipped
