"""Test metrics in the units of docs/architecture.md, "Event space and metrics": NLL in nats per
pose, bits per dimension, and the NLL with respect to the normalised Haar measure on SO(3)^J."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from probpose.errors import ProbposeError
from probpose.models.chunks import pose_chunks
from probpose.progress import Progress
from probpose.rotations import log_haar_correction

if TYPE_CHECKING:
    from probpose.models import PoseModel

__all__ = ["EvaluationError", "Evaluation", "Scores", "score", "evaluate", "haar_offset"]


class EvaluationError(ProbposeError, ValueError):
    """A model's log-density is not finite on some of the data."""


def haar_offset(poses: Tensor) -> Tensor:
    """``sum_j log_haar_correction(x_j)`` per pose ``(N,)``: log p_Haar = log p_aa - this."""
    return log_haar_correction(poses.double()).sum(-1)


@dataclass(frozen=True)
class Evaluation:
    """Metrics of one model on one set of poses.

    ``nll``: mean negative log-density, nats per pose (an upper bound when ``exact`` is False);
    ``bpd`` = nll / (D ln 2); ``nll_haar``: the NLL with respect to normalised Haar (uniform
    rotations score 0); ``dim`` = D = 3J; ``n`` poses."""

    nll: float
    bpd: float
    nll_haar: float
    dim: int
    n: int
    exact: bool

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Scores:
    """Per-pose log-densities ``(N,)`` (float64, nats), the summed Haar offsets, and, where asked
    for and the model factorises over joints, the summed per-joint log-densities ``(J,)``."""

    log_prob: Tensor
    haar_sum: float
    joint_log_prob_sum: Tensor | None
    dim: int
    exact: bool

    def evaluation(self) -> Evaluation:
        n = len(self.log_prob)
        nll = -self.log_prob.mean().item()
        return Evaluation(nll, nll / (self.dim * math.log(2)), nll + self.haar_sum / n, self.dim, n, self.exact)


@torch.no_grad()
def score(
    model: PoseModel,
    poses,
    batch_size: int = 8192,
    validation: bool = False,
    per_joint: bool = False,
    label: str = "data",
    show_progress: bool = False,
) -> Scores:
    """The log-density of every pose ``(N, J, 3)`` (a tensor, or anything with ``chunks(rows)``,
    read chunk by chunk). ``validation``: the model's cheaper validation bound. A non-finite
    log-density is an :class:`EvaluationError` naming ``label`` and the first such pose."""
    modelled = list(model.modelled)
    f = model.factory()
    fn = model.validation_log_prob if validation else model.log_prob
    lps: list[Tensor] = []
    haar, seen = 0.0, 0
    joints: Tensor | None = None
    total = len(poses) if hasattr(poses, "__len__") else None
    bar = Progress(total, f"score {label}", unit="pose", enabled=show_progress)
    for chunk in pose_chunks(poses, batch_size):
        if chunk.dim() != 3 or chunk.shape[1:] != (model.num_joints, 3):
            raise EvaluationError(
                f"{label}: expected poses (N, {model.num_joints}, 3) for {model.skeleton.name}, "
                f"got {tuple(chunk.shape)}"
            )
        x = chunk.to(**f)
        lp = fn(x).double().cpu()
        if not torch.isfinite(lp).all():
            bad = ~torch.isfinite(lp)
            raise EvaluationError(
                f"{label}: log_prob is not finite for {int(bad.sum())} poses "
                f"(first: pose {seen + int(bad.nonzero()[0])})"
            )
        lps.append(lp)
        haar += haar_offset(chunk[:, modelled]).sum().item()
        if per_joint and (terms := model.joint_log_prob(x)) is not None:
            part = terms.double().sum(0).cpu()
            joints = part if joints is None else joints + part
        seen += len(chunk)
        bar.update(len(chunk))
    bar.close()
    if not lps:
        raise EvaluationError(f"{label}: no poses to evaluate")
    return Scores(torch.cat(lps), haar, joints, 3 * len(modelled), model.exact_log_prob)


def evaluate(model: PoseModel, poses, batch_size: int = 8192, validation: bool = False) -> Evaluation:
    """Evaluate a :class:`~probpose.models.PoseModel` on poses ``(N, J, 3)`` (radians): a tensor,
    or a :class:`~probpose.data.StoreSplit` read chunk by chunk.

    Any data the model's joints describe is scored, constant joints included (only fitting refuses
    those). ``validation``: use the model's cheaper validation bound (what the trainer monitors),
    not its reported one. A non-finite log-density is an :class:`EvaluationError`."""
    return score(model, poses, batch_size, validation).evaluation()
