"""A mixture of full-covariance Gaussians over the whole pose (the SMPLify prior), over ``(J, 3)``."""

from __future__ import annotations

import torch
from pyro.distributions import Categorical, MixtureSameFamily, MultivariateNormal
from torch import Tensor

from probpose.distributions.full_gaussian import PoseVectorDistribution

__all__ = ["GaussianMixturePrior"]


class GaussianMixturePrior(PoseVectorDistribution):
    """``p(x) = sum_k w_k N(x.flatten(); loc_k.flatten(), L_k L_k^T)`` with ``w = softmax(logits)``.

    The exact mixture density (log-sum-exp over components), in nats on R^(3J) -- unlike
    SMPLify-X's own code, which scores a pose by its best component alone, a number that is not a
    density. Pyro's ``MixtureSameFamily`` of ``MultivariateNormal`` seen as ``(J, 3)`` poses.

    Args:
        logits: ``batch_shape + (K,)`` unnormalised component log-weights.
        loc: ``batch_shape + (K, J, 3)`` component means, radians.
        scale_tril: ``batch_shape + (K, 3J, 3J)`` lower Cholesky factors (joint-major order).

    Not reparameterised (the component choice is discrete). Its mean and variance are the
    mixture's (the law of total variance); its entropy has no closed form.

    Example:
        >>> import torch
        >>> from probpose.distributions import FullGaussianPrior, GaussianMixturePrior
        >>> loc = torch.stack([torch.zeros(2, 3), torch.ones(2, 3)])  # K = 2 components of 2 joints
        >>> mix = GaussianMixturePrior(torch.zeros(2), loc, 0.5 * torch.eye(6).expand(2, 6, 6))
        >>> mix.sample((5,)).shape
        torch.Size([5, 2, 3])
        >>> one = FullGaussianPrior(torch.zeros(2, 3), 0.5 * torch.eye(6))
        >>> round((mix.log_prob(torch.zeros(2, 3)) - one.log_prob(torch.zeros(2, 3))).exp().item(), 4)
        0.5
    """

    def __init__(self, logits: Tensor, loc: Tensor, scale_tril: Tensor, validate_args: bool | None = None) -> None:
        if loc.dim() < 3 or loc.shape[-1] != 3 or loc.shape[-3] != logits.shape[-1]:
            raise ValueError(f"loc must have shape (..., K, J, 3) with K = {logits.shape[-1]}, got {tuple(loc.shape)}")
        k, d = loc.shape[-3], 3 * loc.shape[-2]
        if scale_tril.dim() < 3 or scale_tril.shape[-3:] != (k, d, d):
            raise ValueError(f"scale_tril must have shape (..., {k}, {d}, {d}), got {tuple(scale_tril.shape)}")
        batch_shape = torch.broadcast_shapes(logits.shape[:-1], loc.shape[:-3], scale_tril.shape[:-3])
        mixture = MixtureSameFamily(
            Categorical(logits=logits.expand(batch_shape + (k,)), validate_args=validate_args),
            MultivariateNormal(loc.flatten(-2), scale_tril=scale_tril, validate_args=validate_args),
            validate_args=validate_args,
        )
        super().__init__(mixture, loc.shape[-2], validate_args=validate_args)

    def _dtype(self) -> torch.dtype:
        return self.loc.dtype

    @property
    def _mixture(self) -> MixtureSameFamily:
        return self.base_dist

    @property
    def logits(self) -> Tensor:
        """``batch_shape + (K,)``, normalised (log-weights)."""
        return self.base_dist.mixture_distribution.logits

    @property
    def loc(self) -> Tensor:
        """``batch_shape + (K, J, 3)``."""
        return self._pose(self.base_dist.component_distribution.loc)

    @property
    def scale_tril(self) -> Tensor:
        """``batch_shape + (K, 3J, 3J)``."""
        return self.base_dist.component_distribution.scale_tril

    @property
    def num_components(self) -> int:
        return self.logits.shape[-1]

    def entropy(self) -> Tensor:
        raise NotImplementedError(
            "a Gaussian mixture's entropy has no closed form; estimate it as -log_prob(x).mean() over samples x"
        )

    def component_log_prob(self, value: Tensor) -> Tensor:
        """``log w_k + log N_k(x)``: ``sample_shape + batch_shape + (K,)``."""
        x = value.to(self._dtype()).flatten(-2).unsqueeze(-2)  # computed in the prior's dtype
        return torch.log_softmax(self.logits, -1) + self.base_dist.component_distribution.log_prob(x)
