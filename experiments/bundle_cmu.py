"""Make the bundled CMU body data: every trial of a CMU ASF/AMC folder, retargeted to SMPL-X
(probpose.data.retarget, the 'cmu' map), resampled to 30 fps, the global orientation and the
driven body joints (CMU's clavicles never move, so not the collars), as probpose's poses .npz.

    python experiments/bundle_cmu.py ../shared/data/cmu --out probpose/data/bundled/cmu/cmu_01-03_body_30fps.npz

Deterministic: the same folder gives the same file contents.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from probpose.data import import_poses, save_poses, scan_tree

LICENCE = (
    "CMU Graphics Lab Motion Capture Database (mocap.cs.cmu.edu), free for research and commercial use. "
    "Acknowledgement it asks for: 'The data used in this project was obtained from mocap.cs.cmu.edu. The database "
    "was created with funding from NSF EIA-0196217.' Retargeted to SMPL-X joint rotations by probpose."
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="a folder of CMU subjects (ASF + AMC files)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--fps", type=float, default=30.0)
    args = parser.parse_args()
    files, _ = scan_tree(args.folder)
    poses = import_poses([f.path for f in files], joints="global+body-left_collar-right_collar", fps=args.fps)
    save_poses(args.out, poses, LICENCE)
    print(
        f"wrote {args.out}: {len(poses)} poses of {len(poses.sequences)} trials, {poses.num_joints} joints, "
        f"{args.out.stat().st_size / 1e6:.2f} MB"
    )


if __name__ == "__main__":
    main()
