"""The trainable per-joint Gaussian prior."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from probpose.distributions import PerJointGaussianPrior
from probpose.flows import moments_to_covariance
from probpose.models.base import PriorModel
from probpose.models.chunks import Chunks, as_chunks
from probpose.models.registry import ModelSpec, register
from probpose.options import option, validate
from probpose.parallel import SINGLE, Group
from probpose.skeleton import Skeleton

__all__ = ["PerJointGaussianOptions", "PerJointGaussianModel"]


@dataclass
class PerJointGaussianOptions:
    """``covariance``: ``full`` (a 3x3 covariance per joint) or ``diag``; ``init_scale``: initial
    standard deviation in radians."""

    covariance: Literal["full", "diag"] = "full"
    init_scale: float = option(0.5, gt=0)

    def __post_init__(self) -> None:
        validate(self)


class PerJointGaussianModel(PriorModel):
    """Builds a :class:`PerJointGaussianPrior` with per-joint mean and Cholesky factor.

    Parameters: ``loc`` ``(J, 3)``; ``log_diag`` ``(J, 3)`` (log of the Cholesky diagonal); for the
    full variant ``offdiag`` ``(J, 3)`` (the strictly lower entries (1,0), (2,0), (2,1)).
    """

    options: PerJointGaussianOptions

    has_closed_form = True

    def __init__(self, skeleton: Skeleton, options: PerJointGaussianOptions | None = None) -> None:
        super().__init__(skeleton)
        self.options = options or PerJointGaussianOptions()
        j = skeleton.num_joints
        self.loc = nn.Parameter(torch.zeros(j, 3))
        self.log_diag = nn.Parameter(torch.full((j, 3), math.log(self.options.init_scale)))
        self.offdiag = nn.Parameter(torch.zeros(j, 3)) if self.options.covariance == "full" else None

    def scale_tril(self) -> Tensor:
        """``(J, 3, 3)`` lower-triangular Cholesky factors."""
        tril = torch.diag_embed(self.log_diag.exp())
        if self.offdiag is not None:
            off = torch.zeros_like(tril)
            off[:, (1, 2, 2), (0, 0, 1)] = self.offdiag
            tril = tril + off
        return tril

    def forward(self, context: Tensor | None = None) -> PerJointGaussianPrior:
        if context is not None:
            raise ValueError("PerJointGaussianModel is not conditional: context must be None")
        return PerJointGaussianPrior(self.loc, self.scale_tril())

    @torch.no_grad()
    def fit_closed_form(
        self, train_poses: Tensor | Chunks, group: Group = SINGLE, val_poses: Tensor | None = None
    ) -> None:
        """Maximum likelihood: per-joint sample mean and covariance (divided by N), from chunked
        sufficient statistics in float64 (poses ``(N, J, 3)`` or a chunk source), summed over
        ``group``'s processes."""
        j = self.num_joints
        f64: dict[str, Any] = {"dtype": torch.float64, "device": self.loc.device}
        n, s1, s2 = 0, torch.zeros(j, 3, **f64), torch.zeros(j, 3, 3, **f64)
        for c in as_chunks(train_poses)():
            x = c.to(**f64)
            if x.dim() != 3 or x.shape[1:] != (j, 3):
                raise ValueError(f"expected (N, {j}, 3) poses, got {tuple(x.shape)}")
            n, s1, s2 = n + len(x), s1 + x.sum(0), s2 + torch.einsum("nja,njb->jab", x, x)
        n, s1, s2 = int(group.total(n)), group.sum(s1), group.sum(s2)
        mean, cov = moments_to_covariance(n, s1, s2)
        if self.offdiag is None:
            self.log_diag.copy_(0.5 * cov.diagonal(dim1=-2, dim2=-1).log())
        else:
            tril = torch.linalg.cholesky(cov)
            self.log_diag.copy_(tril.diagonal(dim1=-2, dim2=-1).log())
            self.offdiag.copy_(tril[:, (1, 2, 2), (0, 0, 1)])
        self.loc.copy_(mean)


register(
    ModelSpec(
        "gaussian",
        PerJointGaussianOptions,
        PerJointGaussianModel,
        "per-joint Gaussian, full 3x3 covariance per joint",
    )
)
register(
    ModelSpec(
        "gaussian_diag",
        PerJointGaussianOptions,
        PerJointGaussianModel,
        "per-joint Gaussian, diagonal covariance",
        fixed={"covariance": "diag"},
    )
)
