"""One training run from an :class:`ExperimentConfig`: data, model, trainer, test metrics, files."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from probpose.data import (
    bundled,
    import_recording,
    read_info,
    read_split,
    split_poses,
    write_store,
)
from probpose.evaluation.metrics import Evaluation, evaluate
from probpose.models import PoseModel
from probpose.skeleton import Skeleton
from probpose.training.config import DataConfig, ExperimentConfig, config_from_dict, config_to_dict
from probpose.training.registry import build_model
from probpose.training.trainer import Trainer, TrainResult, load_checkpoint

__all__ = ["PreparedData", "prepare_data", "RunSummary", "run_experiment", "load_model"]

log = logging.getLogger(__name__)


@dataclass
class PreparedData:
    """The three splits as float64 tensors ``(N, J, 3)`` and what they are."""

    store: Path
    skeleton: Skeleton
    joints: str
    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor
    notes: list[str]


def prepare_data(cfg: DataConfig, workdir: str | Path) -> PreparedData:
    """Read ``cfg.path``, or import the bundled set into ``workdir/data.h5`` (files that do not
    record ``cfg.joints`` are left out and said in ``notes``)."""
    notes: list[str] = []
    if cfg.path is not None:
        store = Path(cfg.path)
        info = read_info(store)
        if cfg.joints and cfg.joints != info.joints:
            raise ValueError(f"{store}: holds joints {info.joints!r} but data.joints is {cfg.joints!r}")
    else:
        poses, notes = import_recording(bundled(cfg.bundled), joints=cfg.joints or None)
        split = split_poses(poses, cfg.split, cfg.split_seed, cfg.segment_seconds, cfg.guard_seconds)
        store = write_store(Path(workdir) / "data.h5", poses, split)
        info = read_info(store)
    tensors = {k: torch.from_numpy(read_split(store, k)[0]).double() for k in ("train", "val", "test")}
    return PreparedData(store, info.skeleton, info.joints, tensors["train"], tensors["val"], tensors["test"], notes)


@dataclass
class RunSummary:
    run_dir: Path
    model: PoseModel
    train: TrainResult
    test: Evaluation | None
    data: PreparedData


def run_experiment(cfg: ExperimentConfig, resume: bool = False) -> RunSummary:
    """Train ``cfg``'s model on its data; write ``checkpoint.pt``, ``config.yaml`` and
    ``metrics.json`` (and TensorBoard events) to ``<output.dir>/<name>``."""
    run_dir = Path(cfg.output.dir) / cfg.name
    run_dir.mkdir(parents=True, exist_ok=True)
    data = prepare_data(cfg.data, run_dir)
    model = build_model(cfg.model.name, data.skeleton, cfg.model.options)
    as_dict = config_to_dict(cfg)
    trainer = Trainer(model, cfg.training, run_dir, as_dict, cfg.output.tensorboard, cfg.output.checkpoint_every)
    ckpt = run_dir / "checkpoint.pt"
    if resume and not ckpt.is_file():
        raise FileNotFoundError(f"nothing to resume: no {ckpt}")
    result = trainer.fit(data.train, data.val, resume=ckpt if resume else None)
    test = evaluate(trainer.model, data.test) if len(data.test) else None
    (run_dir / "config.yaml").write_text(yaml.safe_dump(as_dict, sort_keys=False))
    metrics = {
        "model": cfg.model.name,
        "joints": data.joints,
        "dim": model.event_dim,
        "steps": result.steps,
        "best_step": result.best_step,
        "stopped": result.stopped,
        "fit_seconds": result.seconds,
        "val": result.val.to_dict() if result.val else None,
        "test": test.to_dict() if test else None,
        "data": str(data.store),
        "notes": data.notes,
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return RunSummary(run_dir, trainer.model, result, test, data)


def load_model(path: str | Path, map_location: str = "cpu") -> PoseModel:
    """Rebuild a trained model from a checkpoint (``weights_only=True``): the best weights."""
    ck = load_checkpoint(path, map_location=map_location)
    cfg = config_from_dict(ck["config"])
    model = build_model(cfg.model.name, Skeleton.from_dict(ck["skeleton"]), cfg.model.options)
    state = ck.get("best_model") or ck["model"]
    model.load_state_dict(state)
    return model.to(dtype=next(iter(state.values())).dtype)
