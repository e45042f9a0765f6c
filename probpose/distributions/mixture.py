"""A mixture of full-covariance Gaussians over the whole pose (the SMPLify prior), over ``(J, 3)``."""

from __future__ import annotations

import torch
from pyro.distributions import TorchDistribution, constraints
from torch import Tensor
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal

from probpose.distributions.constraints import pose_space

__all__ = ["GaussianMixturePrior"]


class GaussianMixturePrior(TorchDistribution):
    """``p(x) = sum_k w_k N(x.flatten(); loc_k.flatten(), L_k L_k^T)`` with ``w = softmax(logits)``.

    The exact mixture density (log-sum-exp over components), in nats on R^(3J) -- unlike
    SMPLify-X's own code, which scores a pose by its best component alone, a number that is not a
    density. Built on ``torch.distributions.MixtureSameFamily``.

    Args:
        logits: ``batch_shape + (K,)`` unnormalised component log-weights.
        loc: ``batch_shape + (K, J, 3)`` component means, radians.
        scale_tril: ``batch_shape + (K, 3J, 3J)`` lower Cholesky factors (joint-major order).

    Not reparameterised (the component choice is discrete).
    """

    arg_constraints = {
        "logits": constraints.real_vector,
        "loc": constraints.independent(constraints.real, 3),
        "scale_tril": constraints.independent(constraints.lower_cholesky, 1),
    }
    support = pose_space
    has_rsample = False

    def __init__(self, logits: Tensor, loc: Tensor, scale_tril: Tensor, validate_args: bool | None = None) -> None:
        if loc.dim() < 3 or loc.shape[-1] != 3 or loc.shape[-3] != logits.shape[-1]:
            raise ValueError(f"loc must have shape (..., K, J, 3) with K = {logits.shape[-1]}, got {tuple(loc.shape)}")
        k, d = loc.shape[-3], 3 * loc.shape[-2]
        if scale_tril.dim() < 3 or scale_tril.shape[-3:] != (k, d, d):
            raise ValueError(f"scale_tril must have shape (..., {k}, {d}, {d}), got {tuple(scale_tril.shape)}")
        batch_shape = torch.broadcast_shapes(logits.shape[:-1], loc.shape[:-3], scale_tril.shape[:-3])
        self.logits = logits.expand(batch_shape + (k,))
        self.loc = loc.expand(batch_shape + loc.shape[-3:])
        self.scale_tril = scale_tril.expand(batch_shape + (k, d, d))
        self._build()
        super().__init__(batch_shape, loc.shape[-2:], validate_args=validate_args)

    def _build(self) -> None:
        self._mixture = MixtureSameFamily(
            Categorical(logits=self.logits, validate_args=False),
            MultivariateNormal(self.loc.flatten(-2), scale_tril=self.scale_tril, validate_args=False),
            validate_args=False,
        )

    @property
    def num_components(self) -> int:
        return self.logits.shape[-1]

    def expand(
        self, batch_shape: torch.Size | tuple[int, ...], _instance: TorchDistribution | None = None
    ) -> GaussianMixturePrior:
        new = self._get_checked_instance(GaussianMixturePrior, _instance)
        batch_shape = torch.Size(batch_shape)
        new.logits = self.logits.expand(batch_shape + self.logits.shape[-1:])
        new.loc = self.loc.expand(batch_shape + self.loc.shape[-3:])
        new.scale_tril = self.scale_tril.expand(batch_shape + self.scale_tril.shape[-3:])
        new._build()
        super(GaussianMixturePrior, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def mean(self) -> Tensor:
        w = torch.softmax(self.logits, -1)
        return (w[..., None, None] * self.loc).sum(-3)

    @property
    def variance(self) -> Tensor:
        """``batch_shape + (J, 3)``: ``sum_k w_k (var_k + mu_k^2) - mean^2`` per coordinate."""
        w = torch.softmax(self.logits, -1)[..., None, None]
        var_k = self.scale_tril.square().sum(-1).unflatten(-1, self.event_shape)  # diag(L L^T)
        return (w * (var_k + self.loc.square())).sum(-3) - self.mean.square()

    def entropy(self) -> Tensor:
        raise NotImplementedError(
            "a Gaussian mixture's entropy has no closed form; estimate it as -log_prob(x).mean() over samples x"
        )

    def component_log_prob(self, value: Tensor) -> Tensor:
        """``log w_k + log N_k(x)``: ``sample_shape + batch_shape + (K,)``."""
        x = value.to(self.loc.dtype).flatten(-2).unsqueeze(-2)  # computed in the prior's dtype
        return torch.log_softmax(self.logits, -1) + self._mixture.component_distribution.log_prob(x)

    @torch.no_grad()
    def sample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        return self._mixture.sample(sample_shape).unflatten(-1, self.event_shape)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return torch.logsumexp(self.component_log_prob(value), -1)
