"""What the flow priors share: exact ``log_prob`` and reparameterised samples whose log-density comes
from the generating path (zuko's ``rsample_and_log_prob``), over ``(J, 3)`` axis-angle poses."""

from __future__ import annotations

import torch
from pyro.distributions import TorchDistribution
from torch import Tensor

from probpose.distributions.constraints import pose_space
from probpose.flows import FlowStack

__all__ = ["FlowDistribution"]


class FlowDistribution(TorchDistribution):
    """Base of the flow priors: ``event_shape == (J, 3)``, support R^(3J), reparameterised.

    Subclasses set ``self.flow`` (a :class:`~probpose.flows.FlowStack`) and implement
    :meth:`rsample_and_log_prob` and ``log_prob``."""

    arg_constraints: dict = {}
    support = pose_space
    has_rsample = True
    flow: FlowStack

    def _checked_batch(self, batch_shape: torch.Size | tuple[int, ...]) -> torch.Size:
        """``batch_shape`` if this distribution's batch shape expands to it (as torch's ``expand``
        requires: each dimension equal, or 1); else a ``ValueError``."""
        batch_shape = torch.Size(batch_shape)
        old = self.batch_shape
        fits = len(old) <= len(batch_shape) and all(
            a == b or a == 1 for a, b in zip(old, batch_shape[len(batch_shape) - len(old) :], strict=True)
        )
        if not fits:
            raise ValueError(f"cannot expand batch shape {tuple(old)} to {tuple(batch_shape)}")
        return batch_shape

    def _factory(self) -> dict:
        """dtype and device of the flow's parameters (for base noise)."""
        p = next(self.flow.parameters())
        return {"dtype": p.dtype, "device": p.device}

    def rsample_and_log_prob(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> tuple[Tensor, Tensor]:
        """Samples ``sample_shape + batch_shape + (J, 3)`` and their log-density (nats), computed
        along the generating path (base density minus the forward log|det|) without inverting."""
        raise NotImplementedError

    def push_forward(self, noise: Tensor) -> tuple[Tensor, Tensor]:
        """The generating map: base noise ``(..., J, 3)`` (standard normal on R^(3J)) -> poses
        ``(..., J, 3)`` and their log-density ``(...,)`` (nats). Differentiable in ``noise``: fitting
        in the flow's base space optimises ``noise`` under ``N(0, I)``."""
        raise NotImplementedError

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        return self.rsample_and_log_prob(sample_shape)[0]
