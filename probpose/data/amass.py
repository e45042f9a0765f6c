"""AMASS trees: which files hold poses, the standard split by sub-dataset, resampling and trimming.

An AMASS tree is a folder per sub-dataset (CMU, KIT, BMLmovi, ...), a folder per subject, and the
motions as ``*_poses.npz`` (SMPL+H, 156 columns) or ``*_stageii.npz`` (SMPL-X, 165 columns); shape
files (``shape.npz``, ``*_stagei.npz``) and anything else are listed and skipped.

The split rule (AMASS / VPoser): whole sub-datasets go to one split -- validation: HumanEva,
MPI_HDM05, SFU, MPI_mosh; test: Transitions_mocap, SSM_synced; training: every other -- so no
subject or motion appears in two splits. Folder names are matched case-insensitively, ignoring
punctuation, with the names they are known by (``BMLrub`` / ``BioMotionLab_NTroje``, ``HDM05`` /
``MPI_HDM05``, ``SSM`` / ``SSM_synced``, ...).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from probpose.errors import DataError

__all__ = [
    "AMASS_SPLIT_RULE",
    "canonical_dataset",
    "amass_split",
    "TreeFile",
    "scan_tree",
]

AMASS_SPLIT_RULE = {
    "name": "amass",
    "method": "whole sub-datasets per split (AMASS / VPoser)",
    "val": ["HumanEva", "MPI_HDM05", "SFU", "MPI_mosh"],
    "test": ["Transitions_mocap", "SSM_synced"],
    "train": "every other sub-dataset",
    "matching": "folder names compared lower-case without punctuation, with known aliases",
}

_ALIASES = {
    "humaneva": "HumanEva",
    "mpihdm05": "MPI_HDM05",
    "hdm05": "MPI_HDM05",
    "sfu": "SFU",
    "mpimosh": "MPI_mosh",
    "mosh": "MPI_mosh",
    "transitionsmocap": "Transitions_mocap",
    "transitions": "Transitions_mocap",
    "ssmsynced": "SSM_synced",
    "ssm": "SSM_synced",
    "bmlrub": "BMLrub",
    "biomotionlabntroje": "BMLrub",
    "bmlmovi": "BMLmovi",
    "bmlhandball": "BMLhandball",
    "cmu": "CMU",
    "kit": "KIT",
    "eyesjapandataset": "EyesJapanDataset",
    "ekut": "EKUT",
    "accad": "ACCAD",
    "mpilimits": "MPI_Limits",
    "posepriorlimits": "MPI_Limits",
    "tcdhandmocap": "TCD_handMocap",
    "totalcapture": "TotalCapture",
    "dfaust67": "DFaust_67",
    "dfaust": "DFaust_67",
}
_SPLITS = {name: split for split in ("val", "test") for name in AMASS_SPLIT_RULE[split]}
_POSE_SUFFIXES = ("_poses.npz", "_stageii.npz", ".amc", ".bvh")


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def canonical_dataset(name: str) -> str:
    """The AMASS name of a sub-dataset folder (``"biomotionlab_ntroje"`` -> ``"BMLrub"``); unknown
    names are returned as they are."""
    return _ALIASES.get(_key(name), name)


def amass_split(name: str) -> str:
    """``"train"``, ``"val"`` or ``"test"`` for a sub-dataset folder name, by the AMASS rule."""
    return _SPLITS.get(canonical_dataset(name), "train")


@dataclass(frozen=True)
class TreeFile:
    """A pose file in a tree: its path, the path relative to the root (its name in the store), the
    sub-dataset folder, that folder's AMASS name and its split."""

    path: Path
    relpath: str
    dataset: str
    canonical: str
    split: str


def scan_tree(root: str | Path, skip_bad: bool = False) -> tuple[list[TreeFile], list[tuple[str, str]]]:
    """Every pose file (AMASS ``*_poses.npz``/``*_stageii.npz``, motion capture ``.amc``/``.bvh``)
    under ``root`` (sorted by relative path, so the order does not depend on the
    file system) and every other file with the reason it is skipped. A folder that cannot be read
    is an error (a :class:`DataError` naming it), or, with ``skip_bad``, listed among the skipped.
    Symbolic links to folders are not followed."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(str(root), None, "not a folder")
    files, skipped = [], []
    unreadable: list[tuple[str, str]] = []

    def refused(e: OSError) -> None:
        rel = Path(e.filename).relative_to(root).as_posix() if e.filename else str(root)
        unreadable.append((rel, e.strerror or type(e).__name__))

    found = [Path(top) / name for top, _, names in os.walk(root, onerror=refused) for name in names]
    for rel, why in sorted(unreadable):
        if not skip_bad:
            raise DataError(str(root / rel), None, f"folder cannot be read ({why}); fix it or skip it (`skip_bad`)")
        skipped.append((rel, f"an unreadable folder ({why})"))
    for path in sorted(p for p in found if p.is_file()):
        rel = path.relative_to(root).as_posix()
        name = path.name.lower()
        if name.endswith(_POSE_SUFFIXES):
            parts = Path(rel).parts
            dataset = parts[0] if len(parts) > 1 else root.name
            canonical = canonical_dataset(dataset)
            files.append(TreeFile(path, rel, dataset, canonical, amass_split(dataset)))
        elif name == "shape.npz" or name.endswith("_stagei.npz") or name.endswith("_shape.npz"):
            skipped.append((rel, "shape parameters, not poses"))
        elif name.endswith(".asf"):
            skipped.append((rel, "an ASF skeleton, read with its .amc motions"))
        else:
            skipped.append((rel, "not a pose file (*_poses.npz, *_stageii.npz, .amc or .bvh)"))
    if not files:
        raise DataError(str(root), None, "holds no *_poses.npz, *_stageii.npz, .amc or .bvh files")
    return files, skipped
