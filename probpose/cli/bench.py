"""``probpose bench``: :class:`~probpose.bench.BenchRequest` -> :func:`~probpose.bench.run_bench`."""

from __future__ import annotations

import argparse
from pathlib import Path

from probpose.cli.args import Subparsers, flag, request

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    from probpose.bench import BenchRequest
    from probpose.models import MODELS

    R = BenchRequest
    p = sub.add_parser("bench", help="fit and compare every registered model", description=run.__doc__)
    flag(p, R, "data", "HDF5 store (default: import --bundled data)", type=Path)
    flag(
        p,
        R,
        "bundled",
        "bundled data without --data: cmu (CMU motion capture retargeted to SMPL-X, held-out subjects) or smplx "
        "(the two SMPL-X recordings with hands)",
        choices=["cmu", "smplx"],
    )
    flag(
        p,
        R,
        "joints",
        "joints for the bundled data (default: cmu, the body joints CMU drives; smplx, body+hands-feet: the bundled "
        "avatar records both feet as constant zero)",
    )
    listing = "; ".join(f"{name}: {spec.description}" for name, spec in MODELS.items())
    flag(p, R, "models", f"registered models to fit (default: all) -- {listing}", False, nargs="+", metavar="MODEL")
    flag(p, R, "device", "cpu or cuda")
    flag(
        p,
        R,
        "segment_seconds",
        "--bundled smplx: split segment length (with two recordings, 1 s segments would make a whole recording the "
        "validation set)",
        type=float,
    )
    flag(p, R, "guard_seconds", "evaluation frames dropped next to another split", type=float)
    flag(p, R, "out", "folder for bench.md/.json and models/NAME.pt", type=Path)
    flag(p, R, "batch", "poses per throughput measurement", type=int)
    flag(p, R, "fit_seconds", "optional wall-clock cap per model fit (0: none; fits are step budgets)", type=float)
    flag(p, R, "max_steps", "cap every model's budget of optimisation steps (default: the bench budgets)", type=int)
    flag(p, R, "threads", "torch threads for the speed columns (default: the CPU cores, at most 8)", type=int)
    flag(
        p,
        R,
        "fit_threads",
        "torch threads for fitting and scoring (the NLLs do not depend on the machine's cores or load; more threads "
        "change float rounding, and with it the fitted numbers)",
        type=int,
    )
    flag(p, R, "seed", "training seed", type=int)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Fit every registered model (or --models) on the same training split with its bench budget
    of optimisation steps, evaluate on the same test split, time log_prob and sampling, save each
    fitted model to OUT/models/NAME.pt, print one table and write it as Markdown and JSON."""
    from probpose.bench import BenchRequest, format_table, run_bench

    req = request(BenchRequest, args)
    result = run_bench(req)
    data = result.data
    for note in data.notes:
        print(f"note: {note}")
    sizes = f"train {len(data.train)}, val {len(data.val)}, test {len(data.test)}"
    print(
        f"data {data.store}: joints {data.joints!r}, {sizes}; fits on {req.fit_threads} torch thread(s), "
        f"timings on {result.threads}"
    )
    print(format_table(result.rows))
    print(f"wrote {result.markdown}, {result.json} and {result.models_dir}/")
    return 0
