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
interrupted import never leaves a half-written file under the final name. Readers check the
attributes against each other and against the preset skeleton, the datasets' dtypes and shapes,
and that every pose read is finite; each failure is a :class:`DataError` naming file and field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from probpose.data.poseset import PoseSet
from probpose.data.splits import SPLIT_NAMES, Split
from probpose.errors import DataError, SelectionError, short_repr
from probpose.files import atomic_path
from probpose.skeleton import SKELETONS, Skeleton

__all__ = ["LAYOUT_VERSION", "UNITS", "write_store", "StoreInfo", "read_info", "read_split", "check_poses"]

LAYOUT_VERSION = 1
UNITS = "axis-angle, radians, canonical (angle in [0, pi]), relative to the parent joint"
_CHUNK_ROWS = 4096


def write_store(
    path: str | Path, poses: PoseSet, split: Split, joints: str | None = None, base_skeleton: str | None = None
) -> Path:
    """Write ``poses`` split by ``split`` to an HDF5 store at ``path``, atomically.

    ``joints`` is the selection expression and ``base_skeleton`` the preset it selects from (by
    default both as recorded by the skeleton); both are stored so readers can check them. The file
    is written under a temporary name and renamed into place only when complete: an error or an
    interruption leaves an existing ``path`` untouched. Returns the final path."""
    from probpose import __version__

    for given, own, what in ((joints, poses.skeleton.selection, "joints"),
                             (base_skeleton, poses.skeleton.base_name, "base_skeleton")):  # fmt: skip
        if given is not None and given != own:
            raise ValueError(f"write_store: {what}={given!r} but the poses' skeleton says {own!r}")
    joints, base_skeleton = poses.skeleton.selection, poses.skeleton.base_name
    path = Path(path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
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
                opts = {"chunks": (min(len(idx), _CHUNK_ROWS), *data.shape[1:]), "compression": "gzip", "shuffle": True}
            g.create_dataset("poses", data=data, **opts)
            g.create_dataset("sequence", data=poses.sequence[idx].astype(np.int64))
            g.create_dataset("frame", data=poses.frame[idx].astype(np.int64))
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
        raise DataError(str(path), None, "no such file" if not path.exists() else "not a regular file")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise DataError(str(path), None, f"not an HDF5 file ({e})") from None


def _json_attr(f: h5py.File, path: Path, key: str, default: object = None) -> object:
    if key not in f.attrs:
        if default is not None:
            return default
        raise DataError(str(path), key, "missing attribute: not a probpose pose store")
    try:
        return json.loads(f.attrs[key])
    except (TypeError, ValueError) as e:
        raise DataError(str(path), key, f"attribute is not valid JSON ({e})") from None


def _skeleton(f: h5py.File, path: Path) -> Skeleton:
    """The store's skeleton, checked against its other attributes and against the preset it names."""
    d = _json_attr(f, path, "skeleton")
    try:
        skeleton = Skeleton.from_dict(d)
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(str(path), "skeleton", f"attribute is not a valid skeleton ({e})") from None
    base, joints = str(f.attrs["base_skeleton"]), str(f.attrs["joints"])
    names = _json_attr(f, path, "joint_names", default=list(skeleton.joint_names))
    if list(names) != list(skeleton.joint_names):
        raise DataError(str(path), "joint_names", "attribute disagrees with the skeleton attribute's joint names")
    if base != skeleton.base_name or joints != skeleton.selection:
        raise DataError(
            str(path),
            "skeleton",
            f"attribute says {skeleton.base_name}[{skeleton.selection}] but base_skeleton/joints say {base}[{joints}]",
        )
    if base in SKELETONS:
        try:
            expected = SKELETONS[base].select(joints)
        except SelectionError as e:
            raise DataError(str(path), "joints", str(e)) from None
        if (expected.joint_names, expected.parents) != (skeleton.joint_names, skeleton.parents):
            raise DataError(
                str(path), "skeleton", f"joints or parents differ from preset {base!r} selection {joints!r}"
            )
    return skeleton


def _check_split_datasets(f: h5py.File, path: Path, name: str, skeleton: Skeleton) -> int:
    if name not in f or not isinstance(f[name], h5py.Group):
        raise DataError(str(path), name, "missing split group")
    g = f[name]
    for key in ("poses", "sequence", "frame"):
        if key not in g or not isinstance(g[key], h5py.Dataset):
            raise DataError(str(path), f"{name}/{key}", "missing dataset")
    poses = g["poses"]
    if poses.dtype.kind != "f":
        raise DataError(str(path), f"{name}/poses", f"expected float axis-angle poses, got dtype {poses.dtype}")
    if poses.ndim != 3 or poses.shape[1:] != (skeleton.num_joints, 3):
        raise DataError(
            str(path), f"{name}/poses", f"shape {poses.shape} does not match the store's {skeleton.num_joints} joints"
        )
    n = poses.shape[0]
    for key in ("sequence", "frame"):
        d = g[key]
        if d.dtype.kind not in "iu" or d.shape != (n,):
            raise DataError(str(path), f"{name}/{key}", f"expected ({n},) integers, got {d.shape} {d.dtype}")
    return n


def _info(f: h5py.File, path: Path) -> StoreInfo:
    for key in _REQUIRED:
        if key not in f.attrs:
            raise DataError(str(path), key, "missing attribute: not a probpose pose store")
    try:
        version = int(f.attrs["layout_version"])
    except (TypeError, ValueError):
        raise DataError(str(path), "layout_version", "is not an integer") from None
    if version != LAYOUT_VERSION:
        raise DataError(str(path), "layout_version", f"is {version}; this probpose reads version {LAYOUT_VERSION}")
    if f.attrs["units"] != UNITS:
        raise DataError(str(path), "units", f"is {short_repr(f.attrs['units'])}, expected {UNITS!r}")
    skeleton = _skeleton(f, path)
    sizes = {name: _check_split_datasets(f, path, name, skeleton) for name in SPLIT_NAMES}
    return StoreInfo(
        path=path,
        skeleton=skeleton,
        base_skeleton=skeleton.base_name,
        joints=skeleton.selection,
        sizes=sizes,
        sources=_json_attr(f, path, "sources"),
        sequences=_json_attr(f, path, "sequences"),
        split_rule=_json_attr(f, path, "split_rule"),
        split_stats=_json_attr(f, path, "split_stats", default={}),
    )


def read_info(path: str | Path) -> StoreInfo:
    """Read and check a store's attributes and datasets (:class:`DataError` on anything unexpected)."""
    path = Path(path)
    with _open(path) as f:
        return _info(f, path)


def check_poses(block: np.ndarray, path: str | Path, split: str, offset: int = 0) -> np.ndarray:
    """Refuse non-finite poses read from ``path``'s ``split`` (rows counted from ``offset``)."""
    finite = np.isfinite(block)
    if not finite.all():
        bad = np.flatnonzero(~finite.reshape(len(block), -1).all(-1))
        raise DataError(
            str(path), f"{split}/poses", f"{len(bad)} pose(s) with NaN/inf values (first at row {offset + int(bad[0])})"
        )
    return block


def read_split(
    path: str | Path, split: str = "train", *, joints: str | None = None, skeleton: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(poses (N, J, 3) float32 radians, sequence (N,) int64)`` of one split, checked finite.

    ``joints``/``skeleton``, when given, must match what the store was written with (a model
    trained on one selection must not silently read another)."""
    if split not in SPLIT_NAMES:
        raise DataError(str(path), None, f"unknown split {split!r}; one of {', '.join(SPLIT_NAMES)}")
    path = Path(path)
    with _open(path) as f:
        info = _info(f, path)
        if joints is not None and joints != info.joints:
            raise DataError(str(path), "joints", f"store holds joints {info.joints!r}, expected {joints!r}")
        if skeleton is not None and skeleton != info.base_skeleton:
            raise DataError(str(path), "base_skeleton", f"store holds {info.base_skeleton!r}, expected {skeleton!r}")
        dset = f[split]["poses"]
        out = np.empty(dset.shape, dtype=np.float32)
        for start in range(0, len(out), _CHUNK_ROWS):
            out[start : start + _CHUNK_ROWS] = check_poses(dset[start : start + _CHUNK_ROWS], path, split, start)
        return out, f[split]["sequence"][...].astype(np.int64)
