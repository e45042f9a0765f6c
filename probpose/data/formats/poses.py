"""probpose's own poses ``.npz``: any :class:`~probpose.data.PoseSet` written and read back exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from probpose.data.formats.common import (
    _existing,
    _float_array,
    _integer,
)
from probpose.data.npz import NpzArchive
from probpose.data.poseset import PoseSet, SequenceInfo
from probpose.errors import DataError
from probpose.skeleton import get_skeleton

__all__ = ["save_poses", "load_poses", "POSES_VERSION"]

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
