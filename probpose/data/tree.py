"""Importing a whole AMASS tree into one store: streaming, in parallel, in bounded memory.

Files are read by a pool of worker processes, one file per task, and handed back in the order of
their relative paths (a bounded window of tasks in flight, so neither the result order nor the
memory depends on which worker finishes first). Each file's poses are appended to the split of its
sub-dataset (:func:`probpose.data.amass.amass_split`) in chunks; at the end the poses of val and
test bit-identical to an earlier split's are removed and the store is renamed into place. Memory:
the files in flight (about two per worker) plus 8 bytes per pose for the duplicate check, whatever
the tree's size. The same tree gives a byte-identical store.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from probpose.data.amass import AMASS_SPLIT_RULE, TreeFile, scan_tree
from probpose.data.formats import load_source
from probpose.data.importers import DEFAULT_JOINTS, _check_timing, prepare_poses
from probpose.data.store import StoreWriter
from probpose.errors import DataError, ProbposeError
from probpose.files import atomic_path
from probpose.progress import progress
from probpose.signals import raise_if_interrupted
from probpose.skeleton import get_skeleton

__all__ = ["TreeImport", "import_tree"]


@dataclass
class TreeImport:
    """What :func:`import_tree` wrote: the store, counts per split and per sub-dataset, the files
    skipped (not poses) and the bad ones left out (with ``skip_bad``), and how long it took."""

    path: Path
    files: int
    frames: int
    sizes: dict[str, int]
    datasets: dict[str, dict[str, Any]]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    bad: list[tuple[str, str]] = field(default_factory=list)
    duplicates_dropped: int = 0
    seconds: float = 0.0


def _worker_init() -> None:
    """Workers leave Ctrl-C to the main process (which stops them) and use one thread each."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch

    torch.set_num_threads(1)


def _read(task: tuple[str, str, str, float | None, float, float | None]) -> dict[str, Any]:
    """Read one file in a worker: poses on the target selection, resampled and trimmed."""
    path, skeleton, joints, fps, trim, assume_fps = task
    try:
        ps = prepare_poses(load_source(path, "amass", assume_fps), path, get_skeleton(skeleton), joints, fps, trim)
    except ProbposeError as e:
        return {"ok": False, "reason": str(e)}
    info, src = ps.sequences[0], ps.sources[0]
    return {"ok": True, "poses": ps.poses, "fps": info.fps, "fps_assumed": info.fps_assumed, "source": src}


def _ordered(fn: Callable, tasks: list, workers: int) -> Iterator[Any]:
    """``fn`` over ``tasks`` in order, by ``workers`` processes (0: in this process), with at most
    ``2 * workers`` tasks in flight."""
    if workers <= 0:
        yield from (fn(t) for t in tasks)
        return
    ctx = multiprocessing.get_context("spawn")  # no fork of a process that has started OpenMP threads
    with cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init) as pool:
        pending: list[cf.Future] = []
        it = iter(tasks)
        try:
            for task in it:
                pending.append(pool.submit(fn, task))
                if len(pending) >= 2 * workers:
                    yield pending.pop(0).result()
            while pending:
                yield pending.pop(0).result()
        finally:
            for f in pending:
                f.cancel()


def import_tree(
    root: str | Path,
    out: str | Path,
    skeleton: str = "smplx",
    joints: str | None = None,
    fps: float | None = None,
    trim: float = 0.0,
    assume_fps: float | None = None,
    workers: int | None = None,
    skip_bad: bool = False,
) -> TreeImport:
    """Import every pose file under an AMASS tree ``root`` into the store ``out``, split by
    sub-dataset (the AMASS rule), atomically.

    Args:
        skeleton, joints: target skeleton and selection (default: ``body+hands``). Mixed SMPL+H
            and SMPL-X trees work for any selection both record.
        fps: resample every sequence to this frame rate (slerp between frames; see
            :func:`probpose.data.sequences.resample`); ``None`` keeps each file's own.
        trim: drop this fraction of frames at both ends of every sequence (T- and A-poses).
        assume_fps: the frame rate of files that state none (default 30, noted per file).
        workers: reader processes (default: the CPU count, at most 4; 0: read in this process).
        skip_bad: leave out (and list) unreadable or corrupt files instead of failing on the first.

    Raises :class:`~probpose.errors.DataError` naming a bad file (without ``skip_bad``); an error or
    an interruption leaves no store and no temporary file.
    """
    start = time.perf_counter()
    _check_timing(fps, trim)
    target = get_skeleton(skeleton)
    joints = joints or DEFAULT_JOINTS.get(target.name, "all")
    selected = target.select(joints)
    files, skipped = scan_tree(root, skip_bad)
    workers = min(os.cpu_count() or 1, 4) if workers is None else workers
    tasks = [(str(f.path), skeleton, joints, fps, trim, assume_fps) for f in files]
    datasets: dict[str, dict[str, Any]] = {}
    sources: list[dict[str, Any]] = []
    sequences: list[dict[str, Any]] = []
    bad: list[tuple[str, str]] = []
    bar = progress(len(files), "import", unit="file")
    frames = 0
    try:
        with atomic_path(out) as tmp:
            writer = StoreWriter(tmp, selected)
            try:
                for f, result in zip(files, _ordered(_read, tasks, workers), strict=True):
                    raise_if_interrupted()
                    bar.update(1)
                    if not result["ok"]:
                        if not skip_bad:
                            raise DataError(f.relpath, None, result["reason"])
                        bad.append((f.relpath, result["reason"]))
                        continue
                    poses = result["poses"]
                    n = len(poses)
                    seq = len(sequences)
                    ids = np.full(n, seq, dtype=np.int64)
                    writer.append(f.split, poses, ids, np.arange(n, dtype=np.int64))
                    sequences.append(
                        {
                            "name": f.relpath,
                            "source": f.relpath,
                            "fps": result["fps"],
                            "fps_assumed": result["fps_assumed"],
                            "ordered": True,
                        }
                    )
                    sources.append(
                        {
                            **result["source"],
                            "file": f.relpath,
                            "dataset": f.canonical,
                            "folder": f.dataset,
                            "split": f.split,
                            "frames": n,
                        }
                    )
                    _count(datasets, f, n, result["fps"])
                    frames += n
                    rate = frames / max(time.perf_counter() - start, 1e-9)
                    bar.note(frames=f"{frames:,}", rate=f"{rate:,.0f} frames/s")
                if not sources:
                    raise DataError(str(root), None, "no file could be read")
                dropped = writer.drop_cross_split_duplicates()
                sizes = {name: writer.size(name) for name in ("train", "val", "test")}
                rule = {**AMASS_SPLIT_RULE, "fps": fps, "trim": trim, "skeleton": skeleton, "joints": joints}
                stats = {
                    "cross_split_duplicates_dropped": dropped,
                    "files": len(sources),
                    "bad_files": len(bad),
                    "skipped_files": len(skipped),
                    "empty_splits": [k for k, v in sizes.items() if v == 0],
                }
                writer.close(sources=sources, sequences=sequences, split_rule=rule, split_stats=stats)
            finally:
                if writer.file.id.valid:
                    writer.file.close()
    finally:
        bar.close()
    return TreeImport(
        Path(out),
        len(sources),
        sum(sizes.values()),
        sizes,
        datasets,
        skipped,
        bad,
        dropped,
        time.perf_counter() - start,
    )


def _count(datasets: dict[str, dict[str, Any]], f: TreeFile, n: int, fps: float) -> None:
    d = datasets.setdefault(f.canonical, {"split": f.split, "files": 0, "frames": 0, "seconds": 0.0})
    d["files"] += 1
    d["frames"] += n
    d["seconds"] += n / fps if fps else 0.0
