"""Make the bundled CMU body data: CMU motion capture retargeted to SMPL-X (probpose.data.retarget),
resampled to 30 fps, its missing degrees of freedom and joints filled (probpose.data.dofs, seed 0):
the global orientation and all 21 body joints, as probpose's poses .npz, one file per source.

    python experiments/bundle_cmu.py --cmu ../shared/data/cmu \\
        --przestr PATH/Przestr/motion-capture/data --acrnn PATH/papagina/Auto_Conditioned_RNN_motion/train_data_bvh \\
        --out-dir probpose/data/bundled/cmu

Sources (probpose/data/bundled/README.md names each file and its sha256 in the written sources):

- ``--cmu``: CMU subjects 01-03 as CMU distributes them (ASF/AMC), the ``cmu`` map.
- ``--przestr``: the BVH conversions in github.com/Przestr/motion-capture (commit c200c31), one
  folder per CMU subject; subjects 01-03 are left out (already bundled from the ASF/AMC originals).
  Most files use the "DAZ-friendly" rig (``daz`` map), subject 16's the ASF's own bone names
  (``cmu`` map).
- ``--acrnn``: github.com/papagina/Auto_Conditioned_RNN_motion (commit fbb7f64),
  ``train_data_bvh/{salsa,indian,martial}``: CMU's salsa (two partners), Indian dance and martial
  arts trials in the DAZ-friendly rig; sequences are named ``salsa_NN``, ``indian_NN`` and
  ``martial_NN``, so each style is one "subject" of the split (the salsa partners stay together).

The DAZ-friendly conversions put the rig's T-pose before the motion and blend out of it in a few
frames: where the first frame is within 15 degrees of rest at every bone the map uses and the next
turns some bone by more than 10 degrees per 1/120 s (no captured limb moves that fast), the leading
frames are dropped up to the first step below that (said in the file's notes).
Deterministic: the same inputs give the same file contents.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from probpose.data import PoseSet, import_poses, read_bvh, save_poses, scan_tree
from probpose.data.formats.motion_capture import from_mocap
from probpose.data.importers import prepare_poses
from probpose.data.retarget import choose_map
from probpose.skeleton import get_skeleton

JOINTS = "global+body"
LICENCE = (
    "CMU Graphics Lab Motion Capture Database (mocap.cs.cmu.edu), free for research and commercial use. "
    "Acknowledgement it asks for: 'The data used in this project was obtained from mocap.cs.cmu.edu. The database "
    "was created with funding from NSF EIA-0196217.' Retargeted to SMPL-X joint rotations by probpose."
)


def _degrees(rot: np.ndarray) -> np.ndarray:
    return np.degrees(np.arccos(np.clip((np.trace(rot, axis1=-2, axis2=-1) - 1) / 2, -1.0, 1.0)))


def _bvh(path: Path, name: str, fps: float) -> PoseSet:
    """One BVH file retargeted, without a leading rest frame, resampled and filled; its sequence named ``name``."""
    mocap = read_bvh(path)
    m = choose_map(mocap)
    used = [mocap.bones.index(b) for chain in m.joints.values() for b in chain if b in mocap.bones]
    rot = mocap.rotations[:, used]
    step = _degrees(np.swapaxes(rot[:-1], -1, -2) @ rot[1:]).max(1) * mocap.fps / 120.0  # per 1/120 s
    if _degrees(rot[0]).max() < 15.0 and len(step) and step[0] > 10.0:  # the T-pose, then a blend out of it
        start = int(np.argmax(step <= 10.0)) + 1 if (step <= 10.0).any() else len(mocap)
        mocap = dataclasses.replace(
            mocap,
            rotations=mocap.rotations[start:],
            root_position=mocap.root_position[start:],
            notes=[
                *mocap.notes,
                f"first {start} frames dropped: the conversion's T-pose and its blend into the motion",
            ],
        )
    ps = from_mocap(mocap, path, None)
    ps = dataclasses.replace(
        ps,
        sequences=[dataclasses.replace(ps.sequences[0], name=name)],
        sources=[dict(ps.sources[0], file=name)],
    )
    return prepare_poses(ps, path, get_skeleton("smplx"), JOINTS, fps, 0.0, fill=True, seed=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cmu", type=Path, required=True, help="a folder of CMU subjects (ASF + AMC files)")
    parser.add_argument("--przestr", type=Path, help="Przestr/motion-capture's data/ folder")
    parser.add_argument("--acrnn", type=Path, help="papagina/Auto_Conditioned_RNN_motion's train_data_bvh/ folder")
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--fps", type=float, default=30.0)
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    sets: dict[str, PoseSet] = {}
    files, _ = scan_tree(args.cmu)
    sets["cmu_01-03_body_30fps.npz"] = import_poses([f.path for f in files], joints=JOINTS, fps=args.fps)
    if args.przestr:
        bvhs = sorted(p for p in args.przestr.glob("*/*.bvh") if p.parent.name not in ("01", "02", "03"))
        sets["cmu_05-16_body_30fps.npz"] = PoseSet.concatenate([_bvh(p, p.name, args.fps) for p in bvhs])
    if args.acrnn:
        styles = ("salsa", "indian", "martial")
        bvhs = sorted(p for s in styles for p in (args.acrnn / s).glob("*.bvh"))
        parts = [_bvh(p, f"{p.parent.name}_{p.name}", args.fps) for p in bvhs]
        sets["cmu_dance_martial_body_30fps.npz"] = PoseSet.concatenate(parts)
    for name, poses in sets.items():
        out = args.out_dir / name
        save_poses(out, poses, LICENCE)
        print(
            f"wrote {out}: {len(poses)} poses of {len(poses.sequences)} trials, {poses.num_joints} joints, "
            f"{out.stat().st_size / 1e6:.2f} MB"
        )


if __name__ == "__main__":
    main()
