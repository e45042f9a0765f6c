"""Known-density benchmark: each model's KL gap from a synthetic teacher of exact density.

Poses are SYNTHETIC, drawn from probpose.evaluation.synthetic.TreeMixtureTeacher on a skeleton
(default: SMPL-X body+hands, J = 51, D = 153). A model's test NLL minus the teacher's NLL on the
same test poses is a paired estimate of KL(teacher || model) in nats/pose (>= 0 up to noise).

Two budgets:

- ``--budget bench``: every model with its registry bench settings (the budget ``probpose bench``
  gives it), so the table says who wins at the bench's default budget;
- ``--budget time --fit-seconds 600``: the flows and VAEs train for up to that many seconds (cosine
  schedule over their step budget), validation NLL recorded against training time; writes the
  curve ``known_density_curve.png`` beside the table.

    python benchmarks/known_density.py --budget bench --out benchmarks/results/known_density_bench_cpu
    python benchmarks/known_density.py --budget time --fit-seconds 600 --out benchmarks/results/known_density_cpu
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

from probpose.bench import Column, machine_description, markdown_table, set_threads, write_results
from probpose.bench.budgets import bench_budget
from probpose.evaluation import score
from probpose.evaluation.synthetic import TreeMixtureTeacher
from probpose.files import atomic_path
from probpose.models import MODELS, build_model
from probpose.skeleton import get_skeleton
from probpose.training import Trainer, TrainingConfig


def plot(path: Path, rows: list[dict], title: str) -> None:
    """KL gap against training time, one line per iterative model, closed forms as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for r in rows:
        if len(r["curve"]) > 1:  # a closed form's history is its one validation: a horizontal line
            t, gap = zip(*r["curve"], strict=True)
            ax.plot(t, gap, label=f"{r['model']} ({r['kl_gap']:.1f})", lw=1.6)
        else:
            ax.axhline(r["kl_gap"], ls="--", lw=1, color="0.5")
            ax.text(1, r["kl_gap"] * 1.04, f"{r['model']} ({r['kl_gap']:.1f})", fontsize=7, color="0.3")
    ax.set_xscale("symlog", linthresh=10)
    ax.set_yscale("log")
    ax.set_xlabel("training time (s, this CPU)")
    ax.set_ylabel("KL gap (validation NLL - teacher entropy), nats/pose")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skeleton", default="smplx")
    ap.add_argument("--joints", default="body+hands")
    ap.add_argument("--n-train", type=int, default=20000)
    ap.add_argument("--n-val", type=int, default=2000)
    ap.add_argument("--n-test", type=int, default=5000)
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--budget", choices=["bench", "time"], default="bench")
    ap.add_argument("--fit-seconds", type=float, default=600.0, help="time budget: seconds per iterative model")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/known_density_cpu"))
    args = ap.parse_args()
    threads = set_threads(args.threads)

    skel = get_skeleton(args.skeleton).select(args.joints)
    teacher = TreeMixtureTeacher(skel, seed=args.seed)
    g = torch.Generator().manual_seed(args.seed + 1)
    train, val, test = (teacher.sample(n, g).float() for n in (args.n_train, args.n_val, args.n_test))
    teacher_lp = teacher.log_prob(test.double())
    entropy = -teacher_lp.mean().item()
    val_entropy = -teacher.log_prob(val.double()).mean().item()
    print(
        f"teacher: D = {3 * skel.num_joints}, test NLL (entropy estimate) {entropy:.2f} nats/pose "
        f"+- {teacher_lp.std().item() / math.sqrt(len(test)):.2f}; train {len(train)}, test {len(test)}; "
        f"budget {args.budget}; {threads} thread(s)"
    )
    rows = []
    for name in args.models:
        settings = {**bench_budget(name), "device": args.device}
        if args.budget == "time" and settings.get("fit") != "closed_form":
            steps = max(settings.get("max_steps", 2000), 100_000)
            settings.update(max_steps=steps, max_seconds=args.fit_seconds, schedule="cosine", patience=0)
            settings["eval_every"] = max(settings.get("eval_every", 50), 100)
        model = build_model(name, skel)
        t0 = time.perf_counter()
        result = Trainer(model, TrainingConfig(**settings)).fit(train, val)
        seconds = time.perf_counter() - t0
        scores = score(model, test)  # once: a VAE's K = 1,000 bound is most of its cost here
        ev, gap = scores.evaluation(), teacher_lp - scores.log_prob
        row = {
            "model": name,
            "parameters": model.num_parameters(),
            "test_nll": ev.nll,
            "kl_gap": ev.nll - entropy,
            "kl_gap_se": gap.std().item() / math.sqrt(len(gap)),
            "steps": result.steps,
            "fit_seconds": seconds,
            "exact": ev.exact,
            "curve": [(h["seconds"], h["val_nll"] - val_entropy) for h in result.history if "val_nll" in h],
        }
        rows.append(row)
        print(
            f"{name:<20} test NLL {row['test_nll']:9.2f}  KL gap {row['kl_gap']:8.2f} +- {row['kl_gap_se']:.2f}"
            f"  ({row['steps']} steps, {seconds:.0f} s)",
            flush=True,
        )
    columns = [
        Column("model", "model"),
        Column("parameters", "params", "{:,}"),
        Column("test_nll", "test NLL", lambda r: f"{r['test_nll']:.2f}" + ("" if r["exact"] else " (bound)")),
        Column("kl_gap", "KL gap", lambda r: f"{r['kl_gap']:.2f} +- {r['kl_gap_se']:.2f}"),
        Column("steps", "steps"),
        Column("fit_seconds", "fit s", "{:.0f}"),
    ]
    budget = (
        "each model's registry bench settings (the budget of `probpose bench`)"
        if args.budget == "bench"
        else f"iterative models: up to {args.fit_seconds:g} s each, cosine schedule"
    )
    intro = (
        f"SYNTHETIC poses from `TreeMixtureTeacher` on {skel.name} (D = {3 * skel.num_joints}); "
        f"train {len(train)}, test {len(test)}. Teacher test NLL (entropy estimate): {entropy:.2f} nats/pose. "
        "KL gap = model test NLL - teacher test NLL on the same poses (nats/pose, +- standard error; VAEs: "
        f"IWAE bound). Budget: {budget}; {threads} thread(s)."
    )
    context = {
        "teacher": "TreeMixtureTeacher (SYNTHETIC, exact density)",
        "skeleton": skel.name,
        "dim": 3 * skel.num_joints,
        "n_train": len(train),
        "n_test": len(test),
        "seed": args.seed,
        "teacher_test_nll": entropy,
        "budget": args.budget,
        "threads": threads,
    }
    table = markdown_table(columns, rows)
    write_results(
        args.out,
        "known_density",
        "Known-density benchmark (synthetic teacher)",
        intro,
        table,
        {"rows": rows, **context},
        machine_description(args.device),
    )
    if args.budget == "time":
        plot(
            args.out / "known_density_curve.png",
            rows,
            f"Known-density teacher, D = {3 * skel.num_joints}: KL gap against training time",
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
