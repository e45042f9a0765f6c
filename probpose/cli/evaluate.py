"""``probpose evaluate``: :class:`~probpose.evaluation.EvaluateRequest` ->
:func:`~probpose.evaluation.run_evaluation`."""

from __future__ import annotations

import argparse
from pathlib import Path

from probpose.cli.args import Subparsers, flag, request

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    from probpose.evaluation import EvaluateRequest

    R = EvaluateRequest
    p = sub.add_parser("evaluate", help="score a trained model on stores or raw pose files", description=run.__doc__)
    p.add_argument(
        "--model",
        required=True,
        type=str,  # a shipped prior's name or a file: the request checks it
        help="checkpoint of a trained model, or a shipped prior (cmu/joint_flow, ...)",
    )
    p.add_argument(
        "data",
        nargs="+",
        type=Path,
        metavar="DATA",
        help="HDF5 stores (.h5) or raw pose files (.npz, .smpl, .pkl: every frame)",
    )
    flag(
        p,
        R,
        "split",
        "split of the stores to score (all: each, then together)",
        choices=["train", "val", "test", "all"],
    )
    flag(p, R, "worst", "list this many worst-scored poses", type=int)
    flag(p, R, "assume_fps", "frame rate of raw files that state none (default 30; it only labels frames)", type=float)
    flag(p, R, "out", "folder for evaluation.md and evaluation.json", type=Path)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Score a checkpoint on stores (a split, or all) and on raw pose files (all frames, no split,
    no guard band): NLL in nats/pose (an upper bound for VAEs), BPD, NLL vs Haar, N and D; for
    priors that factorise over joints, the NLL of each joint; the worst-scored poses. Data with
    constant joints are scored; data that lack the model's joints are an error naming them.
    Prints the results and writes evaluation.md and evaluation.json to --out."""
    from probpose.evaluation import EvaluateRequest, run_evaluation
    from probpose.evaluation.job import per_joint_text, worst_text

    req = request(EvaluateRequest, args)
    result = run_evaluation(req)
    model = result.model
    print(f"model {model.registry_name} ({req.model}), joints {model.skeleton.selection!r} (J = {len(model.modelled)})")
    print(result.table)
    for rep in result.reports:
        if rep.per_joint_nll:
            print(f"{rep.data}: NLL per joint (worst first): {per_joint_text(rep)}")
        print(f"{rep.data}: worst poses (index, NLL): {worst_text(rep)}")
    print(f"wrote {result.markdown} and {result.json}")
    for path, rep in result.charts:
        print(f"wrote {path}: per-joint NLL of {rep.data}")
    return 0
