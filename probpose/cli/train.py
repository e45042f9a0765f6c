"""``probpose train``: a YAML config (:func:`~probpose.training.load_config`, the typed and checked
:class:`~probpose.training.ExperimentConfig`) -> :func:`~probpose.training.run_experiment`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import TYPE_CHECKING

from probpose.cli.args import Subparsers

if TYPE_CHECKING:
    from probpose.evaluation import Evaluation
    from probpose.parallel import Group
    from probpose.training import ExperimentConfig
    from probpose.training.run import RunSummary

__all__ = ["register", "describe"]


def register(sub: Subparsers) -> None:
    p = sub.add_parser("train", help="fit a model from a YAML config", description=run.__doc__)
    p.add_argument("--config", required=True, help="a shipped config (joint_flow, gmm, ...) or a .yaml path")
    p.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a config key, e.g. training.lr=5e-3 (repeatable; values parsed as YAML)",
    )
    p.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint.pt")
    p.set_defaults(func=run)


def describe(ev: Evaluation) -> str:
    """One line of an evaluation: NLL (nats/pose), BPD, NLL vs Haar, N and D."""
    kind = "" if ev.exact else " (upper bound)"
    return (
        f"NLL {ev.nll:.3f} nats/pose{kind}, BPD {ev.bpd:.4f}, NLL vs Haar {ev.nll_haar:.3f} (N = {ev.n}, D = {ev.dim})"
    )


def run(args: argparse.Namespace) -> int:
    """Fit a model from a YAML config, write checkpoint.pt, config.yaml, metrics.json and
    TensorBoard events to <output.dir>/<name> (a new <name>-2, ... if that already holds a run;
    --resume continues it), and print validation and test metrics."""
    from probpose.cli.main import configure_output
    from probpose.parallel import from_environment, shutdown
    from probpose.training import load_config, run_experiment

    cfg = load_config(args.config, args.override)
    group = from_environment(cfg.training.device)  # torchrun's processes, or this one alone
    if not group.is_main:
        configure_output(False, True)  # process 0 reports
        logging.getLogger().setLevel(logging.ERROR)
    try:
        summary = run_experiment(cfg, resume=args.resume, group=group)
    finally:
        shutdown()
    if group.distributed:
        _report(cfg, summary, group)
        # Every output is written and the process group destroyed, but gloo's worker threads can
        # still abort the interpreter's finalization ("terminate called without an active
        # exception", SIGABRT; the cause discussed in pytorch/pytorch#179291; once in this session's
        # five fresh-clone runs of the torchrun test): torchrun would then report a finished run as
        # failed. Leave without finalization, flushed.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return _report(cfg, summary, group)


def _report(cfg: ExperimentConfig, summary: RunSummary, group: Group) -> int:
    """Process 0 prints what the run did; the others print nothing."""
    from probpose.cli.main import as_flags

    if not group.is_main:
        return 0
    if group.distributed:
        print(f"trained by {group.world_size} processes (global batch {cfg.training.batch_size})")
    for note in summary.notes:
        print(f"note: {as_flags(note, {'--resume'})}")
    r = summary.train
    print(f"model {cfg.model.name} ({summary.model.num_parameters():,} parameters) on {summary.data.store}")
    print(f"fit: {cfg.training.fit}, {r.steps} steps (best at {r.best_step}), {r.seconds:.1f} s, {r.stopped}")
    if r.val is not None:
        print(f"val:  {describe(r.val)}")
    if summary.test is not None:
        print(f"test: {describe(summary.test)}")
    print(f"wrote {summary.run_dir}")
    return 0
