"""One Gaussian over all modelled joints jointly, over ``(J, 3)`` axis-angle poses."""

from __future__ import annotations

import torch
from pyro.distributions import MultivariateNormal, TorchDistribution, TransformedDistribution, constraints
from torch import Tensor
from torch.distributions.transforms import ReshapeTransform

from probpose.distributions.constraints import pose_space

__all__ = ["FullGaussianPrior", "PoseVectorDistribution"]


class PoseVectorDistribution(TransformedDistribution):
    """A distribution over flat vectors in R^(3J) (``base``) seen as ``(J, 3)`` poses: Pyro's
    ``TransformedDistribution`` with torch's ``ReshapeTransform`` (volume-preserving, so densities
    are unchanged). ``expand``, ``rsample`` and ``sample`` come from the parent; the support is
    finite poses; ``log_prob`` computes in the prior's dtype (the one dtype rule)."""

    arg_constraints: dict = {}

    def __init__(self, base: TorchDistribution, num_joints: int, validate_args: bool | None = None) -> None:
        reshape = ReshapeTransform(torch.Size((3 * num_joints,)), torch.Size((num_joints, 3)))
        super().__init__(base, [reshape], validate_args=validate_args)

    def expand(
        self, batch_shape: torch.Size | tuple[int, ...], _instance: TorchDistribution | None = None
    ) -> PoseVectorDistribution:
        return super().expand(batch_shape, _instance=self._get_checked_instance(type(self), _instance))

    @property
    def support(self) -> constraints.Constraint:
        return pose_space

    def _pose(self, flat: Tensor) -> Tensor:
        return flat.unflatten(-1, self.event_shape)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        x = value.to(self._dtype()).flatten(-2)  # computed in the prior's dtype
        return self.base_dist.log_prob(x)

    def _dtype(self) -> torch.dtype:
        raise NotImplementedError

    @property
    def mean(self) -> Tensor:
        return self._pose(self.base_dist.mean)

    @property
    def variance(self) -> Tensor:
        """``batch_shape + (J, 3)``."""
        return self._pose(self.base_dist.variance)


class FullGaussianPrior(PoseVectorDistribution):
    """``x.flatten() ~ N(loc.flatten(), L L^T)``: a Gaussian on R^(3J), every joint correlated with
    every other (the per-joint :class:`~probpose.distributions.PerJointGaussianPrior` is its
    block-diagonal special case). Pyro's ``MultivariateNormal`` seen as ``(J, 3)`` poses.

    Args:
        loc: ``batch_shape + (J, 3)``, radians.
        scale_tril: ``batch_shape + (3J, 3J)`` lower Cholesky factor (radians), rows and columns
            in the order of ``loc.flatten(-2)`` (joint-major: x, y, z of joint 0, then joint 1, ...).

    ``log_prob`` in nats (Lebesgue on R^(3J)); reparameterised ``rsample``.

    Example:
        >>> import torch
        >>> from probpose.distributions import FullGaussianPrior
        >>> prior = FullGaussianPrior(torch.zeros(2, 3), 0.5 * torch.eye(6))  # 2 joints, D = 6
        >>> prior.sample((4,)).shape
        torch.Size([4, 2, 3])
        >>> round(prior.log_prob(torch.zeros(2, 3)).item(), 4)  # nats; no correlation: the per-joint value
        -1.3547
    """

    def __init__(self, loc: Tensor, scale_tril: Tensor, validate_args: bool | None = None) -> None:
        if loc.dim() < 2 or loc.shape[-1] != 3:
            raise ValueError(f"loc must have shape (..., J, 3), got {tuple(loc.shape)}")
        d = 3 * loc.shape[-2]
        if scale_tril.dim() < 2 or scale_tril.shape[-2:] != (d, d):
            raise ValueError(f"scale_tril must have shape (..., {d}, {d}), got {tuple(scale_tril.shape)}")
        mvn = MultivariateNormal(loc.flatten(-2), scale_tril=scale_tril, validate_args=validate_args)
        super().__init__(mvn, loc.shape[-2], validate_args=validate_args)

    def _dtype(self) -> torch.dtype:
        return self.base_dist.loc.dtype

    @property
    def loc(self) -> Tensor:
        """``batch_shape + (J, 3)``."""
        return self._pose(self.base_dist.loc)

    @property
    def scale_tril(self) -> Tensor:
        """``batch_shape + (3J, 3J)``."""
        return self.base_dist.scale_tril

    @property
    def covariance_matrix(self) -> Tensor:
        """``batch_shape + (3J, 3J)``."""
        return self.base_dist.covariance_matrix

    def entropy(self) -> Tensor:
        return self.base_dist.entropy()
