"""Per-joint Gaussian prior over ``(J, 3)`` axis-angle poses."""

from __future__ import annotations

import torch
from pyro.distributions import Independent, MultivariateNormal, TorchDistribution, constraints
from torch import Tensor

from probpose.distributions.constraints import pose_space

__all__ = ["PerJointGaussianPrior"]


class PerJointGaussianPrior(Independent):
    """Independent joints, each a full-covariance 3-D Gaussian over its axis-angle vector: Pyro's
    ``MultivariateNormal(loc, scale_tril).to_event(1)``.

    ``log p(x) = sum_j log N(x_j; loc_j, L_j L_j^T)``, a density in nats with respect to Lebesgue
    measure on R^(3J) (docs/architecture.md, "Event space and metrics").

    Args:
        loc: ``batch_shape + (J, 3)``, radians.
        scale_tril: ``batch_shape + (J, 3, 3)`` lower-triangular Cholesky factors with positive
            diagonals (radians). A diagonal ``scale_tril`` is the diagonal-covariance variant.
        validate_args: check parameters and samples (Pyro's convention: off unless asked).

    ``event_shape == (J, 3)``; ``log_prob(x)`` has shape ``sample_shape + batch_shape``;
    ``rsample`` is reparameterised; ``expand``, ``mean``, ``variance`` and ``entropy`` come from
    the parent.

    Example:
        >>> import torch
        >>> from probpose.distributions import PerJointGaussianPrior
        >>> prior = PerJointGaussianPrior(torch.zeros(2, 3), 0.5 * torch.eye(3).expand(2, 3, 3))  # 2 joints
        >>> prior.event_shape, prior.sample((4,)).shape
        (torch.Size([2, 3]), torch.Size([4, 2, 3]))
        >>> round(prior.log_prob(torch.zeros(2, 3)).item(), 4)  # nats: 2 x log N(0; 0, 0.25 I_3)
        -1.3547
    """

    arg_constraints: dict = {}

    def __init__(self, loc: Tensor, scale_tril: Tensor, validate_args: bool | None = None) -> None:
        if loc.dim() < 2 or loc.shape[-1] != 3:
            raise ValueError(f"loc must have shape (..., J, 3), got {tuple(loc.shape)}")
        if scale_tril.dim() < 3 or scale_tril.shape[-2:] != (3, 3) or scale_tril.shape[-3] != loc.shape[-2]:
            raise ValueError(f"scale_tril must have shape (..., {loc.shape[-2]}, 3, 3), got {tuple(scale_tril.shape)}")
        mvn = MultivariateNormal(loc, scale_tril=scale_tril, validate_args=validate_args)
        super().__init__(mvn, 1, validate_args=validate_args)

    def expand(
        self, batch_shape: torch.Size | list[int] | tuple[int, ...], _instance: TorchDistribution | None = None
    ) -> PerJointGaussianPrior:
        return super().expand(batch_shape, _instance=self._get_checked_instance(PerJointGaussianPrior, _instance))

    @property
    def support(self) -> constraints.Constraint:  # type: ignore[override]  # a property, as in Pyro's own
        return pose_space

    @property
    def num_joints(self) -> int:
        return self.event_shape[0]

    @property
    def loc(self) -> Tensor:
        """``batch_shape + (J, 3)``."""
        return self.base_dist.loc

    @property
    def scale_tril(self) -> Tensor:
        """``batch_shape + (J, 3, 3)``."""
        return self.base_dist.scale_tril

    @property
    def covariance_matrix(self) -> Tensor:
        """``batch_shape + (J, 3, 3)``."""
        return self.base_dist.covariance_matrix

    def joint_log_prob(self, value: Tensor) -> Tensor:
        """Per-joint terms ``(..., J, 3) -> (..., J)`` (the joints are independent: they sum to ``log_prob``)."""
        return self.base_dist.log_prob(value.to(self.loc.dtype))  # the one dtype rule: the prior's dtype

    def log_prob(self, value: Tensor) -> Tensor:  # type: ignore[override]  # torch's signature; Pyro's abstract one adds *args
        if self._validate_args:
            self._validate_sample(value)
        return self.joint_log_prob(value).sum(-1)
