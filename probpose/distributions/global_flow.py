"""A normalizing flow over the whole pose, as a Pyro distribution (the normflows adapter)."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn

from probpose.distributions.flow import FlowDistribution, FlowTransform
from probpose.flows import FlowStack

__all__ = ["GlobalFlowPrior", "GlobalFlowTransform"]


class GlobalFlowTransform(FlowTransform):
    """Noise ``(..., J, 3)`` -> poses ``(..., J, 3)`` through a :class:`~probpose.flows.FlowStack`
    on R^(3J), which it owns: the pose flattened to one vector, ``sample_shape + batch_shape``
    flattened into the stack's batch and restored.

    Args:
        flow: a flow on R^(3J) (``flow.dim == 3 * num_joints``).
        num_joints: J.
        context: ``batch_shape + (C,)`` for a conditional flow (``flow.context_dim == C``), else None.
    """

    def __init__(self, flow: FlowStack, num_joints: int, context: Tensor | None = None, cache_size: int = 0) -> None:
        if flow.dim != 3 * num_joints:
            raise ValueError(f"flow dimension {flow.dim} != 3 x {num_joints} joints")
        if (context is None) != (flow.context_dim == 0):
            raise ValueError(f"flow expects a context of size {flow.context_dim}; got {context is not None}")
        if context is not None and (context.dim() < 1 or context.shape[-1] != flow.context_dim):
            raise ValueError(f"context must be (..., {flow.context_dim}), got {tuple(context.shape)}")
        super().__init__(num_joints, cache_size)
        self.flow = flow
        self.context = context

    def parameters(self) -> Iterator[nn.Parameter]:
        return self.flow.parameters()

    def _lead(self, shape: torch.Size) -> torch.Size:
        """The leading shape of values ``shape + (J, 3)`` broadcast with the context's."""
        return shape if self.context is None else torch.broadcast_shapes(shape, self.context.shape[:-1])

    def _flat_context(self, lead: torch.Size) -> Tensor | None:
        if self.context is None:
            return None
        return self.context.expand(lead + self.context.shape[-1:]).reshape(-1, self.context.shape[-1])

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
        flat = x.to(self.factory()["dtype"]).expand(lead + self.event_shape).reshape(-1, self.flow.dim)
        z, log_det_inverse = self.flow.inverse_and_log_det(flat, self._flat_context(lead))
        return z.reshape(lead + self.event_shape), -log_det_inverse.reshape(lead)


class GlobalFlowPrior(FlowDistribution):
    """The pose ``(J, 3)`` flattened to one vector in R^(3J) and modelled by a :class:`FlowStack`:
    ``TransformedDistribution(N(0, I), [GlobalFlowTransform(flow, J, context)])``
    (``probpose/distributions/flow.py``).

    ``log_prob`` is exact (nats, Lebesgue on R^(3J)); ``rsample`` is reparameterised (base noise
    pushed through the flow); ``rsample_and_log_prob`` gives both without inverting.

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
        ('GlobalFlowPrior', ['GlobalFlowTransform'])
        >>> z = torch.zeros(21, 3)  # base noise
        >>> x = flow.transform(z)  # noise -> pose, radians
        >>> torch.allclose(flow.transform.inv(x), z, atol=1e-4)
        True
    """

    def __init__(
        self,
        flow: FlowStack,
        num_joints: int,
        context: Tensor | None = None,
        batch_shape: torch.Size | tuple[int, ...] = (),
        validate_args: bool | None = None,
    ) -> None:
        transform = GlobalFlowTransform(flow, num_joints, context)
        if context is not None:
            batch_shape = context.shape[:-1]
        super().__init__(transform, batch_shape, validate_args)
