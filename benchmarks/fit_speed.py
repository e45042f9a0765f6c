"""Fitting speed at the scale of a recording: N frames of 3D joints fitted by MAP in one call, and
the speed of ``joint_flow``'s push-forward (noise -> pose) and its inverse, the cost of its base
space. The baseline of issue 34 (goal: 1,000 frames with ``cmu/joint_flow`` in base space in 60 s,
with ``cmu/gaussian_full`` in 10 s, on this 2-core CPU).

Frames: the bundled CMU data's held-out subjects, spread evenly, posed through the approximate
SMPL-X rest skeleton with a random global rotation and translation, every point observed with 1 cm
of noise; MAP by ``fit_map`` (its default: an L-BFGS per frame, all frames batched), ``--steps``
iterations at most (in base space, with every point seen, the default runs over the pose with the
base-space objective; the L-BFGS over the noise beside it). MPJPE over all points against the
noise-free truth, mm.

    python benchmarks/fit_speed.py --threads 2 --out benchmarks/results/fit_speed_cpu
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from probpose.bench import Column, machine_description, markdown_table, median_seconds, set_threads, write_results
from probpose.data import prepare_data
from probpose.fitting import Joints3D, PoseFit, fit_map, make_body
from probpose.models import load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--alone", type=int, default=20, help="frames also fitted one at a time (the first ones)")
    ap.add_argument("--priors", nargs="+", default=["cmu/gaussian_full:pose", "cmu/joint_flow:base"])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/fit_speed_cpu"))
    args = ap.parse_args()
    threads = set_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        test = prepare_data(bundled="cmu", workdir=tmp).test
    n = args.frames
    truth = test[torch.linspace(0, len(test) - 1, n).round().long()].double()
    g = torch.Generator().manual_seed(0)
    orient = 0.3 * torch.randn(n, 3, generator=g, dtype=torch.float64)
    transl = torch.randn(n, 3, generator=g, dtype=torch.float64)

    fits = []
    k = args.alone
    for spec in args.priors:
        name, space = spec.split(":")
        prior = load_model(name)
        body = make_body("smplx", prior.modelled_names)
        pts = body.points(truth, orient, transl)
        noisy = pts + 0.01 * torch.randn(pts.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        fit = PoseFit(
            prior, body, Joints3D(noisy.float(), torch.ones(pts.shape[:2], dtype=torch.bool), sigma=0.01), space=space
        )

        def mpjpe_mm(res, frames: slice = slice(None), body=body, pts=pts) -> float:
            pose, root, shift = (v[frames].double() for v in (res.pose, res.orient, res.transl))
            return 1000 * (body.points(pose, root, shift) - pts[frames]).norm(dim=-1).mean().item()

        methods = [("all frames in one batch", {})]
        if space == "base":  # the default runs over the pose here (every point seen); the noise's beside it
            methods.append(("all frames in one batch, L-BFGS over the noise", {"coordinates": "latent"}))
        for method, kwargs in methods:
            t0 = time.perf_counter()
            res = fit_map(fit, steps=args.steps, **kwargs)
            seconds = time.perf_counter() - t0
            row = {
                "prior": name,
                "space": space,
                "method": method,
                "frames": n,
                "seconds": seconds,
                "ms_per_frame": 1000 * seconds / n,
                "iterations": len(res.losses) - 1,
                "mpjpe_mm": mpjpe_mm(res),
                "mpjpe_first_mm": mpjpe_mm(res, slice(0, k)),
            }
            fits.append(row)
            print(f"{name} ({space}, {method}): {seconds:.1f} s, MPJPE {row['mpjpe_mm']:.2f} mm", flush=True)
        # the same fit one frame at a time, on the first k frames
        t0 = time.perf_counter()
        alone = [fit_map(fit.select(slice(i, i + 1)), steps=args.steps) for i in range(k)]
        seconds = time.perf_counter() - t0
        est = torch.cat([body.points(r.pose.double(), r.orient.double(), r.transl.double()) for r in alone])
        err = 1000 * (est - pts[:k]).norm(dim=-1).mean().item()  # the same k frames as the batch's column
        fits.append(
            {
                "prior": name,
                "space": space,
                "method": "one frame at a time",
                "frames": k,
                "seconds": seconds,
                "ms_per_frame": 1000 * seconds / k,
                "iterations": max(len(r.losses) - 1 for r in alone),
                "mpjpe_mm": err,
                "mpjpe_first_mm": err,
            }
        )
        print(f"{name} ({space}, one frame at a time): {1000 * seconds / k:.0f} ms/frame, MPJPE {err:.2f} mm")

    flow = load_model("cmu/joint_flow")()
    (t,) = flow.transforms
    directions = []
    for batch in (1, 32, 1000):
        z = torch.randn(batch, 21, 3, generator=torch.Generator().manual_seed(2))
        x = t(z)

        def forward_backward(z=z) -> None:
            zz = z.clone().requires_grad_(True)
            t(zz).sum().backward()

        with torch.no_grad():
            fwd = median_seconds(lambda z=z: t(z), repeats=7)
            inv = median_seconds(lambda x=x: t.inv(x), repeats=7)
        fb = median_seconds(forward_backward, repeats=7)
        directions.append(
            {"batch": batch, "forward_ms": 1000 * fwd, "inverse_ms": 1000 * inv, "forward_backward_ms": 1000 * fb}
        )
        print(
            f"batch {batch}: forward {1000 * fwd:.1f} ms, inverse {1000 * inv:.1f} ms, "
            f"forward+backward {1000 * fb:.1f} ms",
            flush=True,
        )

    fit_cols = [
        Column("prior", "prior"),
        Column("space", "space"),
        Column("method", "fitted"),
        Column("frames", "frames", "{:,}"),
        Column("seconds", "s", "{:.1f}"),
        Column("ms_per_frame", "ms/frame", "{:.1f}"),
        Column("iterations", "iterations"),
        Column("mpjpe_mm", "MPJPE (mm)", "{:.2f}"),
        Column("mpjpe_first_mm", f"MPJPE, first {k} frames (mm)", "{:.2f}"),
    ]
    dir_cols = [
        Column("batch", "poses"),
        Column("forward_ms", "noise -> pose (ms)", "{:.1f}"),
        Column("inverse_ms", "pose -> noise (ms)", "{:.1f}"),
        Column("forward_backward_ms", "noise -> pose + backward (ms)", "{:.1f}"),
    ]
    intro = (
        f"{n:,} frames of the held-out CMU subjects, every point observed with 1 cm of noise, MAP by fit_map "
        f"(an L-BFGS per frame), at most {args.steps} iterations; {threads} thread(s). Fitted: all frames in one "
        "batch (the default; in base space, with every point seen, its L-BFGS runs over the pose with the "
        "base-space objective), in base space also over the flow's noise (coordinates='latent'), and the "
        f"first {k} frames one frame at a time "
        "(the default; per-frame numbers beside the batch's on the same frames). Then cmu/joint_flow's "
        "push-forward and its inverse, medians of 7."
    )
    table = markdown_table(fit_cols, fits) + "\n\n" + markdown_table(dir_cols, directions)
    write_results(
        args.out,
        "fit_speed",
        "Fitting speed at the scale of a recording",
        intro,
        table,
        {"threads": threads, "fits": fits, "directions": directions},
        machine_description(),
    )
    print(table)


if __name__ == "__main__":
    main()
