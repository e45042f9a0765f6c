"""One Gaussian over all modelled joints jointly, over ``(J, 3)`` axis-angle poses."""

from __future__ import annotations

import torch
from pyro.distributions import TorchDistribution, constraints
from torch import Tensor
from torch.distributions import MultivariateNormal

from probpose.distributions.constraints import pose_space

__all__ = ["FullGaussianPrior"]


class FullGaussianPrior(TorchDistribution):
    """``x.flatten() ~ N(loc.flatten(), L L^T)``: a Gaussian on R^(3J), every joint correlated with
    every other (the per-joint :class:`~probpose.distributions.JointGaussianPrior` is its
    block-diagonal special case). Built on ``torch.distributions.MultivariateNormal``.

    Args:
        loc: ``batch_shape + (J, 3)``, radians.
        scale_tril: ``batch_shape + (3J, 3J)`` lower Cholesky factor (radians), rows and columns
            in the order of ``loc.flatten(-2)`` (joint-major: x, y, z of joint 0, then joint 1, ...).

    ``log_prob`` in nats (Lebesgue on R^(3J)); reparameterised ``rsample``.
    """

    arg_constraints = {"loc": constraints.independent(constraints.real, 2), "scale_tril": constraints.lower_cholesky}
    support = pose_space
    has_rsample = True

    def __init__(self, loc: Tensor, scale_tril: Tensor, validate_args: bool | None = None) -> None:
        if loc.dim() < 2 or loc.shape[-1] != 3:
            raise ValueError(f"loc must have shape (..., J, 3), got {tuple(loc.shape)}")
        d = 3 * loc.shape[-2]
        if scale_tril.dim() < 2 or scale_tril.shape[-2:] != (d, d):
            raise ValueError(f"scale_tril must have shape (..., {d}, {d}), got {tuple(scale_tril.shape)}")
        batch_shape = torch.broadcast_shapes(loc.shape[:-2], scale_tril.shape[:-2])
        self.loc = loc.expand(batch_shape + loc.shape[-2:])
        self.scale_tril = scale_tril.expand(batch_shape + (d, d))
        self._mvn = MultivariateNormal(self.loc.flatten(-2), scale_tril=self.scale_tril, validate_args=False)
        super().__init__(batch_shape, loc.shape[-2:], validate_args=validate_args)

    def expand(
        self, batch_shape: torch.Size | tuple[int, ...], _instance: TorchDistribution | None = None
    ) -> FullGaussianPrior:
        new = self._get_checked_instance(FullGaussianPrior, _instance)
        batch_shape = torch.Size(batch_shape)
        new.loc = self.loc.expand(batch_shape + self.event_shape)
        new.scale_tril = self.scale_tril.expand(batch_shape + self.scale_tril.shape[-2:])
        new._mvn = self._mvn.expand(batch_shape)
        super(FullGaussianPrior, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def mean(self) -> Tensor:
        return self.loc

    @property
    def variance(self) -> Tensor:
        """``batch_shape + (J, 3)``: the diagonal of the covariance."""
        return self._mvn.variance.unflatten(-1, self.event_shape)

    @property
    def covariance_matrix(self) -> Tensor:
        """``batch_shape + (3J, 3J)``."""
        return self._mvn.covariance_matrix

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        return self._mvn.rsample(sample_shape).unflatten(-1, self.event_shape)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return self._mvn.log_prob(value.to(self.loc.dtype).flatten(-2))  # computed in the prior's dtype

    def entropy(self) -> Tensor:
        return self._mvn.entropy()
