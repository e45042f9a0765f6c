"""Per-joint Gaussian prior over ``(J, 3)`` axis-angle poses."""

from __future__ import annotations

import math

import torch
from pyro.distributions import TorchDistribution, constraints
from torch import Tensor

from probpose.distributions.constraints import pose_space

__all__ = ["JointGaussianPrior"]


class JointGaussianPrior(TorchDistribution):
    """Independent joints, each a full-covariance 3-D Gaussian over its axis-angle vector.

    ``log p(x) = sum_j log N(x_j; loc_j, L_j L_j^T)``, a density in nats with respect to Lebesgue
    measure on R^(3J) (docs/architecture.md, "Event space and metrics").

    Args:
        loc: ``batch_shape + (J, 3)``, radians.
        scale_tril: ``batch_shape + (J, 3, 3)`` lower-triangular Cholesky factors with positive
            diagonals (radians). A diagonal ``scale_tril`` is the diagonal-covariance variant.
        validate_args: check parameters and samples (Pyro's convention: off unless asked).

    ``event_shape == (J, 3)``; ``log_prob(x)`` has shape ``sample_shape + batch_shape``;
    ``rsample`` is reparameterised.
    """

    arg_constraints = {
        "loc": constraints.independent(constraints.real, 2),
        "scale_tril": constraints.independent(constraints.lower_cholesky, 1),
    }
    support = pose_space
    has_rsample = True

    def __init__(self, loc: Tensor, scale_tril: Tensor, validate_args: bool | None = None) -> None:
        if loc.dim() < 2 or loc.shape[-1] != 3:
            raise ValueError(f"loc must have shape (..., J, 3), got {tuple(loc.shape)}")
        if scale_tril.dim() < 3 or scale_tril.shape[-2:] != (3, 3) or scale_tril.shape[-3] != loc.shape[-2]:
            raise ValueError(f"scale_tril must have shape (..., {loc.shape[-2]}, 3, 3), got {tuple(scale_tril.shape)}")
        batch_shape = torch.broadcast_shapes(loc.shape[:-2], scale_tril.shape[:-3])
        self.loc = loc.expand(batch_shape + loc.shape[-2:])
        self.scale_tril = scale_tril.expand(batch_shape + scale_tril.shape[-3:])
        super().__init__(batch_shape, loc.shape[-2:], validate_args=validate_args)

    @property
    def num_joints(self) -> int:
        return self.event_shape[0]

    def expand(
        self, batch_shape: torch.Size | tuple[int, ...], _instance: TorchDistribution | None = None
    ) -> JointGaussianPrior:
        new = self._get_checked_instance(JointGaussianPrior, _instance)
        batch_shape = torch.Size(batch_shape)
        new.loc = self.loc.expand(batch_shape + self.event_shape)
        new.scale_tril = self.scale_tril.expand(batch_shape + self.scale_tril.shape[-3:])
        super(JointGaussianPrior, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def mean(self) -> Tensor:
        return self.loc

    @property
    def covariance_matrix(self) -> Tensor:
        """``batch_shape + (J, 3, 3)``."""
        return self.scale_tril @ self.scale_tril.transpose(-1, -2)

    @property
    def variance(self) -> Tensor:
        return self.covariance_matrix.diagonal(dim1=-2, dim2=-1)

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        shape = self._extended_shape(torch.Size(sample_shape))
        eps = torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)
        return self.loc + (self.scale_tril @ eps.unsqueeze(-1)).squeeze(-1)

    def joint_log_prob(self, value: Tensor) -> Tensor:
        """Per-joint terms ``(..., J, 3) -> (..., J)`` (the joints are independent: they sum to ``log_prob``)."""
        value = value.to(self.loc.dtype)  # the one dtype rule: computed in the prior's dtype
        diff = (value - self.loc).unsqueeze(-1)
        tril = self.scale_tril.expand(diff.shape[:-2] + (3, 3))
        z = torch.linalg.solve_triangular(tril, diff, upper=False).squeeze(-1)
        half_log_det = self.scale_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)
        return -0.5 * (z * z).sum(-1) - half_log_det - 1.5 * math.log(2 * math.pi)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return self.joint_log_prob(value).sum(-1)

    def entropy(self) -> Tensor:
        d = 3 * self.num_joints
        half_log_det = self.scale_tril.diagonal(dim1=-2, dim2=-1).log().sum((-2, -1))
        return 0.5 * d * (1 + math.log(2 * math.pi)) + half_log_det
