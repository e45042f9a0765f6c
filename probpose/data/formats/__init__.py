"""Pose file formats, one module each, every reader returning a :class:`~probpose.data.PoseSet` in
its own skeleton; :func:`load_source` picks the reader.

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

Every reader rejects a missing file, an unknown layout, wrong shapes and NaN/inf with a
:class:`DataError` naming the file and field, and returns canonical axis-angle in radians.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from probpose.data.formats.common import DEFAULT_FPS, MAX_FPS, _existing, fps_in_range
from probpose.data.formats.motion_capture import load_amc, load_bvh
from probpose.data.formats.pasyn import axis_angle_to_pasyn, check_pasyn_degrees, load_pasyn, pasyn_to_axis_angle
from probpose.data.formats.poses import load_poses, save_poses
from probpose.data.formats.smpl import load_aistpp, load_amass, load_smplcodec
from probpose.data.npz import NpzArchive
from probpose.data.poseset import PoseSet
from probpose.errors import DataError

__all__ = [
    "FORMATS",
    "MOCAP_FORMATS",
    "DEFAULT_FPS",
    "MAX_FPS",
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
    "check_pasyn_degrees",
    "pasyn_to_axis_angle",
    "axis_angle_to_pasyn",
]

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
    ``retarget_map``: for motion capture in another skeleton (ASF/AMC, BVH), the map to SMPL-X.

    Example:
        >>> from probpose.data import bundled, load_source
        >>> avatar = load_source(bundled("smplx")[0])  # the SMPL codec recording shipped with probpose
        >>> avatar.skeleton.name, avatar.poses.shape, avatar.sequences[0].fps
        ('smplx', (601, 55, 3), 120.0)
    """
    fmt = detect_format(path) if format == "auto" else format
    if fmt not in FORMATS:
        raise DataError(str(path), None, f"unknown format {format!r}; known: auto, {', '.join(FORMATS)}")
    if fps is not None and not fps_in_range(fps):
        raise DataError(str(path), "fps", f"the assumed frame rate must be in (0, {MAX_FPS:g}], got {fps!r}")
    if fmt in MOCAP_FORMATS:
        return FORMATS[fmt](path, fps=fps, retarget_map=retarget_map)
    if retarget_map is not None:
        raise DataError(str(path), None, f"a retarget map is for ASF/AMC and BVH files, not {fmt}")
    return FORMATS[fmt](path, fps=fps)
