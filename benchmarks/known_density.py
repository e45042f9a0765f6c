"""Known-density benchmark: each model's KL gap from a synthetic teacher of exact density.

Poses are SYNTHETIC, drawn from probpose.evaluation.synthetic.TreeMixtureTeacher on a skeleton
(default: SMPL-X body+hands, J = 51, D = 153). A model's test NLL minus the teacher's NLL on the
same test poses is a paired estimate of KL(teacher || model) in nats/pose (>= 0 up to noise).

    python benchmarks/known_density.py --n-train 20000 --out benchmarks/results/known_density_cpu
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

from probpose.bench import Column, machine_description, markdown_table, set_threads, write_results
from probpose.evaluation import evaluate
from probpose.evaluation.synthetic import TreeMixtureTeacher
from probpose.models import MODELS, build_model, get_model_spec
from probpose.skeleton import get_skeleton
from probpose.training import Trainer, TrainingConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skeleton", default="smplx")
    ap.add_argument("--joints", default="body+hands")
    ap.add_argument("--n-train", type=int, default=20000)
    ap.add_argument("--n-val", type=int, default=2000)
    ap.add_argument("--n-test", type=int, default=5000)
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--max-steps", type=int, default=3000, help="SVI steps for the flows")
    ap.add_argument("--patience", type=int, default=10)
    ap.add_argument("--fit-seconds", type=float, default=240.0, help="wall-clock budget per flow fit")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/known_density_cpu"))
    args = ap.parse_args()
    threads = set_threads(args.threads)

    skel = get_skeleton(args.skeleton).select(args.joints)
    teacher = TreeMixtureTeacher(skel, seed=args.seed)
    g = torch.Generator().manual_seed(args.seed + 1)
    train, val, test = (teacher.sample(n, g) for n in (args.n_train, args.n_val, args.n_test))
    teacher_lp = teacher.log_prob(test)
    entropy = -teacher_lp.mean().item()
    print(f"teacher: D = {3 * skel.num_joints}, test NLL (entropy estimate) {entropy:.2f} nats/pose "
          f"+- {teacher_lp.std().item() / math.sqrt(len(test)):.2f}; train {len(train)}, test {len(test)}; "
          f"{threads} thread(s)")  # fmt: skip
    rows = []
    for name in args.models:
        spec = get_model_spec(name)
        settings = {**spec.bench_training, "device": args.device}
        if settings.get("fit") != "closed_form":
            budget = {"max_steps": args.max_steps, "patience": args.patience, "max_seconds": args.fit_seconds}
            settings.update(eval_every=50, **budget)
        model = build_model(name, skel)
        t0 = time.perf_counter()
        result = Trainer(model, TrainingConfig(**settings)).fit(train, val)
        seconds = time.perf_counter() - t0
        ev = evaluate(model, test)
        with torch.no_grad():
            lp = torch.cat([model.log_prob(b.to(**model.factory())).double().cpu() for b in test.split(2048)])
        gap = teacher_lp - lp
        row = {
            "model": name,
            "parameters": model.num_parameters(),
            "test_nll": ev.nll,
            "kl_gap": ev.nll - entropy,
            "kl_gap_se": gap.std().item() / math.sqrt(len(gap)),
            "steps": result.steps,
            "fit_seconds": seconds,
        }
        rows.append(row)
        print(f"{name:<20} test NLL {row['test_nll']:9.2f}  KL gap {row['kl_gap']:8.2f} +- {row['kl_gap_se']:.2f}"
              f"  ({row['steps']} steps, {seconds:.0f} s)", flush=True)  # fmt: skip
    columns = [
        Column("model", "model"),
        Column("parameters", "params", "{:,}"),
        Column("test_nll", "test NLL", "{:.2f}"),
        Column("kl_gap", "KL gap", lambda r: f"{r['kl_gap']:.2f} +- {r['kl_gap_se']:.2f}"),
        Column("steps", "steps"),
        Column("fit_seconds", "fit s", "{:.0f}"),
    ]
    intro = (
        f"SYNTHETIC poses from `TreeMixtureTeacher` on {skel.name} (D = {3 * skel.num_joints}); "
        f"train {len(train)}, test {len(test)}. Teacher test NLL (entropy estimate): {entropy:.2f} nats/pose. "
        "KL gap = model test NLL - teacher test NLL on the same poses (nats/pose, +- standard error)."
    )
    context = {"teacher": "TreeMixtureTeacher (SYNTHETIC, exact density)", "skeleton": skel.name,
               "dim": 3 * skel.num_joints, "n_train": len(train), "n_test": len(test), "seed": args.seed,
               "teacher_test_nll": entropy, "threads": threads}  # fmt: skip
    table = markdown_table(columns, rows)
    title = "Known-density benchmark (synthetic teacher)"
    write_results(args.out, "known_density", title, intro, table, {"rows": rows, **context},
                  machine_description(args.device))  # fmt: skip
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
