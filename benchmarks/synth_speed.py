"""Speed of ``probpose synth``: frames per second end to end (animation, rendering, ground truth,
every file written) and for the renderer alone, at 64x64 and 256x256.

The end-to-end row for 64x64 is the PASyn seed's job: 3000 frames of the bundled real zebra leg
poses (goal: at most 60 s on a 2-core CPU; PASyn's Blender step took minutes). Medians of
``--repeats`` runs; the renderer rows time :func:`probpose.synthesis.render` on the same animation.

    python benchmarks/synth_speed.py --out benchmarks/results/synth_speed_cpu
    python benchmarks/synth_speed.py --device cuda --out benchmarks/results/synth_speed_cuda
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from probpose.bench import Column, machine_description, markdown_table, set_threads, write_results
from probpose.data import bundled
from probpose.kinematics import ZEBRA_RIG, Camera, Posed
from probpose.synthesis import SceneOptions, animate, load_leg_poses, render, synthesize


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sizes", default="64:3000,256:600", help="SIZE:FRAMES pairs (square images)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/synth_speed_cpu"))
    args = ap.parse_args()
    threads = set_threads(args.threads)
    device = torch.device(args.device)
    legs, source = load_leg_poses(next(p for p in bundled("zebra") if p.name == "train_poses.npz"))
    rows = []
    for spec in args.sizes.split(","):
        size, frames = (int(v) for v in spec.split(":"))
        sub = legs[:frames]
        total = []
        for r in range(args.repeats):
            with tempfile.TemporaryDirectory() as tmp:
                res = synthesize(
                    sub,
                    Path(tmp) / "out",
                    width=size,
                    height=size,
                    seed=r,
                    device=device,
                    source=source,
                    progress=False,
                )
                total.append(res.seconds)
        anim = animate(ZEBRA_RIG, sub, size, size, SceneOptions(), torch.Generator().manual_seed(0))
        posed = Posed(anim.posed.rotations.to(device), anim.posed.positions.to(device))
        cam = Camera(anim.camera.K.to(device), anim.camera.R.to(device), anim.camera.t.to(device), size, size)
        chunk = max(1, (1 << 19) // (size * size))
        only = []
        for _ in range(args.repeats):
            _sync(device)
            t0 = time.perf_counter()
            for s in range(0, frames, chunk):
                sl = slice(s, s + chunk)
                render(
                    ZEBRA_RIG,
                    Posed(posed.rotations[sl], posed.positions[sl]),
                    Camera(cam.K[sl], cam.R[sl], cam.t[sl], size, size),
                )
            _sync(device)
            only.append(time.perf_counter() - t0)
        t_all, t_render = statistics.median(total), statistics.median(only)
        rows.append(
            {
                "size": f"{size}x{size}",
                "frames": frames,
                "end_to_end_s": t_all,
                "end_to_end_fps": frames / t_all,
                "render_s": t_render,
                "render_fps": frames / t_render,
                "all_runs_s": total,
            }
        )
        print(
            f"{size}x{size}: {frames} frames end to end {t_all:.1f} s ({frames / t_all:.0f} frames/s); "
            f"renderer {t_render:.1f} s ({frames / t_render:.0f} frames/s)",
            flush=True,
        )
    columns = [
        Column("size", "image"),
        Column("frames", "frames"),
        Column("end_to_end_s", "end to end s", "{:.1f}"),
        Column("end_to_end_fps", "end to end frames/s", "{:.0f}"),
        Column("render_s", "renderer s", "{:.1f}"),
        Column("render_fps", "renderer frames/s", "{:.0f}"),
    ]
    intro = (
        f"`synthesize` on the bundled real zebra leg poses (PASyn train_poses.npz), defaults (2x2 "
        f"supersampling, stripes, sequences of 300 frames), device {device}, {threads} thread(s); medians "
        f"of {args.repeats} runs. End to end = animation, rendering, visibility, PNG frames and every "
        "ground-truth file written (on the local disk)."
    )
    write_results(
        args.out,
        "synth_speed",
        "probpose synth: frames per second",
        intro,
        markdown_table(columns, rows),
        {"rows": rows, "threads": threads, "device": str(device)},
        machine_description(device),
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
