"""One bench job: data (a store, or bundled data imported into the output folder), every chosen
model fitted on its :mod:`~probpose.bench.budgets` budget and scored on the same test split, the
table written as Markdown and JSON. ``probpose bench`` builds a :class:`BenchRequest` from its flags
and prints the :class:`BenchRun`; Python users call :func:`run_bench` the same way."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from probpose.bench.runner import BenchRow, bench_models, write_bench
from probpose.data import PreparedData, StoreSplit, prepare_data
from probpose.errors import ConfigError, DataError
from probpose.files import check_output_path
from probpose.machine import machine_description, set_threads, threads
from probpose.models import MODELS
from probpose.options import MAX_COUNT, MAX_SEED, check_device, option, validate

__all__ = ["BenchRequest", "BenchRun", "run_bench"]


@dataclass
class BenchRequest:
    """What to bench. Times in seconds.

    Attributes:
        data: an HDF5 store; None imports ``bundled`` into ``out/data.h5``.
        bundled: ``cmu`` (CMU motion capture retargeted to SMPL-X, all 21 body joints; whole subjects in
            the test split, whole trials in train and val) or
            ``smplx`` (the two SMPL-X recordings with hands, split in ``segment_seconds`` segments).
        joints: joints of the bundled data (default: cmu, the body joints CMU drives; smplx,
            ``body+hands-feet``: the bundled avatar records both feet as constant zero).
        models: registry names (default: every registered model, in registry order).
        out: folder for ``bench.md``, ``bench.json``, ``bench_nll_time.png`` and ``models/NAME.pt``.
        batch: poses per throughput measurement.
        fit_seconds: optional wall-clock cap per fit (0: none; fits are step budgets).
        max_steps: cap on every model's step budget (None: the budgets).
        threads: torch threads for the speed columns (None: the CPU cores, at most 8).
        fit_threads: torch threads for fitting and scoring (1: the NLLs do not depend on the
            machine's cores or load; more threads change float rounding, and with it the numbers).
    """

    data: Path | None = None
    bundled: Literal["cmu", "smplx"] = "cmu"
    joints: str | None = None
    models: list[str] = field(default_factory=lambda: list(MODELS))
    device: str = "cpu"
    segment_seconds: float = option(0.25, gt=0)
    guard_seconds: float = option(0.05, ge=0)
    out: Path = Path("bench_results")
    batch: int = option(1024, ge=1, le=MAX_COUNT)
    fit_seconds: float = option(0.0, ge=0)
    max_steps: int | None = option(None, ge=1)
    threads: int | None = option(None, ge=1, le=1024)
    fit_threads: int = option(1, ge=1, le=1024)
    seed: int = option(0, ge=0, le=MAX_SEED)

    def __post_init__(self) -> None:
        self.out, self.data = Path(self.out), None if self.data is None else Path(self.data)
        validate(self)
        unknown = [m for m in self.models if m not in MODELS]
        if unknown or not self.models:
            raise ConfigError(
                f"`models`: {unknown[0] if unknown else 'none'!r} is not a registered model; "
                f"registered: {', '.join(MODELS)}"
            )


@dataclass
class BenchRun:
    """A finished bench: one row per model, the data it ran on, and the files written."""

    rows: list[BenchRow]
    data: PreparedData
    threads: int
    markdown: Path
    json: Path
    models_dir: Path


def run_bench(request: BenchRequest) -> BenchRun:
    """Fit and score every model of ``request`` on the same split; write the table. Outputs are
    checked against the inputs and the device is checked before any data is read or folder made.
    The torch thread count is restored afterwards."""
    r = request
    check_device(r.device)
    with threads(None):  # the setting does not outlive the job
        count = set_threads(r.threads or min(os.cpu_count() or 1, 8))
        return _bench(r, count)


def _bench(r: BenchRequest, count: int) -> BenchRun:
    joints = r.joints or ("body+hands-feet" if r.bundled == "smplx" else None)
    outputs = ["data.h5", "bench.md", "bench.json", "bench_nll_time.png", *(f"models/{m}.pt" for m in r.models)]
    for name in outputs:  # before any work: nothing the bench writes may be one of its inputs
        check_output_path(r.out / name, [r.data] if r.data else [], "bench output")
    data = prepare_data(
        r.data,
        bundled=r.bundled,
        joints=None if r.data else joints,
        segment_seconds=r.segment_seconds,
        guard_seconds=r.guard_seconds,
        workdir=r.out,
    )
    if not len(data.test):
        raise DataError(str(data.store), "test", "the test split is empty")
    overrides: dict = {"seed": r.seed, **({"max_seconds": r.fit_seconds} if r.fit_seconds > 0 else {})}
    if r.max_steps is not None:
        overrides["max_steps"] = r.max_steps
    test = data.test.load() if isinstance(data.test, StoreSplit) else data.test  # timed in memory
    rows = bench_models(
        r.models,
        data.train,
        data.val,
        test,
        data.skeleton,
        r.device,
        r.batch,
        training_overrides=overrides,
        save_dir=r.out / "models",
        fit_threads=r.fit_threads,
    )
    unit = "whole subjects in test, whole trials in train and val"
    if r.bundled == "smplx":
        unit = f"{r.segment_seconds:g} s segments, {r.guard_seconds:g} s guard"
    split = "" if r.data else f" (bundled {r.bundled}) split 80/10/10 in {unit}"
    context = {
        "data": str(data.store) + split,
        "joints": data.joints,
        "batch": r.batch,
        "notes": data.notes,
        "fit_seconds_budget": r.fit_seconds,
        "max_steps": r.max_steps,
        "threads": count,
        "fit_threads": r.fit_threads,
        "seed": r.seed,
        "machine": machine_description(r.device),
    }
    md, js = write_bench(r.out, rows, context)
    return BenchRun(rows, data, count, md, js, r.out / "models")
