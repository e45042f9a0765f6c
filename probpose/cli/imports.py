"""``probpose import``: :class:`~probpose.data.ImportRequest` -> :func:`~probpose.data.run_import`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from probpose.cli.args import Subparsers, flag, request

if TYPE_CHECKING:
    from probpose.data import ImportRun, PoseSet, Split, TreeImport

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    from probpose.data import BUNDLED, FORMATS, ImportRequest
    from probpose.skeleton import SKELETONS

    p = sub.add_parser(
        "import",
        help="import pose files or an AMASS tree into an HDF5 store with a leak-free train/val/test split",
        description="Import pose files (or every pose file under folders, such as an AMASS tree) into one HDF5 "
        "store (poses, split, sources and provenance) and print what was read. With --split amass a tree is streamed: "
        "files read in parallel, whole sub-datasets per split, memory bounded whatever the tree's size.",
    )
    R = ImportRequest
    p.add_argument(
        "sources",
        nargs="*",
        type=Path,
        metavar="SRC",
        help="pose files (.npz, .smpl, .pkl, .amc, .bvh) or folders of them (AMASS, CMU)",
    )
    flag(p, R, "bundled", "also import a data set shipped with probpose", choices=sorted(BUNDLED), action="append")
    p.add_argument("--out", required=True, type=Path, help="HDF5 file to write (replaced only when complete)")
    flag(
        p,
        R,
        "skeleton",
        "target skeleton (default: zebra_legs for PASyn files, smplx otherwise)",
        choices=sorted(SKELETONS),
    )
    flag(p, R, "joints", "joint selection, e.g. body+hands (default), body, legs; + adds, - removes")
    flag(
        p,
        R,
        "split",
        "train/val/test shares, or 'amass': whole AMASS sub-datasets per split (val HumanEva, MPI_HDM05, SFU, "
        "MPI_mosh; test Transitions_mocap, SSM_synced)",
    )
    flag(p, R, "seed", "seed of the split hash and of the motion-capture fill", type=int)
    flag(p, R, "segment_seconds", "length of split segments", type=float)
    flag(p, R, "guard_seconds", "evaluation frames dropped next to another split's segment", type=float)
    flag(p, R, "format", "source format", choices=["auto", *FORMATS])
    flag(p, R, "fps", "resample every sequence to this frame rate (slerp between frames; default: keep)", type=float)
    flag(p, R, "assume_fps", "frame rate of files that state none (default 30, noted per file)", type=float)
    flag(p, R, "trim", "drop this fraction of every sequence at both ends, where T- and A-poses sit", type=float)
    flag(p, R, "workers", "processes reading a tree (default: CPU count, at most 4; 0: no pool)", type=int)
    flag(
        p,
        R,
        "skip_bad",
        "leave out (and list) unreadable or corrupt files instead of failing (folders, trees and listed files)",
        action="store_true",
    )
    flag(
        p,
        R,
        "skip_incomplete",
        "leave out (and list) files lacking the selected joints, instead of failing",
        action="store_true",
    )
    flag(
        p,
        R,
        "split_by",
        "split units: segments of --segment-seconds, whole sequences (trials), or whole subjects in test (a "
        "name's part before its first '_', CMU's SUBJECT_TRIAL) and whole trials in train and val; default: subject "
        "for motion capture (.amc, .bvh), segment otherwise",
        choices=["segment", "sequence", "subject"],
    )
    p.add_argument(
        "--no-fill-dofs",
        dest="fill_dofs",
        action="store_false",
        default=None,
        help="motion capture: keep only what the source records (its body joints, its degrees of freedom) "
        "instead of giving the joints and degrees of freedom its skeleton lacks the documented spread of "
        "probpose.data.dofs",
    )
    flag(
        p,
        R,
        "retarget_map",
        "motion capture (.amc, .bvh): a built-in map to SMPL-X (cmu, cmu_bvh, daz, mixamo, smplx) or a YAML file "
        "(root, joints, rules); default: the built-in map that drives the most joints",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from probpose.data import ImportRequest, run_import

    req = request(ImportRequest, args)
    report(run_import(req), req.segment_seconds)
    return 0


def report(run: ImportRun, segment_seconds: float) -> None:
    """Print what an import read, split and wrote; warnings on standard error."""
    for line in run.skipped[:20]:
        print(line)
    if len(run.skipped) > 20:
        print(f"skipped {len(run.skipped) - 20} more files")
    if run.tree is not None:
        _report_tree(run.tree)
    else:
        _report_poses(run.poses, run.split, segment_seconds)
    if run.static:
        listed = ", ".join(f"{s.name} (moves in {s.moving} of {s.total})" for s in run.static)
        print(
            f"warning: joints that hold one value in most training poses: {listed}. A likelihood fitted to them is "
            f"dominated by the repeated value and fails on data where they move; training refuses exactly constant "
            f"ones. Consider --joints {run.without_static!r}",
            file=sys.stderr,
        )
    print(f"wrote {run.out}")


def _report_poses(poses: PoseSet | None, split: Split | None, segment_seconds: float) -> None:
    assert poses is not None and split is not None  # a share split's import
    print(f"read {len(poses.sources)} file(s):")
    for src, seq in zip(poses.sources, poses.sequences, strict=True):
        rate = "unordered poses" if seq.fps is None else f"{seq.fps:g} fps" + (" (assumed)" if seq.fps_assumed else "")
        print(f"  {src['file']:<44} {src['format']:<10} {src['frames']:>6} frames  {rate}")
        for note in src.get("notes", []):
            print(f"      note: {note}")
    n_seq = sum(s.ordered for s in poses.sequences)
    n_sets = len(poses.sequences) - n_seq
    groups = ", ".join(
        part for part, n in ((f"{n_seq} sequence(s)", n_seq), (f"{n_sets} unordered set(s)", n_sets)) if n
    )
    base, joints = poses.skeleton.base_name, poses.skeleton.selection
    print(
        f"{len(poses)} poses, {groups}; skeleton {base}, joints {joints!r}: "
        f"J = {poses.num_joints}, D = {3 * poses.num_joints}"
    )
    rule = split.rule
    shares = "/".join(f"{100 * f:g}" for f in rule["fractions"])
    seg, guard = rule["segment_seconds"], rule["guard_seconds"]
    unit = rule["unit"] if seg is None else f"{seg:g} s segments, {guard:g} s guard"
    print(f"split {shares} (seed {rule['seed']}, {unit}):")
    for name, idx in split.indices.items():
        print(f"  {name:<5} {len(idx):>6} poses  ({split.stats['units'][name]} units)")
    st = split.stats
    print(
        f"dropped: {st['duplicates_dropped']} duplicate poses, {st['cross_split_duplicates_dropped']} "
        f"cross-split duplicates, {st['guard_frames_dropped']} guard frames"
    )
    if st["empty_splits"]:
        print(
            f"warning: {', '.join(st['empty_splits'])} empty: too few {segment_seconds:g} s segments "
            f"for {shares}; import more data or pass a shorter --segment-seconds",
            file=sys.stderr,
        )
    if st.get("test_subjects_also_in_training"):
        print(
            f"warning: too few subjects for a subject-disjoint test split: test shares subject(s) "
            f"{', '.join(st['test_subjects_also_in_training'])} with training; import more subjects",
            file=sys.stderr,
        )


def _report_tree(result: TreeImport) -> None:
    print(f"{'sub-dataset':<24} {'split':<5} {'files':>7} {'frames':>11} {'hours':>8}")
    for name, d in sorted(result.datasets.items()):
        print(f"{name:<24} {d['split']:<5} {d['files']:>7,} {d['frames']:>11,} {d['seconds'] / 3600:>8.2f}")
    sizes = ", ".join(f"{k} {v:,}" for k, v in result.sizes.items())
    rate = f"{result.frames / result.seconds:,.0f} frames/s" if result.seconds > 0 else ""
    print(
        f"{result.files:,} files, {result.frames:,} poses ({sizes}); {result.duplicates_dropped:,} cross-split "
        f"duplicates dropped; {result.seconds:.1f} s, {rate}"
    )
    if result.bad:
        print(f"left out {len(result.bad)} bad file(s):", file=sys.stderr)
        for rel, reason in result.bad:
            print(f"  {rel}: {reason}", file=sys.stderr)
    for name in ("train", "val", "test"):
        if result.sizes[name] == 0:
            print(f"warning: {name} is empty: the tree holds none of its sub-datasets", file=sys.stderr)
