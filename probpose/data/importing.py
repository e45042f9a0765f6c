"""One import job: pose files, folders of them, bundled data sets or a whole AMASS tree into one
HDF5 store with its split. ``probpose import`` builds an :class:`ImportRequest` from its flags and
prints the :class:`ImportRun` this returns; Python users call :func:`run_import` the same way."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from probpose.data.amass import scan_tree
from probpose.data.bundled import BUNDLED, bundled
from probpose.data.checks import StaticJoint, selection_without, static_joints
from probpose.data.importers import import_poses, import_recording
from probpose.data.poseset import PoseSet
from probpose.data.splits import Split, split_poses, split_unit
from probpose.data.store import read_info, read_sample, write_store
from probpose.data.tree import TreeImport, import_tree
from probpose.errors import ConfigError, DataError
from probpose.files import check_output_path
from probpose.options import MAX_SEED, option, validate

__all__ = ["ImportRequest", "ImportRun", "run_import"]


@dataclass
class ImportRequest:
    """What to import and how to split it. Times in seconds; rates in frames per second.

    Attributes:
        sources: pose files (``.npz``, ``.smpl``, ``.pkl``, ``.amc``, ``.bvh``) or folders of them.
        out: the HDF5 store to write (replaced only when complete).
        bundled: names of data sets shipped with probpose to import as well.
        split: train/val/test shares (``"80/10/10"``) or ``"amass"`` (one AMASS tree, whole
            sub-datasets per split, streamed).
        split_by: ``segment``, ``sequence`` (whole trials) or ``subject`` (whole subjects in test,
            whole trials in train and val); default: subjects for motion capture.
        retarget_map: motion capture: a built-in map name or a YAML file (default: the best match).
        fill_dofs: motion capture: give the joints and degrees of freedom its skeleton lacks the
            documented spread of :mod:`probpose.data.dofs` (seeded by ``seed``); off: only the
            body joints the source drives, as recorded.
        skip_bad: leave out unreadable or corrupt files (listed) instead of failing: trees, folders
            and listed files.
        skip_incomplete: leave out files lacking the selected joints (listed) instead of failing.
    """

    sources: list[Path]
    out: Path
    bundled: list[str] = field(default_factory=list)
    skeleton: str | None = None
    joints: str | None = None
    split: str = "80/10/10"
    seed: int = option(0, ge=0, le=MAX_SEED)
    segment_seconds: float = option(1.0, gt=0)
    guard_seconds: float = option(0.1, ge=0)
    format: str = "auto"
    fps: float | None = option(None, gt=0)
    assume_fps: float | None = option(None, gt=0)
    trim: float = option(0.0, ge=0, lt=0.5)
    workers: int | None = option(None, ge=0)
    skip_bad: bool = False
    skip_incomplete: bool = False
    split_by: Literal["segment", "sequence", "subject"] | None = None
    retarget_map: str | None = None
    fill_dofs: bool = True

    def __post_init__(self) -> None:
        self.sources, self.out = [Path(p) for p in self.sources], Path(self.out)
        validate(self)
        unknown = [b for b in self.bundled if b not in BUNDLED]
        if unknown:
            raise ConfigError(f"`bundled`: {unknown[0]!r} is not a bundled data set; one of {', '.join(BUNDLED)}")
        if self.split == "amass" and (len(self.sources) != 1 or not self.sources[0].is_dir() or self.bundled):
            raise ConfigError("`split` amass imports one AMASS tree folder: give exactly one folder as the source")


@dataclass
class ImportRun:
    """What an import read and wrote.

    Attributes:
        out: the store written.
        poses: the poses read (a share split); None for a streamed AMASS tree.
        split: their split; None for a tree.
        tree: the tree import's summary (sub-datasets, sizes, skipped and bad files); None otherwise.
        skipped: files left out, a line each (``"skipped PATH: reason"``, ``"left out FILE: reason"``).
        static: joints that hold one value in most training poses (a likelihood fitted to them is
            dominated by that value).
        without_static: the joint selection without them, for the user to pass instead.
    """

    out: Path
    poses: PoseSet | None = None
    split: Split | None = None
    tree: TreeImport | None = None
    skipped: list[str] = field(default_factory=list)
    static: list[StaticJoint] = field(default_factory=list)
    without_static: str = ""


def run_import(request: ImportRequest) -> ImportRun:
    """Read every source, split the poses without leaks (whole trials for motion capture, segments
    with a guard band otherwise, or whole AMASS sub-datasets) and write one store; every output path
    is checked against the inputs before any work."""
    r = request
    if r.split == "amass":
        return _import_tree(r, r.sources[0])
    files = [p for p in r.sources if not p.is_dir()]
    skipped: list[str] = []
    for folder in (p for p in r.sources if p.is_dir()):  # a folder with a share split: read it all into memory
        found, left_out = scan_tree(folder, skip_bad=r.skip_bad)
        files += [f.path for f in found]
        skipped += [f"skipped {folder / rel}: {reason}" for rel, reason in left_out]
    sources = [*files, *(p for name in r.bundled for p in bundled(name))]
    if not sources:
        raise DataError("import", None, "no source files: give source paths or `bundled` data set names")
    check_output_path(r.out, sources, "store")
    timing: dict[str, Any] = {
        "assume_fps": r.assume_fps,
        "fps": r.fps,
        "trim": r.trim,
        "retarget_map": r.retarget_map,
        "fill_dofs": r.fill_dofs,
        "seed": r.seed,
    }
    if r.skip_incomplete or r.skip_bad:
        poses, dropped = import_recording(
            sources, r.skeleton, r.joints, r.format, **timing, skip_incomplete=r.skip_incomplete, skip_bad=r.skip_bad
        )
        skipped += dropped
    else:
        poses = import_poses(sources, skeleton=r.skeleton, joints=r.joints, format=r.format, **timing)
    by = r.split_by or split_unit(poses)
    split = split_poses(poses, r.split, r.seed, r.segment_seconds, r.guard_seconds, by=by)
    out = write_store(r.out, poses, split)
    base, joints = poses.skeleton.base_name, poses.skeleton.selection
    static = static_joints(poses.poses[split.indices["train"]], poses.skeleton.joint_names)
    return ImportRun(
        out, poses, split, None, skipped, static, selection_without(base, joints, [s.name for s in static])
    )


def _import_tree(r: ImportRequest, root: Path) -> ImportRun:
    check_output_path(r.out, [], "store")
    if r.out.resolve().is_relative_to(root.resolve()):
        raise DataError(str(r.out), None, "is inside the tree being imported; write the store elsewhere")
    result = import_tree(
        root,
        r.out,
        skeleton=r.skeleton or "smplx",
        joints=r.joints,
        fps=r.fps,
        trim=r.trim,
        assume_fps=r.assume_fps,
        workers=r.workers,
        skip_bad=r.skip_bad,
    )
    run = ImportRun(result.path, tree=result, skipped=[f"skipped {rel}: {reason}" for rel, reason in result.skipped])
    if result.sizes["train"]:
        info = read_info(result.path)
        sample = read_sample(result.path, "train", 100_000)  # evenly spaced: memory stays bounded
        run.static = static_joints(sample, info.skeleton.joint_names)
        run.without_static = selection_without(info.base_skeleton, info.joints, [s.name for s in run.static])
    return run
