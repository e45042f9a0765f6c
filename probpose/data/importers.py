"""Importing pose files for a store: every file read by its format's reader
(:mod:`probpose.data.formats`), moved to one target skeleton and joint selection, resampled and
trimmed, and joined into one :class:`PoseSet`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from probpose.data import dofs
from probpose.data.checks import selection_without
from probpose.data.formats import MAX_FPS, MOCAP_FORMATS, load_source
from probpose.data.formats.common import fps_in_range
from probpose.data.poseset import PoseSet
from probpose.errors import DataError, SelectionError
from probpose.skeleton import Skeleton, get_skeleton

__all__ = ["import_poses", "import_recording", "prepare_poses", "DEFAULT_JOINTS"]

DEFAULT_JOINTS = {"smplx": "body+hands", "smplh": "body+hands", "smpl": "body", "zebra_legs": "legs"}
"""Default joint selection per target skeleton (docs/architecture.md, "Event space and metrics")."""


def prepare_poses(
    ps: PoseSet,
    path: str | Path,
    target: Skeleton,
    joints: str,
    fps: float | None,
    trim: float,
    fill: bool = False,
    seed: int = 0,
) -> PoseSet:
    """One file's poses on the target skeleton and selection, resampled and trimmed; ``fill``:
    SMPL-X poses (retargeted motion capture) with their missing degrees of freedom filled
    (:func:`probpose.data.dofs.fill_dofs`, after resampling, before the selection)."""
    try:
        if not fill:
            ps = ps.to_skeleton(target).select(joints)
        if fps is not None:
            ps = ps.resampled(fps)
        if trim:
            ps = ps.trimmed(trim)
        if fill:
            ps = dofs.fill_dofs(ps, seed).to_skeleton(target).select(joints)
    except DataError as e:
        raise DataError(str(path), None, e.reason) from None
    except SelectionError as e:
        raise DataError(str(path), "joints", str(e)) from None
    except ValueError as e:  # no joints in common with the target skeleton
        raise DataError(str(path), None, str(e)) from None
    return ps


def _check_timing(fps: float | None, trim: float) -> None:
    if fps is not None and not fps_in_range(fps):
        raise DataError("`fps`", None, f"target frame rate must be in (0, {MAX_FPS:g}], got {fps!r}")
    if not (np.isfinite(trim) and 0 <= trim < 0.5):
        raise DataError("`trim`", None, f"must be a fraction in [0, 0.5), got {trim!r}")


def _target(animal: bool, skeleton: str | None) -> Skeleton:
    """The store's skeleton: the one asked for, else the zebra's legs for PASyn sources and SMPL-X."""
    return get_skeleton(skeleton or ("zebra_legs" if animal else "smplx"))


def import_poses(
    paths: Sequence[str | Path],
    skeleton: str | None = None,
    joints: str | None = None,
    format: str = "auto",
    assume_fps: float | None = None,
    fps: float | None = None,
    trim: float = 0.0,
    retarget_map: str | Path | None = None,
    fill_dofs: bool = True,
    seed: int = 0,
) -> PoseSet:
    """Import several files into one :class:`PoseSet` of ``skeleton`` restricted to ``joints``.

    ``skeleton`` defaults to ``zebra_legs`` for PASyn files and ``smplx`` otherwise; ``joints`` to
    :data:`DEFAULT_JOINTS` of that skeleton. ``assume_fps``: the frame rate of files that state
    none (default :data:`DEFAULT_FPS`, noted). ``fps``: resample every time series to this rate;
    ``trim``: drop this fraction of each time series' frames at both ends. A file lacking a selected
    joint is an error (never padded), as is an empty result. Motion capture in another skeleton
    (ASF/AMC, BVH) is retargeted to SMPL-X (``retarget_map``) and defaults to the ``body`` joints;
    with ``fill_dofs`` (the default) the degrees of freedom and joints its skeleton lacks get the
    documented spread of :mod:`probpose.data.dofs` (seeded by ``seed``), else the default is the
    body joints the source drives."""
    if not paths:
        raise DataError("import", None, "no source files given")
    _check_timing(fps, trim)
    out, target, animal, chosen = [], None, None, joints
    for path in paths:  # one file at a time: memory holds the prepared poses, not every raw file
        ps = load_source(path, format, assume_fps, retarget_map)
        mocap = ps.sources[0]["format"] in MOCAP_FORMATS
        is_animal = ps.skeleton.name == "zebra_legs"
        if animal is not None and is_animal != animal and skeleton is None:
            raise DataError(", ".join(map(str, paths)), None, "cannot mix zebra (PASyn) and human sources in one store")
        if target is None:
            animal = is_animal
            target = _target(is_animal, skeleton)
            chosen = joints or DEFAULT_JOINTS.get(target.name, "all")
            if joints is None and mocap and target.name == "smplx":
                # the body: every joint when filled, else those the retarget drives (not CMU's collars)
                body = ps.skeleton.selection_indices("body")
                absent = [] if fill_dofs else [ps.skeleton.joint_names[j] for j in body if not ps.present[j]]
                chosen = selection_without("smplx", "body", absent)
        out.append(prepare_poses(ps, path, target, chosen, fps, trim, fill=fill_dofs and mocap, seed=seed))
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
    fill_dofs: bool = True,
    seed: int = 0,
    skip_incomplete: bool = True,
    skip_bad: bool = False,
) -> tuple[PoseSet, list[str]]:
    """Like :func:`import_poses`, but leaves out files that do not record the selected joints
    (``skip_incomplete``) and, with ``skip_bad``, files that cannot be read or are corrupt (any
    :class:`DataError` of that file).

    Returns the pose set and one line per file left out (say them to the user). At least one file
    must remain."""
    kept, skipped = [], []
    for path in paths:
        try:
            kept.append(
                import_poses([path], skeleton, joints, format, assume_fps, fps, trim, retarget_map, fill_dofs, seed)
            )
        except DataError as e:
            incomplete = "does not record" in e.reason
            if not ((skip_incomplete and incomplete) or (skip_bad and not incomplete)):
                raise
            reason = e.reason.split(";")[0] if incomplete else str(e)
            skipped.append(f"left out {Path(path).name}: {reason}")
    if not kept:
        what = f"records joint selection {joints!r}" if skip_incomplete else "could be read"
        raise DataError(", ".join(map(str, paths)), None, f"no file {what}")
    return PoseSet.concatenate(kept), skipped
