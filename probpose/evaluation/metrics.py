"""Test metrics in the units of DESIGN.md section 2: NLL in nats per pose, bits per dimension,
and the NLL with respect to the normalised Haar measure on SO(3)^J."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from probpose.errors import ProbposeError
from probpose.rotations import log_haar_correction

if TYPE_CHECKING:
    from probpose.models import PoseModel

__all__ = ["EvaluationError", "Evaluation", "evaluate", "haar_offset"]


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


@torch.no_grad()
def evaluate(model: PoseModel, poses: Tensor, batch_size: int = 8192, validation: bool = False) -> Evaluation:
    """Evaluate a :class:`~probpose.models.PoseModel` on poses ``(N, J, 3)`` (radians).

    Any data the model's joints describe is scored, constant joints included (only fitting refuses
    those). ``validation``: use the model's cheaper validation bound (what the trainer monitors),
    not its reported one. A non-finite log-density is an :class:`EvaluationError`."""
    if poses.dim() != 3 or poses.shape[1:] != (model.num_joints, 3):
        raise EvaluationError(f"expected poses (N, {model.num_joints}, 3) for {model.skeleton.name}, "
                              f"got {tuple(poses.shape)}")  # fmt: skip
    if len(poses) == 0:
        raise EvaluationError("no poses to evaluate")
    modelled = list(model.modelled)
    f = model.factory()
    fn = model.validation_log_prob if validation else model.log_prob
    lp = torch.cat([fn(b.to(**f)).double().cpu() for b in poses.split(batch_size)])
    if not torch.isfinite(lp).all():
        bad = ~torch.isfinite(lp)
        raise EvaluationError(
            f"log_prob is not finite for {int(bad.sum())} of {len(lp)} poses (first: pose {int(bad.nonzero()[0])})"
        )
    nll = -lp.mean().item()
    dim = 3 * len(modelled)
    nll_haar = nll + haar_offset(poses[:, modelled]).mean().item()
    return Evaluation(nll, nll / (dim * math.log(2)), nll_haar, dim, int(poses.shape[0]), model.exact_log_prob)
