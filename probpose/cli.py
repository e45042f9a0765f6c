"""``probpose <command>``: the command-line interface.

Commands:
    import   read pose files (AMASS .npz, SMPL codec .smpl, AIST++ .pkl, PASyn .npz) into an HDF5 store
    train    fit a model from a YAML config (experiments/configs/NAME.yaml) with --override a.b=c
    bench    fit every registered model on one split and print NLL, BPD, Haar NLL and speed
    sample   draw poses (or, from a VAE, smooth sequences) from a trained model
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from probpose.evaluation import Evaluation

__all__ = ["main"]


def _add_import(sub: argparse._SubParsersAction) -> None:
    from probpose.data import BUNDLED, FORMATS
    from probpose.skeleton import SKELETONS

    p = sub.add_parser(
        "import",
        help="import pose files into an HDF5 store with a leak-free train/val/test split",
        description="Import pose files into one HDF5 store (DESIGN.md section 4) and print what was read.",
    )
    p.add_argument("sources", nargs="*", type=Path, metavar="SRC", help="pose files (.npz, .smpl, .pkl)")
    p.add_argument("--bundled", choices=sorted(BUNDLED), action="append", default=[],
                   help="also import a data set shipped with probpose")  # fmt: skip
    p.add_argument("--out", required=True, type=Path, help="HDF5 file to write")
    p.add_argument("--skeleton", choices=sorted(SKELETONS), default=None,
                   help="target skeleton (default: zebra_legs for PASyn files, smplx otherwise)")  # fmt: skip
    p.add_argument("--joints", default=None,
                   help="joint selection, e.g. body+hands (default), body, hands, legs; '+' combines")  # fmt: skip
    p.add_argument("--split", default="80/10/10", help="train/val/test shares (default 80/10/10)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split hash (default 0)")
    p.add_argument("--segment-seconds", type=float, default=1.0, help="length of split segments (default 1.0)")
    p.add_argument("--guard-seconds", type=float, default=0.1,
                   help="evaluation frames dropped next to another split's segment (default 0.1)")  # fmt: skip
    p.add_argument("--format", choices=["auto", *FORMATS], default="auto", help="source format (default: auto)")
    p.add_argument("--fps", type=float, default=None, help="frame rate for files that do not state one")
    p.add_argument("--skip-incomplete", action="store_true",
                   help="leave out (and list) files lacking the selected joints, instead of failing")  # fmt: skip
    p.set_defaults(func=_cmd_import)


def _cmd_import(args: argparse.Namespace) -> int:
    from probpose.data import bundled, import_poses, import_recording, split_poses, write_store

    sources = [*args.sources, *(p for name in args.bundled for p in bundled(name))]
    if not sources:
        raise ValueError("no source files: give SRC paths or --bundled NAME")
    if args.fps is not None and not args.fps > 0:
        raise ValueError(f"--fps must be positive, got {args.fps}")
    skipped: list[str] = []
    if args.skip_incomplete:
        poses, skipped = import_recording(sources, args.skeleton, args.joints, args.format, args.fps)
    else:
        poses = import_poses(sources, skeleton=args.skeleton, joints=args.joints, format=args.format, fps=args.fps)
    base, joints = poses.skeleton.base_name, poses.skeleton.selection
    split = split_poses(poses, args.split, args.seed, args.segment_seconds, args.guard_seconds)
    out = write_store(args.out, poses, split)

    for line in skipped:
        print(line)
    print(f"read {len(poses.sources)} file(s):")
    for src, seq in zip(poses.sources, poses.sequences, strict=True):
        rate = "unordered poses" if seq.fps is None else f"{seq.fps:g} fps" + (" (assumed)" if seq.fps_assumed else "")
        print(f"  {src['file']:<44} {src['format']:<10} {src['frames']:>6} frames  {rate}")
        for note in src.get("notes", []):
            print(f"      note: {note}")
    n_seq = sum(s.ordered for s in poses.sequences)
    n_sets = len(poses.sequences) - n_seq
    groups = ", ".join(
        part for part, n in ((f"{n_seq} sequence(s)", n_seq), (f"{n_sets} unordered set(s)", n_sets)) if n
    )
    print(
        f"{len(poses)} poses, {groups}; skeleton {base}, joints {joints!r}: "
        f"J = {poses.num_joints}, D = {3 * poses.num_joints}"
    )
    rule = split.rule
    shares = "/".join(f"{100 * f:g}" for f in rule["fractions"])
    seg, guard = rule["segment_seconds"], rule["guard_seconds"]
    print(f"split {shares} (seed {rule['seed']}, {seg:g} s segments, {guard:g} s guard):")
    for name, idx in split.indices.items():
        print(f"  {name:<5} {len(idx):>6} poses  ({split.stats['units'][name]} units)")
    st = split.stats
    print(
        f"dropped: {st['duplicates_dropped']} duplicate poses, {st['cross_split_duplicates_dropped']} "
        f"cross-split duplicates, {st['guard_frames_dropped']} guard frames"
    )
    if st["empty_splits"]:
        print(
            f"warning: {', '.join(st['empty_splits'])} empty: too few {args.segment_seconds:g} s segments for "
            f"{shares}; import more data or pass a shorter --segment-seconds",
            file=sys.stderr,
        )
    print(f"wrote {out}")
    return 0


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="fit a model from a YAML config", description=_cmd_train.__doc__)
    p.add_argument("--config", required=True, help="config name in experiments/configs, or a .yaml path")
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                   help="set a config key, e.g. training.lr=5e-3 (repeatable; values parsed as YAML)")  # fmt: skip
    p.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint.pt")
    p.set_defaults(func=_cmd_train)


def _fmt_eval(ev: Evaluation) -> str:
    kind = "" if ev.exact else " (upper bound)"
    return (
        f"NLL {ev.nll:.3f} nats/pose{kind}, BPD {ev.bpd:.4f}, NLL vs Haar {ev.nll_haar:.3f} (N = {ev.n}, D = {ev.dim})"
    )


def _cmd_train(args: argparse.Namespace) -> int:
    """Fit a model from a YAML config, write checkpoint.pt, config.yaml, metrics.json and
    TensorBoard events to <output.dir>/<name>, and print validation and test metrics."""
    from probpose.training.config import load_config
    from probpose.training.run import run_experiment

    cfg = load_config(args.config, args.override)
    summary = run_experiment(cfg, resume=args.resume)
    for note in summary.data.notes:
        print(f"note: {note}")
    r = summary.train
    print(f"model {cfg.model.name} ({summary.model.num_parameters():,} parameters) on {summary.data.store}")
    print(f"fit: {cfg.training.fit}, {r.steps} steps (best at {r.best_step}), {r.seconds:.1f} s, {r.stopped}")
    if r.val is not None:
        print(f"val:  {_fmt_eval(r.val)}")
    if summary.test is not None:
        print(f"test: {_fmt_eval(summary.test)}")
    print(f"wrote {summary.run_dir}")
    return 0


def _add_bench(sub: argparse._SubParsersAction) -> None:
    from probpose.training.registry import MODELS

    p = sub.add_parser("bench", help="fit and compare every registered model", description=_cmd_bench.__doc__)
    p.add_argument("--data", type=Path, default=None, help="HDF5 store (default: import the bundled SMPL-X data)")
    p.add_argument("--joints", default="body+hands-feet",
                   help="joints for the bundled data (default body+hands-feet: the bundled avatar records both feet as "
                   "constant zero, and a density of a constant dimension diverges)")  # fmt: skip
    p.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS), help="models (default: all)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--segment-seconds", type=float, default=0.25,
                   help="split segment length for the bundled data (default 0.25: with two recordings, 1 s "
                   "segments would make a whole recording the validation set)")  # fmt: skip
    p.add_argument("--guard-seconds", type=float, default=0.05,
                   help="evaluation frames dropped next to another split (default 0.05)")  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("bench_results"), help="folder for bench.md/.json")
    p.add_argument("--batch", type=int, default=1024, help="poses per throughput measurement (default 1024)")
    p.add_argument("--fit-seconds", type=float, default=35.0,
                   help="wall-clock budget per model fit (default 35; 0: none, train to early stopping)")  # fmt: skip
    p.set_defaults(func=_cmd_bench)


def _cmd_bench(args: argparse.Namespace) -> int:
    """Fit every registered model (or --models) on the same training split, evaluate on the same
    test split, time log_prob and sampling, print one table and write it as Markdown and JSON."""
    from probpose.evaluation.bench import bench_models, format_table, machine_description, write_results
    from probpose.training.config import DataConfig
    from probpose.training.run import prepare_data

    if args.batch < 1:
        raise ValueError(f"--batch must be positive, got {args.batch}")
    cfg = DataConfig(
        path=str(args.data) if args.data else None,
        joints=None if args.data else args.joints,
        segment_seconds=args.segment_seconds,
        guard_seconds=args.guard_seconds,
    )
    data = prepare_data(cfg, args.out)
    for note in data.notes:
        print(f"note: {note}")
    if not len(data.test):
        raise ValueError(f"{data.store}: the test split is empty")
    sizes = f"train {len(data.train)}, val {len(data.val)}, test {len(data.test)}"
    print(f"data {data.store}: joints {data.joints!r}, {sizes}")
    budget = {"max_seconds": args.fit_seconds} if args.fit_seconds > 0 else {}
    rows = bench_models(
        args.models, data.train, data.val, data.test, data.skeleton, args.device, args.batch, training_overrides=budget
    )
    print(format_table(rows))
    split = (
        "" if args.data else f" split 80/10/10 in {args.segment_seconds:g} s segments, {args.guard_seconds:g} s guard"
    )
    context = {"data": str(data.store) + split, "joints": data.joints, "batch": args.batch, "notes": data.notes,
               "fit_seconds_budget": args.fit_seconds, "machine": machine_description(args.device)}  # fmt: skip
    md, js = write_results(args.out, rows, context)
    print(f"wrote {md} and {js}")
    return 0


def _add_sample(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="draw poses from a trained model", description=_cmd_sample.__doc__)
    p.add_argument("--model", required=True, type=Path, help="checkpoint.pt of a trained model")
    p.add_argument("--n", type=int, default=3000, help="poses (or frames, with --sequence); default 3000")
    p.add_argument("--out", required=True, type=Path, help="output .npy: (n, J, 3) float32 axis-angle, radians")
    p.add_argument("--sequence", action="store_true", help="VAEs: one smooth sequence through latent space")
    p.add_argument("--mode", choices=["walk", "slerp"], default="walk", help="sequence: latent random walk or slerp")
    p.add_argument("--step", type=float, default=0.05, help="sequence: latent step size (default 0.05)")
    p.add_argument("--pasyn", action="store_true",
                   help="zebra legs: also write OUT_pasyn.npy, (n, 36) Euler degrees, R = Rz Ry Rx")  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_sample)


def _cmd_sample(args: argparse.Namespace) -> int:
    """Draw --n poses from a trained model (VAEs: decoder means; --sequence: frames of a smooth
    latent path) and save them as (n, J, 3) float32 axis-angle in radians, in the model's joint
    order; --pasyn also writes PASyn's (n, 36) layout: per leg joint (x, y, z) Euler angles in
    degrees with R = Rz Ry Rx, the layout PASyn's Blender script reads."""
    import numpy as np
    import torch

    from probpose.rotations import axis_angle_to_matrix, matrix_to_euler
    from probpose.skeleton import ZEBRA_LEGS
    from probpose.training.run import load_model

    if args.n < 1:
        raise ValueError(f"--n must be positive, got {args.n}")
    model = load_model(args.model)
    model.eval()
    gen = torch.Generator().manual_seed(args.seed)
    with torch.random.fork_rng():
        torch.manual_seed(args.seed)
        if args.sequence:
            if not hasattr(model, "sequence"):
                raise ValueError(f"--sequence needs a VAE; {args.model} holds a {type(model).__name__}")
            poses = model.sequence(args.n, step=args.step, mode=args.mode, generator=gen)
        else:
            poses = model.sample(args.n)
    poses = poses.detach().float().cpu()
    names = [model.skeleton.joint_names[j] for j in model.modelled]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    out = args.out if args.out.suffix == ".npy" else args.out.with_suffix(".npy")
    np.save(out, poses.numpy())
    print(f"wrote {out}: {tuple(poses.shape)} axis-angle, radians; joints {', '.join(names)}")
    if args.pasyn:
        if names != list(ZEBRA_LEGS.joint_names):
            raise ValueError(f"--pasyn needs the 12 zebra leg joints in PASyn order; the model has {names}")
        euler = matrix_to_euler(axis_angle_to_matrix(poses.double()), "XYZ", degrees=True)
        pasyn = out.with_name(out.stem + "_pasyn.npy")
        np.save(pasyn, euler.reshape(len(poses), 36).numpy())
        print(f"wrote {pasyn}: ({len(poses)}, 36) Euler angles in degrees, R = Rz Ry Rx (PASyn layout)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from probpose import __version__

    parser = argparse.ArgumentParser(prog="probpose", description="Probabilistic pose priors.")
    parser.add_argument("--version", action="version", version=f"probpose {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_import(sub)
    _add_train(sub)
    _add_bench(sub)
    _add_sample(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``probpose`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return args.func(args)
    except (ValueError, KeyError, FileNotFoundError, RuntimeError) as e:  # DataError, ConfigError: ValueError
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"probpose {args.command}: error: {msg}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
