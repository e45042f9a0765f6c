"""A normalizing flow over the whole pose, as a Pyro distribution (the normflows adapter)."""

from __future__ import annotations

import torch
from torch import Tensor

from probpose.distributions.flow import FlowDistribution
from probpose.flows import FlowStack

__all__ = ["GlobalFlowPrior"]


class GlobalFlowPrior(FlowDistribution):
    """The pose ``(J, 3)`` flattened to one vector in R^(3J) and modelled by a :class:`FlowStack`:
    a ``TransformedDistribution`` of ``N(0, I)`` noise (``probpose/distributions/flow.py``).

    ``log_prob`` is exact (nats, Lebesgue on R^(3J)); ``rsample`` is reparameterised (base noise
    pushed through the flow); ``rsample_and_log_prob`` gives both without inverting. The adapter
    flattens ``sample_shape + batch_shape`` into the flow's batch and restores it.

    Args:
        flow: a flow on R^(3J) (``flow.dim == 3 * num_joints``).
        num_joints: J.
        context: ``batch_shape + (C,)`` for a conditional flow (``flow.context_dim == C``), else None.
        batch_shape: for an unconditional flow, the batch shape (default ``()``).

    Example:
        >>> import torch
        >>> from probpose.models import load_model
        >>> flow = load_model("cmu/global_flow_spline")()  # a shipped GlobalFlowPrior over (21, 3) poses
        >>> type(flow).__name__, [type(t).__name__ for t in flow.transforms]
        ('GlobalFlowPrior', ['FlowTransform'])
        >>> z = torch.zeros(21, 3)  # base noise
        >>> x = flow.transforms[0](z)  # noise -> pose, radians
        >>> torch.allclose(flow.transforms[0].inv(x), z, atol=1e-4)
        True
    """

    _shared = ("flow", "context")

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
        p = next(flow.parameters())
        factory = {"dtype": p.dtype, "device": p.device}
        self._init_flow(torch.Size((num_joints, 3)), torch.Size(batch_shape), factory, validate_args)

    def _lead(self, shape: torch.Size) -> torch.Size:
        """The leading shape of values ``shape + (J, 3)`` broadcast with the context's."""
        return shape if self.context is None else torch.broadcast_shapes(shape, self.context.shape[:-1])

    def _flat_context(self, lead: torch.Size) -> Tensor | None:
        if self.context is None:
            return None
        return self.context.expand(lead + self.context.shape[-1:]).reshape(-1, self.context.shape[-1])

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        lead = torch.broadcast_shapes(value.shape[:-2], self.batch_shape)
        value = value.to(self._factory()["dtype"])  # computed in the prior's dtype
        x = value.expand(lead + self.event_shape).reshape(-1, self.flow.dim)
        return self.flow.log_prob(x, self._flat_context(lead)).reshape(lead)

    def forward_and_log_det(self, z: Tensor) -> tuple[Tensor, Tensor]:
        if z.shape[-2:] != self.event_shape:
            raise ValueError(f"noise must be (..., {self.event_shape[0]}, 3), got {tuple(z.shape)}")
        lead = self._lead(z.shape[:-2])
        flat = z.expand(lead + self.event_shape).reshape(-1, self.flow.dim)
        x, log_det = self.flow.forward_and_log_det(flat, self._flat_context(lead))
        return x.reshape(lead + self.event_shape), log_det.reshape(lead)

    def inverse_and_log_det(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if x.shape[-2:] != self.event_shape:
            raise ValueError(f"poses must be (..., {self.event_shape[0]}, 3), got {tuple(x.shape)}")
        lead = self._lead(x.shape[:-2])
        flat = x.to(self._factory()["dtype"]).expand(lead + self.event_shape).reshape(-1, self.flow.dim)
        z, log_det_inverse = self.flow.inverse_and_log_det(flat, self._flat_context(lead))
        return z.reshape(lead + self.event_shape), -log_det_inverse.reshape(lead)

    def rsample_and_log_prob(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> tuple[Tensor, Tensor]:
        lead = torch.Size(sample_shape) + self.batch_shape
        z = torch.randn(lead.numel(), self.flow.dim, **self._factory())
        x, log_det = self.flow.forward_and_log_det(z, self._flat_context(lead))
        lp = self.flow.base_log_prob(z) - log_det
        return x.reshape(lead + self.event_shape), lp.reshape(lead)
