"""Motion capture in another skeleton: CMU ASF/AMC and BVH, read by :mod:`probpose.data.mocap` and
retargeted to SMPL-X body joints by :mod:`probpose.data.retarget`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from probpose.data.formats.common import _existing
from probpose.data.mocap import Mocap, read_amc, read_bvh
from probpose.data.poseset import PoseSet, SequenceInfo
from probpose.data.retarget import retarget
from probpose.files import sha256
from probpose.skeleton import SMPLX

__all__ = ["load_amc", "load_bvh", "from_mocap"]


def from_mocap(mocap: Mocap, path: Path, retarget_map: str | Path | None) -> PoseSet:
    """A retargeted :class:`~probpose.data.mocap.Mocap` as a SMPL-X :class:`PoseSet`."""
    result = retarget(mocap, retarget_map)
    notes = list(mocap.notes) + [f"retargeted to SMPL-X with the {result.map.name!r} map (probpose.data.retarget)"]
    if result.undriven:
        notes.append(f"not driven by the source: {', '.join(result.undriven)}")
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
    return from_mocap(read_amc(p, fps=fps), p, retarget_map)


def load_bvh(path: str | Path, fps: float | None = None, retarget_map: str | Path | None = None) -> PoseSet:
    """BVH -> SMPL-X :class:`PoseSet`; the frame rate is the file's ``Frame Time`` unless ``fps``
    is given. ``retarget_map`` as for :func:`load_amc`."""
    p = _existing(path)
    return from_mocap(read_bvh(p, fps=fps), p, retarget_map)
