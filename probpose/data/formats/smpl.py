"""The SMPL family's files: AMASS-style ``.npz`` (SMPL-X, SMPL+H, SMPL), Meshcapade's ``.smpl``
codec and AIST++ motion ``.pkl``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from probpose.data.formats.common import (
    _existing,
    _float_array,
    _integer,
    _one_sequence,
    _scalar,
)
from probpose.data.npz import NpzArchive
from probpose.data.poseset import PoseSet
from probpose.data.safe_pickle import UnsafePickleError, safe_load
from probpose.errors import DataError
from probpose.skeleton import SMPL, SMPLH, SMPLX, unflatten

__all__ = ["load_amass", "load_smplcodec", "load_aistpp", "AISTPP_FPS"]

AISTPP_FPS = 60.0
"""AIST++ SMPL motions are sampled at 60 frames per second."""

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
