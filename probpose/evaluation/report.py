"""Scoring a trained model on data it has not seen: stores (a split or all) and raw pose files.

:func:`evaluate_store` and :func:`evaluate_files` give an :class:`EvaluationReport`: the metrics of
:func:`~probpose.evaluation.evaluate` (NLL in nats/pose, BPD, NLL vs Haar, N, D), the joints, the
per-joint NLL for priors that factorise over joints, and the worst-scored poses. Data with
constant joints are scored, not refused; data that do not record the model's joints are an error
naming them. Stores are read chunk by chunk, so memory does not grow with their size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from probpose.data import SPLIT_NAMES, StoreSplit, import_poses, read_info
from probpose.errors import DataError
from probpose.evaluation.metrics import Evaluation, score
from probpose.models import PoseModel
from probpose.models.chunks import pose_chunks

__all__ = ["EvaluationReport", "evaluate_poses", "evaluate_store", "evaluate_files"]


@dataclass
class EvaluationReport:
    """One model on one data set. ``worst``: ``(index, NLL)`` of the worst-scored poses (indices
    into the data as read: the split, or the files' frames in order)."""

    model: str
    data: str
    evaluation: Evaluation
    joints: list[str]
    per_joint_nll: dict[str, float] | None = None
    worst: list[tuple[int, float]] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["evaluation"] = self.evaluation.to_dict()
        return d


class _Columns:
    """A chunk source restricted to some joints (by index)."""

    def __init__(self, source, columns: list[int] | None) -> None:
        self.source, self.columns = source, columns

    def chunks(self, rows: int):
        for c in pose_chunks(self.source, rows):
            yield c if self.columns is None else c[:, self.columns]


def evaluate_poses(model: PoseModel, poses, label: str, worst: int = 10, batch_size: int = 8192) -> EvaluationReport:
    """Score ``poses`` ``(N, J, 3)`` in the model's joint order (a tensor, or anything with
    ``chunks(rows)``) and build the report."""
    s = score(model, poses, batch_size, per_joint=True, label=label, show_progress=True)
    n, names = len(s.log_prob), model.modelled_names
    per_joint = None
    if s.joint_log_prob_sum is not None:
        per_joint = {k: -v / n for k, v in zip(names, s.joint_log_prob_sum.tolist(), strict=True)}
    order = torch.argsort(s.log_prob)[:worst]
    return EvaluationReport(
        model=model.registry_name or type(model).__name__,
        data=label,
        evaluation=s.evaluation(),
        joints=names,
        per_joint_nll=per_joint,
        worst=[(int(i), float(-s.log_prob[i])) for i in order],
    )


def _columns_for(model: PoseModel, names: Sequence[str], where: str) -> list[int] | None:
    """Indices of the model's joints among the data's joint ``names`` (None if they are the same)."""
    wanted = list(model.skeleton.joint_names)
    if list(names) == wanted:
        return None
    missing = [j for j in wanted if j not in names]
    if missing:
        shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        raise DataError(where, "joints", f"does not record joints the model needs: {shown}")
    return [list(names).index(j) for j in wanted]


def evaluate_store(model: PoseModel, path: str | Path, split: str = "test", worst: int = 10) -> list[EvaluationReport]:
    """Score a store's ``split`` (``"all"``: each split, then all together), read chunk by chunk.
    The store must record the model's joints (it may hold more)."""
    path = Path(path)
    info = read_info(path)
    columns = _columns_for(model, info.skeleton.joint_names, str(path))
    names = list(SPLIT_NAMES) if split == "all" else [split]
    if split != "all" and split not in SPLIT_NAMES:
        raise DataError(str(path), None, f"unknown split {split!r}; one of {', '.join(SPLIT_NAMES)} or all")
    reports = []
    for name in names:
        if info.sizes[name] == 0:
            if split != "all":
                raise DataError(str(path), name, "the split is empty")
            continue
        reports.append(evaluate_poses(model, _Columns(StoreSplit(path, name), columns), f"{path}:{name}", worst))
    if split == "all" and len(reports) > 1:
        joined = _Joined([_Columns(StoreSplit(path, n), columns) for n in names if info.sizes[n]])
        reports.append(evaluate_poses(model, joined, f"{path}:all", worst))
    return reports


class _Joined:
    def __init__(self, sources: list) -> None:
        self.sources = sources

    def chunks(self, rows: int):
        for s in self.sources:
            yield from s.chunks(rows)


def evaluate_files(
    model: PoseModel, paths: Sequence[str | Path], worst: int = 10, assume_fps: float | None = None
) -> EvaluationReport:
    """Score every frame of raw pose files (any supported format; no split, no guard band), read on
    the model's skeleton and joint selection."""
    skel = model.skeleton
    try:
        poses = import_poses(paths, skeleton=skel.base_name, joints=skel.selection, assume_fps=assume_fps)
    except DataError as e:
        if "does not record" not in e.reason:
            raise
        needed = e.reason.split(": ", 1)[1].split(";")[0]
        raise DataError(e.file, "joints", f"does not record joints the model needs: {needed}") from None
    if poses.skeleton.joint_names != skel.joint_names:  # same names in the same order by construction
        raise DataError(", ".join(map(str, paths)), "joints", "do not match the model's joints")
    label = ", ".join(Path(p).name for p in paths)
    return evaluate_poses(model, torch.from_numpy(poses.poses), label, worst)
