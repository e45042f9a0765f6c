"""The field's simplest joint baseline: one full-covariance Gaussian over the whole pose (every
modelled joint's three axis-angle numbers together), fitted in closed form from chunked sufficient
statistics. Its parameterisation, :class:`CholeskyParameters`, is shared with the mixture
(:mod:`probpose.models.mixture`). The per-joint independent Gaussian is
:mod:`probpose.models.per_joint_gaussian`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from probpose.distributions import FullGaussianPrior
from probpose.flows import floored_covariance, moments_to_covariance
from probpose.models.base import PriorModel
from probpose.models.chunks import Chunks, as_chunks
from probpose.models.registry import ModelSpec, register
from probpose.options import option, validate
from probpose.parallel import SINGLE, Group
from probpose.skeleton import Skeleton

__all__ = ["FullGaussianOptions", "FullGaussianModel", "CholeskyParameters"]


class CholeskyParameters(nn.Module):
    """``K`` full covariances over ``D`` dimensions as unconstrained parameters: the log of the
    Cholesky diagonal and the strictly lower triangle."""

    mask: Tensor

    def __init__(self, k: int, d: int, init_scale: float) -> None:
        super().__init__()
        self.log_diag = nn.Parameter(torch.full((k, d), math.log(init_scale)))
        self.lower = nn.Parameter(torch.zeros(k, d, d))
        self.register_buffer("mask", torch.ones(d, d).tril(-1).bool(), persistent=False)

    def scale_tril(self) -> Tensor:
        return torch.diag_embed(self.log_diag.exp()) + torch.where(self.mask, self.lower, 0.0)

    @torch.no_grad()
    def set_covariances(self, covs: Tensor) -> None:
        chol = torch.linalg.cholesky(covs)
        self.log_diag.copy_(chol.diagonal(dim1=-2, dim2=-1).log())
        self.lower.copy_(chol.tril(-1))


@dataclass
class FullGaussianOptions:
    """``min_variance``: eigenvalue floor of the covariance (rad^2) in the closed-form fit;
    ``init_scale``: initial standard deviation (radians) before a fit."""

    min_variance: float = option(1e-6, gt=0)
    init_scale: float = option(0.5, gt=0)

    def __post_init__(self) -> None:
        validate(self)


class FullGaussianModel(PriorModel):
    """A :class:`~probpose.distributions.FullGaussianPrior` over all modelled joints jointly."""

    options: FullGaussianOptions

    has_closed_form = True

    def __init__(self, skeleton: Skeleton, options: FullGaussianOptions | None = None) -> None:
        super().__init__(skeleton)
        self.options = options or FullGaussianOptions()
        d = 3 * skeleton.num_joints
        self.loc = nn.Parameter(torch.zeros(skeleton.num_joints, 3))
        self.cov = CholeskyParameters(1, d, self.options.init_scale)

    def forward(self, context: Tensor | None = None) -> FullGaussianPrior:
        if context is not None:
            raise ValueError("FullGaussianModel is not conditional: context must be None")
        return FullGaussianPrior(self.loc, self.cov.scale_tril()[0])

    @torch.no_grad()
    def fit_closed_form(
        self, train_poses: Tensor | Chunks, group: Group = SINGLE, val_poses: Tensor | None = None
    ) -> None:
        """Maximum likelihood (sample mean, covariance divided by N) with the eigenvalue floor,
        from chunked sufficient statistics in float64, summed over ``group``'s processes."""
        d = 3 * self.num_joints
        f64: dict[str, Any] = {"dtype": torch.float64, "device": self.loc.device}
        n, s1, s2 = 0, torch.zeros(d, **f64), torch.zeros(d, d, **f64)
        for c in as_chunks(train_poses)():
            x = c.to(**f64).flatten(1)
            n, s1, s2 = n + len(x), s1 + x.sum(0), s2 + x.T @ x
        n, s1, s2 = int(group.total(n)), group.sum(s1), group.sum(s2)
        mean, cov = moments_to_covariance(n, s1, s2)
        cov = floored_covariance(cov, self.options.min_variance)
        self.loc.copy_(mean.view(-1, 3))
        self.cov.set_covariances(cov[None])


register(
    ModelSpec(
        "gaussian_full",
        FullGaussianOptions,
        FullGaussianModel,
        "one Gaussian over all modelled joints jointly (full 3J x 3J covariance)",
    )
)
