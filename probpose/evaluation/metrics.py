"""Test metrics in the units of DESIGN.md section 2: NLL in nats per pose, bits per dimension,
and the NLL with respect to the normalised Haar measure on SO(3)^J."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from probpose.rotations import log_haar_correction

if TYPE_CHECKING:
    from probpose.models import PoseModel

__all__ = ["ConstantDimensionError", "check_not_constant", "Evaluation", "evaluate", "haar_offset"]


class ConstantDimensionError(ValueError):
    """A modelled dimension is (nearly) constant: its density would diverge."""


def check_not_constant(poses: Tensor, joint_names: Sequence[str], tol: float = 1e-6) -> None:
    """Refuse poses ``(N, J, 3)`` in which a joint's axis-angle component has standard deviation
    below ``tol`` radians (for example SMPL-X jaw and eyes, all zero in common data)."""
    if poses.shape[0] < 2:
        raise ConstantDimensionError(f"need at least 2 poses to fit or evaluate, got {poses.shape[0]}")
    std = poses.double().std(0)
    bad = (std < tol).nonzero().tolist()
    if bad:
        listed = ", ".join(f"{joint_names[j]} ({'xyz'[c]})" for j, c in bad[:6])
        more = f" and {len(bad) - 6} more" if len(bad) > 6 else ""
        raise ConstantDimensionError(
            f"(nearly) constant dimension(s) in the data: {listed}{more} (std < {tol:g} rad); a density "
            "fitted to a constant diverges -- leave these joints out of the selection"
        )


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
def evaluate(
    model: PoseModel,
    poses: Tensor,
    batch_size: int = 8192,
    check: bool = True,
    joint_names: Sequence[str] | None = None,
    validation: bool = False,
) -> Evaluation:
    """Evaluate a :class:`~probpose.models.PoseModel` on poses ``(N, J, 3)``.

    Refuses data with a constant dimension (``check``), naming the joint. ``validation``: use the
    model's cheaper validation bound (what the trainer monitors), not its reported one."""
    names = joint_names or model.skeleton.joint_names
    modelled = list(getattr(model, "modelled", range(poses.shape[1])))
    if check:
        check_not_constant(poses[:, modelled], [names[j] for j in modelled])
    param = next(model.parameters(), None)
    device = param.device if param is not None else poses.device
    dtype = param.dtype if param is not None else poses.dtype
    fn = model.validation_log_prob if validation else model.log_prob
    lp = torch.cat([fn(b.to(device, dtype)).double().cpu() for b in poses.split(batch_size)])
    if not torch.isfinite(lp).all():
        raise ValueError(f"log_prob is not finite for {int((~torch.isfinite(lp)).sum())} of {len(lp)} poses")
    nll = -lp.mean().item()
    dim = 3 * len(modelled)
    nll_haar = nll + haar_offset(poses[:, modelled]).mean().item()
    return Evaluation(nll, nll / (dim * math.log(2)), nll_haar, dim, int(poses.shape[0]), model.exact_log_prob)
