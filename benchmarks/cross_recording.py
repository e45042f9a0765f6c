"""Out of distribution: every model trained on one real recording, scored on two others.

Train: the bundled SMPL codec avatar (601 frames at 120 fps, a seated avatar), split 90/10 in
0.25 s segments for early stopping. Score: every frame of the A-pose-to-hands-front clip (34 frames)
and of the AIST++ dance clip (127 frames), poses the avatar never takes. Joints: ``body-feet``
(19 joints, D = 57; the avatar records its feet as constant zeros and the AIST++ clip has no hands).
A prior whose log-density explodes away from its training poses scores these at astronomically
high NLL (an affine flow with unbounded couplings did, at 1e12 to 1e18 nats/pose); a usable one
stays within a small factor of a Gaussian's.

    python benchmarks/cross_recording.py --out benchmarks/results/cross_recording_cpu
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from probpose.bench import Column, machine_description, markdown_table, set_threads, write_results
from probpose.bench.budgets import bench_budget
from probpose.data import bundled, import_poses, split_poses
from probpose.evaluation import evaluate
from probpose.models import MODELS, build_model
from probpose.training import Trainer, TrainingConfig

JOINTS = "body-feet"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/cross_recording_cpu"))
    args = ap.parse_args()
    threads = set_threads(args.threads)
    files = {p.name: p for p in bundled("smplx")}
    avatar = import_poses([files["smplcodec_avatar.smpl"]], joints=JOINTS)
    parts = split_poses(avatar, "90/10/0", seed=0, segment_seconds=0.25, guard_seconds=0.05)
    train = torch.from_numpy(avatar.poses[parts.indices["train"]])
    val = torch.from_numpy(avatar.poses[parts.indices["val"]])
    others = {
        "A-pose clip": import_poses([files["smplcodec_apose_to_handsFront_smplx.npz"]], joints=JOINTS),
        "AIST++ dance": import_poses([files["aistpp_style_sample.pkl"]], joints=JOINTS),
    }
    print(
        f"train {len(train)}, val {len(val)} avatar poses; score "
        + ", ".join(f"{k} ({len(v)})" for k, v in others.items())
        + f"; {threads} thread(s)"
    )
    rows = []
    for name in args.models:
        model = build_model(name, avatar.skeleton)
        t0 = time.perf_counter()
        Trainer(model, TrainingConfig(**bench_budget(name))).fit(train, val)
        model.eval()
        row = {"model": name, "fit_seconds": time.perf_counter() - t0, "exact": model.exact_log_prob}
        for label, ps in others.items():
            row[label] = evaluate(model, torch.from_numpy(ps.poses)).nll
        rows.append(row)
        print(f"{name:<20} " + "  ".join(f"{k} {row[k]:14,.1f}" for k in others), flush=True)
    ref = next((r for r in rows if r["model"] == "gaussian_full"), None)
    for r in rows:
        for label in others:
            r[f"{label} / gaussian_full"] = r[label] / ref[label] if ref and ref[label] > 0 else None
    columns = [Column("model", "model")]
    for label in others:
        columns += [
            Column(label, f"NLL {label} (nats/pose)", "{:,.1f}"),
            Column(f"{label} / gaussian_full", "vs gaussian_full", "{:.2f}x"),
        ]
    intro = (
        f"Trained on the bundled avatar recording ({len(train)} train / {len(val)} val poses, 0.25 s segments), "
        f"joints {JOINTS!r} (D = {3 * avatar.num_joints}); scored on every frame of two other real recordings. "
        "NLL in nats/pose (VAEs: IWAE upper bounds); each model's registry bench settings."
    )
    write_results(
        args.out,
        "cross_recording",
        "Cross-recording NLL (out of distribution)",
        intro,
        markdown_table(columns, rows),
        {"rows": rows, "joints": JOINTS, "threads": threads},
        machine_description("cpu"),
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
