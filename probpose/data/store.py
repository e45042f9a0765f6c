"""The HDF5 pose store (docs/architecture.md, "Data").

Layout (``LAYOUT_VERSION`` 2)::

    /                 attributes: layout_version, skeleton (JSON: name, joint names, parents, base,
                      selection), base_skeleton, joints (the selection), joint_names (JSON), units,
                      split_rule (JSON), split_stats (JSON), probpose_version
    /meta/sources     uint8, UTF-8 JSON: one dict per source file (file, format, sha256, frames,
                      notes, and for trees dataset and split)
    /meta/sequences   uint8, UTF-8 JSON: one dict per sequence (name, source, fps, ...)
    /train /val /test
        poses         (N, J, 3) float32, canonical axis-angle in radians; chunked along N, gzip
        sequence      (N,) int64, index into the sequences
        frame         (N,) int64, frame (or row) index within that sequence

(Layout 1 kept sources and sequences as attributes, which HDF5 limits to 64 KB -- too small for an
AMASS tree's 11,000 files; it is still read.) Datasets are resizable and written append by append
(:class:`StoreWriter`), without timestamps, so the same input gives a byte-identical file.

A store is written to a temporary file in the destination folder and renamed into place, so an
interrupted import never leaves a half-written file under the final name. Readers check the
attributes against each other and against the preset skeleton, the datasets' dtypes and shapes,
and that every pose read is finite; each failure is a :class:`DataError` naming file and field.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from probpose.data.poseset import PoseSet
from probpose.data.splits import SPLIT_NAMES, Split
from probpose.errors import DataError, SelectionError, short_repr
from probpose.files import atomic_path, check_space, input_file, parse_json
from probpose.skeleton import SKELETONS, Skeleton

__all__ = [
    "LAYOUT_VERSION",
    "UNITS",
    "StoreWriter",
    "write_store",
    "StoreInfo",
    "read_info",
    "read_split",
    "check_poses",
    "read_sample",
    "fingerprint",
]

LAYOUT_VERSION = 2
READABLE_VERSIONS = (1, 2)
UNITS = "axis-angle, radians, canonical (angle in [0, pi]), relative to the parent joint"
_CHUNK_ROWS = 4096


def _row_hashes(poses: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each pose's exact bytes ``(n, J, 3) -> (n,)`` (a vectorised polynomial hash;
    equal poses hash equal, collisions are checked by comparing the poses)."""
    words = np.ascontiguousarray(poses, dtype=np.float32).reshape(len(poses), -1).view(np.uint32).astype(np.uint64)
    mult = np.uint64(0x9E3779B97F4A7C15)
    h = np.full(len(poses), np.uint64(0xCBF29CE484222325), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for col in words.T:
            h = (h ^ col) * mult
    return h


class StoreWriter:
    """Writes a store append by append into ``path`` (a temporary name: callers rename it into place).

    ``append(split, poses, sequence, frame)`` adds rows to a split (``poses (n, J, 3)`` radians);
    ``drop_cross_split_duplicates()`` removes from val and test the poses bit-identical to an earlier
    split's (train < val < test); ``close(...)`` writes the attributes and metadata. Memory: one chunk
    of rows plus 8 bytes per row for the duplicate check."""

    def __init__(self, path: str | Path, skeleton: Skeleton, chunk_rows: int = _CHUNK_ROWS) -> None:
        self.path, self.skeleton, self.chunk_rows = Path(path), skeleton, chunk_rows
        check_space(self.path, 0)  # HDF5 does not survive a full disk: every block is checked before it is written
        self.file = h5py.File(self.path, "w", track_order=True)
        self.hashes: dict[str, list[np.ndarray]] = {name: [] for name in SPLIT_NAMES}
        j = skeleton.num_joints
        for name in SPLIT_NAMES:
            g = self.file.create_group(name, track_order=True)
            g.create_dataset(
                "poses",
                shape=(0, j, 3),
                maxshape=(None, j, 3),
                dtype=np.float32,
                chunks=(chunk_rows, j, 3),
                compression="gzip",
                shuffle=True,
                track_times=False,
            )
            for key in ("sequence", "frame"):
                g.create_dataset(
                    key, shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(chunk_rows,), track_times=False
                )

    def size(self, split: str) -> int:
        return self.file[split]["poses"].shape[0]

    def append(self, split: str, poses: np.ndarray, sequence: np.ndarray, frame: np.ndarray) -> None:
        g = self.file[split]
        n, start = len(poses), self.size(split)
        if n == 0:
            return
        check_space(self.path, n * (self.skeleton.num_joints * 3 * 4 + 16))
        for key, value in (("poses", np.asarray(poses, dtype=np.float32)), ("sequence", sequence), ("frame", frame)):
            d = g[key]
            d.resize(start + n, axis=0)
            d[start:] = value
        self.hashes[split].append(_row_hashes(poses))

    def drop_cross_split_duplicates(self) -> int:
        """Remove from each later split the poses bit-identical to one in an earlier split; returns
        how many were dropped."""
        dropped = 0
        earlier_hashes = np.zeros(0, dtype=np.uint64)
        earlier_rows: list[tuple[str, np.ndarray]] = []  # (split, row index) per earlier hash, in order
        for name in SPLIT_NAMES:
            h = np.concatenate(self.hashes[name]) if self.hashes[name] else np.zeros(0, dtype=np.uint64)
            if len(earlier_hashes) and len(h):
                order = np.argsort(earlier_hashes, kind="stable")
                sorted_h = earlier_hashes[order]
                pos = np.searchsorted(sorted_h, h)
                candidate = np.flatnonzero((pos < len(sorted_h)) & (sorted_h[np.minimum(pos, len(sorted_h) - 1)] == h))
                duplicate = [i for i in candidate if self._has_equal(name, i, h[i], sorted_h, order, earlier_rows)]
                if duplicate:
                    keep = np.ones(len(h), dtype=bool)
                    keep[duplicate] = False
                    self._keep_rows(name, keep)
                    h = h[keep]
                    dropped += len(duplicate)
            earlier_rows.append((name, np.arange(len(h))))
            earlier_hashes = np.concatenate([earlier_hashes, h])
            self.hashes[name] = [h]
        return dropped

    def _has_equal(self, split, i, value, sorted_h, order, earlier_rows) -> bool:
        row = self.file[split]["poses"][i]
        offsets = np.cumsum([0] + [len(r) for _, r in earlier_rows])
        k = np.searchsorted(sorted_h, value)
        while k < len(sorted_h) and sorted_h[k] == value:
            flat = order[k]
            s = int(np.searchsorted(offsets, flat, side="right") - 1)
            name = earlier_rows[s][0]
            if np.array_equal(self.file[name]["poses"][flat - offsets[s]], row):
                return True
            k += 1
        return False

    def _keep_rows(self, split: str, keep: np.ndarray) -> None:
        """Rewrite a split's datasets without the rows where ``keep`` is False (chunk by chunk)."""
        g = self.file[split]
        n = int(keep.sum())
        for key in ("poses", "sequence", "frame"):
            d = g[key]
            write = 0
            for start in range(0, len(keep), self.chunk_rows):
                block = d[start : start + self.chunk_rows][keep[start : start + self.chunk_rows]]
                d[write : write + len(block)] = block  # write never passes start: rows only move down
                write += len(block)
            d.resize(n, axis=0)

    def close(self, *, sources: list, sequences: list, split_rule: dict, split_stats: dict) -> None:
        from probpose import __version__

        f, skeleton = self.file, self.skeleton
        f.attrs["layout_version"] = LAYOUT_VERSION
        f.attrs["skeleton"] = json.dumps(skeleton.to_dict())
        f.attrs["base_skeleton"] = skeleton.base_name
        f.attrs["joints"] = skeleton.selection
        f.attrs["joint_names"] = json.dumps(list(skeleton.joint_names))
        f.attrs["units"] = UNITS
        f.attrs["split_rule"] = json.dumps(split_rule)
        f.attrs["split_stats"] = json.dumps(split_stats)
        f.attrs["probpose_version"] = __version__
        meta = f.create_group("meta", track_order=True)
        for key, value in (("sources", sources), ("sequences", sequences)):
            blob = np.frombuffer(json.dumps(value).encode("utf-8"), dtype=np.uint8)
            check_space(self.path, blob.nbytes)
            meta.create_dataset(key, data=blob, compression="gzip", track_times=False)
        f.close()


def write_store(
    path: str | Path, poses: PoseSet, split: Split, joints: str | None = None, base_skeleton: str | None = None
) -> Path:
    """Write ``poses`` split by ``split`` to an HDF5 store at ``path``, atomically.

    ``joints`` and ``base_skeleton``, when given, must be the selection and preset the poses'
    skeleton records. The file is written under a temporary name and renamed into place only when
    complete: an error or an interruption leaves an existing ``path`` untouched. Returns the path."""
    for given, own, what in (
        (joints, poses.skeleton.selection, "joints"),
        (base_skeleton, poses.skeleton.base_name, "base_skeleton"),
    ):
        if given is not None and given != own:
            raise ValueError(f"write_store: {what}={given!r} but the poses' skeleton says {own!r}")
    path = Path(path)
    with atomic_path(path) as tmp:
        writer = StoreWriter(tmp, poses.skeleton)
        try:
            for name in SPLIT_NAMES:
                idx = split.indices[name]
                writer.append(
                    name, poses.poses[idx], poses.sequence[idx].astype(np.int64), poses.frame[idx].astype(np.int64)
                )
            writer.close(
                sources=poses.sources,
                sequences=[s.to_dict() for s in poses.sequences],
                split_rule=split.rule,
                split_stats=split.stats,
            )
        finally:
            if writer.file.id.valid:
                writer.file.close()
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


_REQUIRED = ("layout_version", "skeleton", "base_skeleton", "joints", "units", "split_rule")


def _open(path: Path) -> h5py.File:
    input_file(path, "pose store")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise DataError(str(path), None, f"not an HDF5 file ({e})") from None


def _json_attr(f: h5py.File, path: Path, key: str, default: Any = None) -> Any:
    if key not in f.attrs:
        if default is not None:
            return default
        raise DataError(str(path), key, "missing attribute: not a probpose pose store")
    value = f.attrs[key]
    if not isinstance(value, (str, bytes)):
        raise DataError(str(path), key, f"attribute is not JSON text (a {type(value).__name__})")
    return parse_json(value, path, key)


def _meta(f: h5py.File, path: Path, key: str, version: int) -> list:
    """A JSON list kept in ``/meta`` (layout 2) or as an attribute (layout 1)."""
    if version == 1:
        return _json_attr(f, path, key)
    if "meta" not in f or key not in f["meta"]:
        raise DataError(str(path), f"meta/{key}", "missing dataset")
    _check_local(f, "meta", path, "meta")
    _check_local(f["meta"], key, path, f"meta/{key}")
    value = parse_json(bytes(f["meta"][key][...]), path, f"meta/{key}")
    if not isinstance(value, list):
        raise DataError(str(path), f"meta/{key}", "is not a list")
    return value


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


def _check_local(g: h5py.Group, key: str, path: Path, where: str) -> None:
    """Refuse a member that reads from somewhere else than this file: an external link, a dataset
    whose data sits in external raw files, or a virtual dataset (of another file, or of a missing
    one, which HDF5 reads as zeros); and a dataset whose declared chunks are not all in the file
    (missing ones read as zeros too: a small file could declare billions of rows)."""
    link = g.get(key, getlink=True)
    if isinstance(link, h5py.ExternalLink):
        raise DataError(
            str(path), where, f"is an external link to {short_repr(link.filename)}; a store must hold its own data"
        )
    obj = g[key]
    if not isinstance(obj, h5py.Dataset):
        return
    if obj.is_virtual:
        raise DataError(
            str(path), where, "is a virtual dataset (its data lives in other files); a store must hold its own data"
        )
    if obj.external:
        raise DataError(str(path), where, "keeps its data in external files; a store must hold its own data")
    if obj.size == 0:
        return
    if obj.chunks is not None:
        expected = math.prod(-(-n // c) for n, c in zip(obj.shape, obj.chunks, strict=True))
        stored = obj.id.get_num_chunks()
        if stored != expected:
            raise DataError(
                str(path),
                where,
                f"declares shape {obj.shape} but holds {stored:,} of its {expected:,} "
                "chunks: the rest would read as zeros (a truncated or forged store)",
            )
    elif obj.id.get_storage_size() < obj.nbytes:
        raise DataError(
            str(path),
            where,
            f"declares shape {obj.shape} ({obj.nbytes:,} bytes) but stores only "
            f"{obj.id.get_storage_size():,} bytes (a truncated or forged store)",
        )


def _check_split_datasets(f: h5py.File, path: Path, name: str, skeleton: Skeleton) -> int:
    if name not in f:
        raise DataError(str(path), name, "missing split group")
    _check_local(f, name, path, name)
    if not isinstance(f[name], h5py.Group):
        raise DataError(str(path), name, "missing split group")
    g = f[name]
    for key in ("poses", "sequence", "frame"):
        if key not in g or not isinstance(g[key], h5py.Dataset):
            raise DataError(str(path), f"{name}/{key}", "missing dataset")
        _check_local(g, key, path, f"{name}/{key}")
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
    if version not in READABLE_VERSIONS:
        readable = ", ".join(map(str, READABLE_VERSIONS))
        raise DataError(str(path), "layout_version", f"is {version}; this probpose reads versions {readable}")
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
        sources=_meta(f, path, "sources", version),
        sequences=_meta(f, path, "sequences", version),
        split_rule=_json_attr(f, path, "split_rule"),
        split_stats=_json_attr(f, path, "split_stats", default={}),
    )


def read_info(path: str | Path) -> StoreInfo:
    """Read and check a store's attributes and datasets (:class:`DataError` on anything unexpected)."""
    path = Path(path)
    with _open(path) as f:
        return _info(f, path)


def fingerprint(path: str | Path) -> str:
    """A short identity of a store's contents: its byte size, split sizes, joints, and the first and
    last pose of every split (to tell two copies apart without reading them)."""
    path = Path(path)
    with _open(path) as f:
        info = _info(f, path)
        ends = []
        for name, size in info.sizes.items():
            if size:
                dset = f[name]["poses"]
                ends.append(np.concatenate([dset[:1], dset[size - 1 :]]).tobytes().hex())
    return f"{path.stat().st_size} {info.sizes} {info.joints} {hashlib.sha256(''.join(ends).encode()).hexdigest()}"


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


def read_sample(path: str | Path, split: str, n: int) -> np.ndarray:
    """At most ``n`` poses of a split, evenly spaced, read chunk by chunk (bounded memory)."""
    path = Path(path)
    with _open(path) as f:
        _info(f, path)
        dset = f[split]["poses"]
        step = max(1, -(-len(dset) // n))
        parts = []
        for start in range(0, len(dset), _CHUNK_ROWS * step):
            block = dset[start : start + _CHUNK_ROWS * step]
            parts.append(check_poses(block[::step], path, split, start))
        return np.concatenate(parts) if parts else np.zeros((0, *dset.shape[1:]), dtype=np.float32)
