"""The HDF5 pose store (DESIGN.md section 4).

Layout (``LAYOUT_VERSION`` 1)::

    /                 attributes: layout_version, skeleton (JSON: name, joint_names, parents),
                      base_skeleton, joints (the selection), units, sources (JSON), sequences (JSON),
                      split_rule (JSON), split_stats (JSON), probpose_version
    /train /val /test
        poses         (N, J, 3) float32, canonical axis-angle in radians; chunked along N, gzip
        sequence      (N,) int64, index into the ``sequences`` attribute
        frame         (N,) int64, frame (or row) index within that sequence

A store is written to a temporary file in the destination folder and renamed into place, so an
interrupted import never leaves a half-written file under the final name.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from probpose.data.poseset import DataError, PoseSet
from probpose.data.splits import SPLIT_NAMES, Split
from probpose.skeleton import Skeleton

__all__ = ["LAYOUT_VERSION", "UNITS", "write_store", "StoreInfo", "read_info", "read_split"]

LAYOUT_VERSION = 1
UNITS = "axis-angle, radians, canonical (angle in [0, pi]), relative to the parent joint"
_CHUNK_ROWS = 4096


def write_store(
    path: str | Path, poses: PoseSet, split: Split, joints: str | None = None, base_skeleton: str | None = None
) -> Path:
    """Write ``poses`` split by ``split`` to an HDF5 store at ``path``, atomically.

    ``joints`` is the selection expression and ``base_skeleton`` the preset it selects from (by
    default both as recorded by the skeleton's selection); both are stored so readers can check
    them. Returns the final path."""
    from probpose import __version__

    joints = joints or poses.skeleton.selection
    base_skeleton = base_skeleton or poses.skeleton.base_name
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; a store is an ordinary file
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["layout_version"] = LAYOUT_VERSION
            f.attrs["skeleton"] = json.dumps(poses.skeleton.to_dict())
            f.attrs["base_skeleton"] = base_skeleton
            f.attrs["joints"] = joints
            f.attrs["joint_names"] = json.dumps(list(poses.skeleton.joint_names))
            f.attrs["units"] = UNITS
            f.attrs["sources"] = json.dumps(poses.sources)
            f.attrs["sequences"] = json.dumps([s.to_dict() for s in poses.sequences])
            f.attrs["split_rule"] = json.dumps(split.rule)
            f.attrs["split_stats"] = json.dumps(split.stats)
            f.attrs["probpose_version"] = __version__
            for name in SPLIT_NAMES:
                idx = split.indices[name]
                g = f.create_group(name)
                data = np.ascontiguousarray(poses.poses[idx], dtype=np.float32)
                opts = {}
                if len(idx):
                    opts = {
                        "chunks": (min(len(idx), _CHUNK_ROWS), *data.shape[1:]),
                        "compression": "gzip",
                        "shuffle": True,
                    }
                g.create_dataset("poses", data=data, **opts)
                g.create_dataset("sequence", data=poses.sequence[idx].astype(np.int64))
                g.create_dataset("frame", data=poses.frame[idx].astype(np.int64))
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


@dataclass(frozen=True)
class StoreInfo:
    """What a store holds, read from its attributes."""

    path: Path
    skeleton: Skeleton
    base_skeleton: str
    joints: str
    sizes: dict[str, int]
    sources: list[dict]
    sequences: list[dict]
    split_rule: dict
    split_stats: dict

    @property
    def num_joints(self) -> int:
        return self.skeleton.num_joints


_REQUIRED = ("layout_version", "skeleton", "base_skeleton", "joints", "units", "sources", "sequences", "split_rule")


def _open(path: Path) -> h5py.File:
    if not path.is_file():
        raise DataError(str(path), None, "no such file")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise DataError(str(path), None, f"not an HDF5 file ({e})") from None


def _info(f: h5py.File, path: Path) -> StoreInfo:
    for key in _REQUIRED:
        if key not in f.attrs:
            raise DataError(str(path), key, "missing attribute: not a probpose pose store")
    version = int(f.attrs["layout_version"])
    if version != LAYOUT_VERSION:
        raise DataError(str(path), "layout_version", f"is {version}; this probpose reads version {LAYOUT_VERSION}")
    if f.attrs["units"] != UNITS:
        raise DataError(str(path), "units", f"is {f.attrs['units']!r}, expected {UNITS!r}")
    skeleton = Skeleton.from_dict(json.loads(f.attrs["skeleton"]))
    sizes = {}
    for name in SPLIT_NAMES:
        if name not in f or "poses" not in f[name]:
            raise DataError(str(path), f"{name}/poses", "missing")
        shape = f[name]["poses"].shape
        if shape[1:] != (skeleton.num_joints, 3):
            raise DataError(str(path), f"{name}/poses", f"shape {shape} does not match {skeleton.num_joints} joints")
        sizes[name] = shape[0]
    return StoreInfo(
        path=path,
        skeleton=skeleton,
        base_skeleton=str(f.attrs["base_skeleton"]),
        joints=str(f.attrs["joints"]),
        sizes=sizes,
        sources=json.loads(f.attrs["sources"]),
        sequences=json.loads(f.attrs["sequences"]),
        split_rule=json.loads(f.attrs["split_rule"]),
        split_stats=json.loads(f.attrs.get("split_stats", "{}")),
    )


def read_info(path: str | Path) -> StoreInfo:
    """Read and check a store's attributes (:class:`DataError` on anything unexpected)."""
    path = Path(path)
    with _open(path) as f:
        return _info(f, path)


def read_split(
    path: str | Path, split: str = "train", *, joints: str | None = None, skeleton: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(poses (N, J, 3) float32 radians, sequence (N,) int64)`` of one split.

    ``joints``/``skeleton``, when given, must match what the store was written with (a model
    trained on one selection must not silently read another)."""
    if split not in SPLIT_NAMES:
        raise ValueError(f"unknown split {split!r}; one of {SPLIT_NAMES}")
    path = Path(path)
    with _open(path) as f:
        info = _info(f, path)
        if joints is not None and joints != info.joints:
            raise DataError(str(path), "joints", f"store holds joints {info.joints!r}, expected {joints!r}")
        if skeleton is not None and skeleton != info.base_skeleton:
            raise DataError(str(path), "base_skeleton", f"store holds {info.base_skeleton!r}, expected {skeleton!r}")
        return f[split]["poses"][...], f[split]["sequence"][...]
