"""The VAEs' residual covariance (issue 35): the seed's factorised likelihood against one full covariance.

Each hand VAE (``vae``: Gaussian on axis-angle; ``vae_so3``: 6D decoder, tangent Gaussian on SO(3))
is trained with its registry bench settings (the budget of ``probpose bench``) as the seed built it
(``covariance: diagonal``: one spread per dimension or per joint), with one full ``3J x 3J``
covariance of the residual, and as registered now (``vae``: full covariance behind the data's
Gaussian layer; ``vae_so3``: full covariance), against the closed-form ``gaussian_full`` on

- the SYNTHETIC known-density teacher of ``benchmarks/known_density.py`` (``TreeMixtureTeacher``,
  SMPL-X body+hands, D = 153, the same seed and split sizes): test NLL and KL gap to the teacher;
- the REAL bundled right hand (``probpose import --bundled smplx --joints right_hand`` with 0.25 s
  segments, D = 45): test NLL.

VAE NLLs are the importance-weighted bound (K = 1,000): upper bounds.

    python benchmarks/vae_covariance.py --threads 2 --out benchmarks/results/vae_covariance_cpu
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import torch

from probpose.bench import Column, machine_description, markdown_table, set_threads, write_results
from probpose.bench.budgets import bench_budget
from probpose.data import prepare_data
from probpose.evaluation import evaluate
from probpose.evaluation.synthetic import TreeMixtureTeacher
from probpose.models import build_model
from probpose.skeleton import Skeleton, get_skeleton
from probpose.training import Trainer, TrainingConfig

SEED = {"covariance": "diagonal", "gaussian_layer": False, "init_scale": 0.1}
VARIANTS = [
    ("gaussian_full", "closed form", {}),
    ("vae", "seed (diagonal)", SEED),
    ("vae", "full covariance", {**SEED, "covariance": "full"}),
    ("vae", "default: full covariance + Gaussian layer", {}),
    ("vae_so3", "seed (one spread per joint)", {"covariance": "diagonal"}),
    ("vae_so3", "default: full covariance", {}),
]
"""(registry name, label, options over the registry's defaults)."""


def known_density(seed: int) -> tuple[Skeleton, tuple[torch.Tensor, ...], torch.Tensor]:
    """The known-density benchmark's teacher and splits (train 20k, val 2k, test 5k) and the teacher's
    test log-densities ``(5000,)``."""
    skel = get_skeleton("smplx").select("body+hands")
    teacher = TreeMixtureTeacher(skel, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    splits = tuple(teacher.sample(n, g).float() for n in (20000, 2000, 5000))
    return skel, splits, teacher.log_prob(splits[2].double())


def run(data: str, skel: Skeleton, splits: tuple[torch.Tensor, ...], teacher_lp: torch.Tensor | None) -> list[dict]:
    train, val, test = splits
    rows = []
    for name, label, options in VARIANTS:
        model = build_model(name, skel, options or None)
        torch.manual_seed(0)
        t0 = time.perf_counter()
        result = Trainer(model, TrainingConfig(**bench_budget(name))).fit(train, val)
        seconds = time.perf_counter() - t0
        torch.manual_seed(1)
        ev = evaluate(model, test)
        row = {
            "data": data,
            "model": name,
            "variant": label,
            "parameters": model.num_parameters(),
            "test_nll": ev.nll,
            "exact": ev.exact,
            "steps": result.steps,
            "fit_seconds": seconds,
        }
        if teacher_lp is not None:
            row["kl_gap"] = ev.nll + teacher_lp.mean().item()
        rows.append(row)
        print(f"{data:<14} {name:<9} {label:<42} NLL {ev.nll:9.2f} ({result.steps} steps, {seconds:.0f} s)", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/vae_covariance_cpu"))
    args = ap.parse_args()
    threads = set_threads(args.threads)
    skel, splits, teacher_lp = known_density(args.seed)
    entropy = -teacher_lp.mean().item()
    rows = run("known density", skel, splits, teacher_lp)
    with tempfile.TemporaryDirectory() as tmp:
        hand = prepare_data(bundled="smplx", joints="right_hand", segment_seconds=0.25, guard_seconds=0.05, workdir=tmp)
    hand_splits = (hand.train, hand.val, hand.test)
    rows += run("right hand", hand.skeleton, hand_splits, None)
    columns = [
        Column("data", "data"),
        Column("model", "model"),
        Column("variant", "variant"),
        Column("parameters", "params", "{:,}"),
        Column("test_nll", "test NLL", lambda r: f"{r['test_nll']:.2f}" + ("" if r["exact"] else " (bound)")),
        Column("kl_gap", "KL gap", lambda r: f"{r['kl_gap']:.2f}" if "kl_gap" in r else "-"),
        Column("steps", "steps"),
        Column("fit_seconds", "fit s", "{:.0f}"),
    ]
    intro = (
        f"Known density: SYNTHETIC `TreeMixtureTeacher` poses (SMPL-X body+hands, D = {3 * skel.num_joints}, "
        f"train {len(splits[0])}, test {len(splits[2])}, teacher test NLL {entropy:.2f} nats/pose +- "
        f"{teacher_lp.std().item() / math.sqrt(len(teacher_lp)):.2f}); right hand: REAL bundled SMPL-X recordings "
        f"(D = {3 * hand.skeleton.num_joints}, train {len(hand.train)}, test {len(hand.test)}). NLL in nats/pose; "
        f"VAEs: the importance-weighted bound (K = 1,000). Budget: each model's registry bench settings; "
        f"{threads} thread(s)."
    )
    write_results(
        args.out,
        "vae_covariance",
        "The VAEs' residual covariance",
        intro,
        markdown_table(columns, rows),
        {"rows": rows, "teacher_test_nll": entropy, "threads": threads, "seed": args.seed},
        machine_description("cpu"),
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
