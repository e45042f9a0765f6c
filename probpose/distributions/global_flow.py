"""A normalizing flow over the whole pose, as a Pyro distribution (the normflows adapter)."""

from __future__ import annotations

import math

import torch
from pyro.distributions import TorchDistribution, constraints
from torch import Tensor

from probpose.distributions.flow_layers import FlowStack

__all__ = ["GlobalFlowPrior"]


class GlobalFlowPrior(TorchDistribution):
    """The pose ``(J, 3)`` flattened to one vector in R^(3J) and modelled by a :class:`FlowStack`.

    ``log_prob`` is exact (nats, Lebesgue on R^(3J)); ``rsample`` is reparameterised (base noise
    pushed through the flow). The adapter flattens ``sample_shape + batch_shape`` into the flow's
    batch and restores it.

    Args:
        flow: a flow on R^(3J) (``flow.dim == 3 * num_joints``).
        num_joints: J.
        context: ``batch_shape + (C,)`` for a conditional flow (``flow.context_dim == C``), else None.
        batch_shape: for an unconditional flow, the batch shape (default ``()``).
    """

    arg_constraints: dict = {}
    support = constraints.independent(constraints.real, 2)
    has_rsample = True

    def __init__(
        self,
        flow: FlowStack,
        num_joints: int,
        context: Tensor | None = None,
        batch_shape: torch.Size | tuple[int, ...] = (),
        validate_args: bool | None = None,
    ) -> None:
        if flow.dim != 3 * num_joints:
            raise ValueError(f"flow dimension {flow.dim} != 3 x {num_joints} joints")
        if (context is None) != (flow.context_dim == 0):
            raise ValueError(f"flow expects a context of size {flow.context_dim}; got {context is not None}")
        if context is not None:
            if context.dim() < 1 or context.shape[-1] != flow.context_dim:
                raise ValueError(f"context must be (..., {flow.context_dim}), got {tuple(context.shape)}")
            batch_shape = context.shape[:-1]
        self.flow = flow
        self.context = context
        super().__init__(torch.Size(batch_shape), torch.Size((num_joints, 3)), validate_args=validate_args)

    def expand(
        self, batch_shape: torch.Size | tuple[int, ...], _instance: TorchDistribution | None = None
    ) -> GlobalFlowPrior:
        new = self._get_checked_instance(GlobalFlowPrior, _instance)
        batch_shape = torch.Size(batch_shape)
        new.flow = self.flow
        new.context = None if self.context is None else self.context.expand(batch_shape + self.context.shape[-1:])
        super(GlobalFlowPrior, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def _param(self) -> Tensor:
        return next(self.flow.parameters())

    def _flat_context(self, lead: torch.Size) -> Tensor | None:
        if self.context is None:
            return None
        return self.context.expand(lead + self.context.shape[-1:]).reshape(-1, self.context.shape[-1])

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        lead = torch.broadcast_shapes(value.shape[:-2], self.batch_shape)
        x = value.expand(lead + self.event_shape).reshape(-1, self.flow.dim)
        return self.flow.log_prob(x, self._flat_context(lead)).reshape(lead)

    def rsample_with_log_prob(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> tuple[Tensor, Tensor]:
        """Samples and their log-density computed along the generating path (base density minus
        the forward log|det|), without inverting the flow."""
        lead = torch.Size(sample_shape) + self.batch_shape
        p = self._param()
        z = torch.randn(lead.numel(), self.flow.dim, dtype=p.dtype, device=p.device)
        x, log_det = self.flow.forward_and_log_det(z, self._flat_context(lead))
        lp = self.flow.base_log_prob(z) - log_det
        return x.reshape(lead + self.event_shape), lp.reshape(lead)

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        return self.rsample_with_log_prob(sample_shape)[0]

    @property
    def dim(self) -> int:
        return self.flow.dim

    def bits_per_dim(self, value: Tensor) -> Tensor:
        """``-log_prob / (D ln 2)``."""
        return -self.log_prob(value) / (self.dim * math.log(2))
