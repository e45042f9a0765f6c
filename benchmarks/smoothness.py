"""Temporal smoothness on held-out CMU trials: MPJPE and jitter with and without the smoothness
factor, against the ground truth's own jitter; the weight ``probpose fit`` uses by default
(``DEFAULT_SMOOTH``) is chosen from this table.

Data: the bundled CMU data's held-out subjects (never trained on), every test trial with at least
``--window`` frames, its first ``--window`` frames (30 fps), posed through the approximate SMPL-X
rest skeleton with one random global rotation and translation per trial; every point observed with
i.i.d. Gaussian noise of 2 cm and of 5 cm (``--noise``); frames of one trial share a ``sequence``
id, so the factor never links two trials. MAP with ``cmu/gaussian_full`` (``--prior``) at each
weight of ``--weights`` (per (mm/frame^2)^2; 0 = every frame alone). MPJPE: all 55 points against the
noise-free truth, mm. Jitter: the mean norm of the points' acceleration ``p(t+1) - 2 p(t) + p(t-1)``
over every three consecutive frames of one trial, mm/frame^2.

    python benchmarks/smoothness.py --threads 2 --out benchmarks/results/smoothness_cmu
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from probpose.bench import Column, machine_description, markdown_table, set_threads, write_results
from probpose.data.bundled import bundled
from probpose.data.importers import import_recording
from probpose.data.splits import split_poses, split_unit
from probpose.fitting import Joints3D, PoseFit, fit_map, make_body
from probpose.fitting.observations import neighbours
from probpose.models import load_model


def jitter_mm(points: torch.Tensor, sequence: torch.Tensor) -> float:
    """Mean acceleration norm (mm/frame^2) of ``points (N, K, 3)`` metres within sequences."""
    acc = 1000 * (points[2:] - 2 * points[1:-1] + points[:-2]).norm(dim=-1)  # (N - 2, K)
    same = neighbours(sequence, len(points))
    return acc[same].mean().item()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prior", default="cmu/gaussian_full")
    ap.add_argument("--space", default="pose")
    ap.add_argument("--window", type=int, default=90, help="frames per trial (30 fps)")
    ap.add_argument("--noise", type=float, nargs="+", default=[0.02, 0.05], help="metres")
    ap.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/smoothness_cmu"))
    args = ap.parse_args()
    threads = set_threads(args.threads)

    poses, _ = import_recording(bundled("cmu"))
    parts = split_poses(poses, "80/10/10", 0, 1.0, 0.1, by=split_unit(poses))  # prepare_data's split
    test = np.asarray(parts.indices["test"])
    rows, trials = [], []
    for s in np.unique(poses.sequence[test]):
        idx = test[poses.sequence[test] == s]
        idx = idx[np.argsort(poses.frame[idx])]
        if len(idx) < args.window or not (np.diff(poses.frame[idx[: args.window]]) == 1).all():
            continue
        rows.append(idx[: args.window])
        trials.append(poses.sequences[s].name)
    index = np.concatenate(rows)
    sequence = torch.repeat_interleave(torch.arange(len(rows)), args.window)
    truth = torch.from_numpy(poses.poses[index]).double()
    n = len(truth)
    g = torch.Generator().manual_seed(0)
    orient = (0.3 * torch.randn(len(rows), 3, generator=g, dtype=torch.float64)).repeat_interleave(args.window, 0)
    transl = torch.randn(len(rows), 3, generator=g, dtype=torch.float64).repeat_interleave(args.window, 0)

    prior = load_model(args.prior)
    body = make_body("smplx", prior.modelled_names)
    pts = body.points(truth, orient, transl)
    truth_jitter = jitter_mm(pts, sequence)
    print(f"{len(rows)} trials x {args.window} frames; ground truth jitter {truth_jitter:.2f} mm/frame^2", flush=True)
    results = []
    for noise in args.noise:
        noisy = pts + noise * torch.randn(pts.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        mask = torch.ones(pts.shape[:2], dtype=torch.bool)
        obs = Joints3D(noisy.float(), mask, sigma=noise, sequence=sequence)
        for w in args.weights:
            fit = PoseFit(prior, body, obs, space=args.space, smooth=w)
            t0 = time.perf_counter()
            res = fit_map(fit, steps=args.steps)
            seconds = time.perf_counter() - t0
            est = body.points(res.pose.double(), res.orient.double(), res.transl.double())
            row = {
                "noise_cm": 100 * noise,
                "smooth": w,
                "mpjpe_mm": 1000 * (est - pts).norm(dim=-1).mean().item(),
                "jitter": jitter_mm(est, sequence),
                "truth_jitter": truth_jitter,
                "observed_jitter": jitter_mm(noisy, sequence),
                "seconds": seconds,
            }
            results.append(row)
            print(
                f"noise {100 * noise:.0f} cm, smooth {w:g}: MPJPE {row['mpjpe_mm']:.2f} mm, "
                f"jitter {row['jitter']:.2f} mm/frame^2, {seconds:.1f} s",
                flush=True,
            )
    cols = [
        Column("noise_cm", "noise (cm)", "{:.0f}"),
        Column("smooth", "smooth", "{:g}"),
        Column("mpjpe_mm", "MPJPE (mm)", "{:.2f}"),
        Column("jitter", "jitter (mm/frame^2)", "{:.2f}"),
        Column("truth_jitter", "truth's jitter", "{:.2f}"),
        Column("observed_jitter", "observations' jitter", "{:.1f}"),
        Column("seconds", "s", "{:.1f}"),
    ]
    intro = (
        f"Held-out CMU subjects: {len(rows)} trials x {args.window} frames at 30 fps ({n:,} frames: "
        f"{', '.join(trials)}), every SMPL-X point observed with Gaussian noise; MAP with {args.prior} "
        f"({args.space} space), {args.steps} iterations, {threads} thread(s). smooth: the weight of the "
        "acceleration factor per (mm/frame^2)^2 (0: each frame alone)."
    )
    table = markdown_table(cols, results)
    write_results(
        args.out,
        "smoothness",
        "Temporal smoothness on held-out CMU trials",
        intro,
        table,
        {"threads": threads, "trials": trials, "window": args.window, "rows": results},
        machine_description(),
    )
    print(table)


if __name__ == "__main__":
    main()
