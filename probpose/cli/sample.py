"""``probpose sample``: :class:`~probpose.models.SampleRequest` -> :func:`~probpose.models.run_sample`."""

from __future__ import annotations

import argparse
from pathlib import Path

from probpose.cli.args import Subparsers, flag, last_output, png_path, request

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    from probpose.models import SampleRequest

    R = SampleRequest
    p = sub.add_parser("sample", help="draw poses from a trained model", description=run.__doc__)
    p.add_argument(
        "--model",
        required=True,
        type=str,  # a shipped prior's name or a file: the request checks it
        help="checkpoint of a trained model, or a shipped prior (cmu/joint_flow, ...)",
    )
    flag(p, R, "n", "poses (or frames, with --sequence)", type=int)
    p.add_argument("--out", required=True, type=Path, help="output .npy: (n, J, 3) float32 axis-angle, radians")
    flag(p, R, "sequence", "VAEs: one smooth sequence through latent space", action="store_true")
    flag(p, R, "mode", "sequence: latent random walk or slerp", choices=["walk", "slerp"])
    flag(p, R, "step", "sequence: latent step size in (0, 1)", type=float)
    flag(
        p, R, "pasyn", "zebra legs: also write OUT_pasyn.npy, (n, 36) Euler degrees, R = Rz Ry Rx", action="store_true"
    )
    p.add_argument(
        "--sheet",
        type=Path,
        default=None,
        help="also draw up to 24 of the poses as stick figures into this .png (front view)",
    )
    flag(p, R, "seed", "seed of the draws", type=int)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Draw --n poses from a trained model (VAEs: decoder means; --sequence: frames of a smooth
    latent path) and save them as (n, J, 3) float32 axis-angle in radians, in the model's joint
    order; --pasyn also writes PASyn's (n, 36) layout: per leg joint (x, y, z) Euler angles in
    degrees with R = Rz Ry Rx, the layout PASyn's Blender script reads."""
    from probpose.models import SampleRequest, run_sample

    req = request(SampleRequest, args)
    sheet = [(png_path(args.sheet, "sheet"), "contact sheet")] if args.sheet is not None else []
    result = run_sample(req, also_writes=sheet)
    poses, names = result.poses, result.model.modelled_names
    print(f"wrote {result.out}: {tuple(poses.shape)} axis-angle, radians; joints {', '.join(names)}")
    if result.pasyn_out is not None:
        print(f"wrote {result.pasyn_out}: ({len(poses)}, 36) Euler angles in degrees, R = Rz Ry Rx (PASyn layout)")
    if args.sheet is not None:
        from probpose.fitting import make_body
        from probpose.fitting.sheets import pose_sheet

        body = make_body(result.model.skeleton.base_name, names)
        title = f"{result.model.registry_name}: samples ({req.model.name})"
        with last_output(args.sheet, [result.out, *([result.pasyn_out] if result.pasyn_out else [])]):
            pose_sheet(body, poses, args.sheet, title=title)
        print(f"wrote {args.sheet}: stick figures of {min(len(poses), 24)} poses")
    return 0
