"""``probpose fit``: :class:`~probpose.fitting.FitRequest` -> :func:`~probpose.fitting.run_fit`."""

from __future__ import annotations

import argparse
from pathlib import Path

from probpose.cli.args import Subparsers, flag, last_output, png_path, request

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    from probpose.fitting import FitRequest
    from probpose.fitting.model import DEFAULT_SMOOTH

    R = FitRequest
    p = sub.add_parser("fit", help="fit poses to 3D joints or 2D keypoints with a prior", description=run.__doc__)
    p.add_argument(
        "--observations",
        required=True,
        type=Path,
        help=".npz: joints (N, K, 3) [+ mask], or keypoints (N, K, 2) [+ confidence] + K, R, t",
    )
    p.add_argument(
        "--prior", required=True, help="a trained model's checkpoint, a shipped prior (cmu/joint_flow, ...), or 'none'"
    )
    p.add_argument("--out", required=True, type=Path, help="output .npz (a .md and .json report go beside it)")
    flag(p, R, "skeleton", "with --prior none: smplx, smplh or zebra_legs (default smplx)")
    flag(p, R, "joints", "with --prior none: the fitted joints (default body+hands)")
    flag(
        p,
        R,
        "rest_joints",
        "SMPL family: .npy (J, 3) rest joints, metres (default: approximate proportions)",
        type=Path,
    )
    flag(p, R, "inference", "map, the posterior of --guide, or nuts", choices=["map", "posterior", "nuts"])
    flag(
        p,
        R,
        "guide",
        "posterior: mvn (full covariance per frame, from Laplace, then SVI), laplace (Laplace at the MAP, no SVI), "
        "normal (AutoNormal), lowrank (AutoLowRankMultivariateNormal)",
        choices=["mvn", "laplace", "normal", "lowrank"],
    )
    flag(
        p,
        R,
        "space",
        "flows: pose (the flow's density of the pose) or base (its Gaussian noise; with the shipped flows "
        "neither space wins every task: docs/benchmarks.md, fitting tasks)",
        choices=["pose", "base"],
    )
    flag(p, R, "steps", "MAP: L-BFGS iterations; posterior: SVI steps (laplace: the MAP's iterations)", type=int)
    flag(p, R, "sigma", "observation noise: metres for 3D (default 0.01), pixels for 2D (default 2)", type=float)
    flag(p, R, "nu", "2D: Student-t degrees of freedom", type=float)
    flag(
        p,
        R,
        "smooth",
        "temporal smoothness: weight on the points' accelerations per (mm/frame^2)^2 within a sequence "
        f"(0: independent frames; --smooth alone: {DEFAULT_SMOOTH:g}, measured on held-out CMU trials; default: "
        f"{DEFAULT_SMOOTH:g} when the observations give 'sequence' ids, else 0)",
        type=float,
        nargs="?",
        const=DEFAULT_SMOOTH,
        show_default=False,
    )
    flag(p, R, "samples", "posterior/nuts: pose samples", type=int)
    p.add_argument(
        "--sheet",
        type=Path,
        default=None,
        help="also draw up to 24 frames into this .png: fit, observed and hidden points",
    )
    flag(p, R, "seed", "seed of the fit", type=int)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Fit poses to observations with a prior inside a Pyro model: the pose is a latent drawn from
    the prior (or the latent z of a VAE, or a flow's base variable with --space base), the global
    orientation and translation are latents, and the observations enter through the likelihood
    (Gaussian for 3D joints, Student-t for 2D keypoints through a pinhole camera). --inference map:
    the MAP (the objective of AutoDelta; an L-BFGS per frame); posterior: the --guide (a full
    covariance per frame from the Laplace approximation, refined by SVI; Laplace alone; AutoNormal;
    low rank) started at the MAP, with per-joint posterior std and 90% credible radius in degrees;
    nuts: NUTS (slow: a few frames). Writes the poses (N, J, 3) axis-angle radians, orientations,
    translations, predicted points and per-frame residuals to --out, and a per-frame report beside it."""
    from probpose.fitting import FitRequest, run_fit

    req = request(FitRequest, args)
    sheet = [(png_path(args.sheet, "sheet"), "contact sheet")] if args.sheet is not None else []
    result = run_fit(req, also_writes=sheet)
    if args.sheet is not None:
        from probpose.fitting.sheets import fit_sheet

        title = f"{result.prior_name}: fitted (sticks), observed (dots), hidden (x)"
        with last_output(args.sheet, result.files):
            fit_sheet(result.fit.body, result.result, result.fit.observation, args.sheet, title=title)
    resid, unit = result.summary["residual"], result.summary["residual_unit"]
    print(
        f"wrote {req.out}: {len(resid)} frames, mean residual {sum(resid) / len(resid):.2f} {unit}, "
        f"{result.result.seconds:.1f} s ({result.result.inference}); report {req.out.with_suffix('.md')}"
    )
    if args.sheet is not None:
        print(f"wrote {args.sheet}: the fit of up to 24 frames")
    return 0
