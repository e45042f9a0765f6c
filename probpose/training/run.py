"""One training run from an :class:`ExperimentConfig`: data, model, trainer, test metrics, files.

A run never replaces another: ``<output.dir>/<name>`` is used if it is new (or empty); if it
already holds a run, the next free ``<name>-2``, ``<name>-3``, ... is created and the summary says
so. ``resume=True`` continues the run in ``<output.dir>/<name>`` instead.

Under ``torchrun`` (a distributed :class:`~probpose.parallel.Group`) process 0 chooses the run
folder and imports the data; the others use the same folder and store, refuse to go on if their
config or data differ from process 0's, and write nothing.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from probpose.data import PreparedData, prepare_data
from probpose.data.store import fingerprint
from probpose.errors import TrainingError
from probpose.evaluation.metrics import Evaluation, evaluate
from probpose.files import atomic_path, json_text
from probpose.models import PoseModel, build_model
from probpose.parallel import SINGLE, Group
from probpose.training.config import ExperimentConfig, config_to_dict
from probpose.training.trainer import Trainer, TrainResult

__all__ = ["RunSummary", "run_folder", "run_experiment", "CLAIM"]

CLAIM = ".probpose-run"
"""The empty file by which a run claims its folder (created exclusively: two runs started at once
with the same name never share a folder)."""


@dataclass
class RunSummary:
    run_dir: Path
    model: PoseModel
    train: TrainResult
    test: Evaluation | None
    data: PreparedData
    notes: list[str] = field(default_factory=list)


def run_folder(output_dir: str | Path, name: str, resume: bool = False) -> tuple[Path, str | None]:
    """The folder of a run and, when it is not ``output_dir/name``, a note saying why.

    ``resume``: ``output_dir/name`` must hold a checkpoint. Otherwise a new (or empty) folder is
    claimed by creating :data:`CLAIM` in it exclusively (two runs started at once never share one)."""
    base = Path(output_dir) / name
    if resume:
        if not (base / "checkpoint.pt").is_file():
            raise TrainingError(f"nothing to resume: no {base / 'checkpoint.pt'}")
        return base, None
    base.parent.mkdir(parents=True, exist_ok=True)
    for k in range(1, 10_000):
        folder = base if k == 1 else base.with_name(f"{name}-{k}")
        try:
            folder.mkdir()
        except FileExistsError:
            if not folder.is_dir() or any(p.name != CLAIM for p in folder.iterdir()):
                continue
        try:  # the claim: exactly one of several runs started at once gets a folder
            os.close(os.open(folder / CLAIM, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            continue
        return folder, None if k == 1 else _moved(base, folder)
    raise TrainingError(f"no free run folder next to {base}")


def _moved(base: Path, folder: Path) -> str:
    return f"{base} already holds a run; writing {folder} instead (`resume` continues {base})"


def run_experiment(cfg: ExperimentConfig, resume: bool = False, group: Group = SINGLE) -> RunSummary:
    """Train ``cfg``'s model on its data; write ``checkpoint.pt``, ``config.yaml`` and
    ``metrics.json`` (and TensorBoard events) to the run folder (see :func:`run_folder`).

    ``group``: the processes training together (see the module docstring); the summary's ``test``
    is ``None`` in every process but 0."""
    as_dict = config_to_dict(cfg)
    group.check_same("the config", yaml.safe_dump(as_dict, sort_keys=True))
    moved = None
    if group.is_main:
        run_dir, moved = run_folder(cfg.output.dir, cfg.name, resume)
    run_dir = Path(group.broadcast_text(str(run_dir) if group.is_main else None))
    try:
        return _run(cfg, as_dict, run_dir, [moved] if moved else [], resume, group)
    except BaseException:
        if group.is_main and not resume:
            release_run_folder(run_dir)
        raise


def release_run_folder(run_dir: Path) -> None:
    """After a failed run: a folder this run claimed new (or empty) and that holds no checkpoint
    has nothing to resume, so everything in it is this run's and it is removed; later runs then
    take its name again. A folder with a checkpoint is kept (``resume`` continues it)."""
    if (run_dir / "checkpoint.pt").exists() or not (run_dir / CLAIM).exists():
        return
    shutil.rmtree(run_dir, ignore_errors=True)


def _run(
    cfg: ExperimentConfig, as_dict: dict, run_dir: Path, notes: list[str], resume: bool, group: Group
) -> RunSummary:
    d = cfg.data
    options: dict[str, Any] = {"split": d.split, "seed": d.split_seed, "segment_seconds": d.segment_seconds}
    options.update(guard_seconds=d.guard_seconds, workdir=run_dir, streaming=d.streaming)
    data = None
    if group.is_main:
        data = prepare_data(d.path, bundled=d.bundled, joints=d.joints, **options)
    store = Path(group.broadcast_text(str(data.store) if data is not None else None))
    if data is None:  # process 0 has read or imported it
        data = prepare_data(store, joints=None, **options)
    group.check_same("the data", fingerprint(data.store))
    model = build_model(cfg.model.name, data.skeleton, cfg.model.options)
    trainer = Trainer(model, cfg.training, run_dir, as_dict, cfg.output.tensorboard, cfg.output.checkpoint_every, group)
    result = trainer.fit(data.train, data.val, resume=run_dir / "checkpoint.pt" if resume else None)
    if not group.is_main:
        return RunSummary(run_dir, trainer.model, result, None, data, notes)
    test = evaluate(trainer.model, data.test) if len(data.test) else None
    with atomic_path(run_dir / "config.yaml") as tmp:
        tmp.write_text(yaml.safe_dump(as_dict, sort_keys=False))
    metrics = {
        "model": cfg.model.name,
        "joints": data.joints,
        "dim": model.event_dim,
        "steps": result.steps,
        "best_step": result.best_step,
        "stopped": result.stopped,
        "fit_seconds": result.seconds,
        "processes": group.world_size,
        "val": result.val.to_dict() if result.val else None,
        "test": test.to_dict() if test else None,
        "data": str(data.store),
        "notes": data.notes,
    }
    with atomic_path(run_dir / "metrics.json") as tmp:
        tmp.write_text(json_text(metrics))
    return RunSummary(run_dir, trainer.model, result, test, data, notes + data.notes)
