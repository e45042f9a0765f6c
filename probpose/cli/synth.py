"""``probpose synth``: :class:`~probpose.synthesis.SynthRequest` -> :func:`~probpose.synthesis.run_synth`."""

from __future__ import annotations

import argparse
from pathlib import Path

from probpose.cli.args import Subparsers, flag, request

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    from probpose.synthesis import SynthRequest
    from probpose.synthesis.animation import SceneOptions

    R, S = SynthRequest, SceneOptions
    p = sub.add_parser(
        "synth", help="PASyn synthetic data: animate, render and label the zebra rig", description=run.__doc__
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--poses",
        type=Path,
        help="leg poses: .npy (n, 36) PASyn degrees, (n, 39), or (n, 12, 3) radians (probpose sample), or a PASyn .npz",
    )
    src.add_argument("--model", type=Path, help="a trained zebra leg VAE checkpoint: frames of a smooth latent walk")
    flag(p, R, "n_frames", "frames to make (default: every pose of --poses; 3000 with --model)", type=int)
    flag(p, R, "width", "image width in pixels", type=int)
    flag(p, R, "height", "image height in pixels", type=int)
    p.add_argument("--out", required=True, type=Path, help="output folder (must be absent or empty)")
    flag(p, R, "overwrite", "replace a non-empty --out (only once complete)", action="store_true")
    flag(p, R, "seed", "animation, camera and latent-walk seed", type=int)
    flag(p, R, "texture", "body texture", choices=["stripes", "plain"])
    flag(p, R, "device", "cpu or cuda (rendering and kinematics)")
    flag(p, S, "fps", "frame rate of the animation", type=float)
    flag(p, S, "sequence_frames", "frames per sequence: a new path, camera and motion each", type=int)
    flag(p, S, "fov", "horizontal field of view, degrees", type=float)
    flag(p, R, "step", "--model: latent step per frame in (0, 1)", type=float)
    flag(
        p,
        S,
        "framing",
        "crop: each frame a crop in which the animal's box fills --fill of the frame, as a top-down detector's crops; "
        "scene: the tracking camera's whole view (the animal about half)",
        choices=["crop", "scene"],
    )
    p.add_argument(
        "--fill",
        type=float,
        nargs=2,
        default=None,
        metavar=("MIN", "MAX"),
        help=f"crop framing: range of the larger side of the animal's box over the frame (default {S.fill_min:g} "
        f"{S.fill_max:g})",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """PASyn step 3 without Blender: leg poses (a file, or a leg VAE's smooth latent walk) drive
    the 27-bone zebra rig; the body, neck, head and tail move smoothly; the animal walks and turns
    on the ground; a pinhole camera per sequence films it. Writes RGBA frames, 2D keypoints with
    COCO visibility, PASyn's blender_gt.npy, 3D joints, cameras, poses, a COCO JSON, a BVH, a
    preview and a manifest into --out, which appears only when complete."""
    from probpose.synthesis import SynthRequest, run_synth
    from probpose.synthesis.animation import SceneOptions

    fill = {} if args.fill is None else {"fill_min": args.fill[0], "fill_max": args.fill[1]}
    scene = request(SceneOptions, args, **fill)
    req = request(SynthRequest, args, scene=scene)
    result = run_synth(req)
    vis, n, seconds = result.visibility, result.n_frames, result.seconds
    print(
        f"wrote {result.out}: {n} frames {req.width}x{req.height} in {seconds:.1f} s ({n / seconds:.0f} frames/s); "
        f"keypoints inside the image {100 * result.inside_fraction:.2f}% (visible {vis[2]}, occluded {vis[1]}, "
        f"outside {vis[0]})"
    )
    return 0
