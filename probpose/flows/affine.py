"""RealNVP affine coupling with an optional context (normflows' AffineCouplingBlock rejects one)."""

from __future__ import annotations

import normflows as nf
import torch
from torch import Tensor

from probpose.flows.mlp import MLP

__all__ = ["AffineCoupling"]


def squash(v: Tensor, bound: float) -> Tensor:
    """``bound * tanh(v / bound)``: the identity near 0, saturating at ``+-bound``."""
    return bound * torch.tanh(v / bound)


def bounded_affine(v: Tensor, shift: Tensor, log_scale: Tensor, bound: float, inverse: bool) -> tuple[Tensor, Tensor]:
    """An affine map with identity tails: ``x = z exp(s) + t`` for ``|z| <= B``, continued with slope 1
    beyond (continuous, monotone, invertible), like the spline's linear tails. It moves any input by
    at most ``B |exp(s) - 1| + |t|``, so far from the data the flow is its linear layers alone.

    ``inverse=False``: base -> data (``v`` is ``z``); ``True``: data -> base. Returns the output and
    the elementwise log|derivative| of that direction."""
    scale = log_scale.exp()
    hi, lo = bound * scale + shift, -bound * scale + shift  # images of +B and -B
    if not inverse:
        inside = v.abs() <= bound
        out = torch.where(inside, v * scale + shift, torch.where(v > 0, v - bound + hi, v + bound + lo))
        return out, torch.where(inside, log_scale, torch.zeros_like(log_scale))
    inside = (v >= lo) & (v <= hi)
    out = torch.where(inside, (v - shift) / scale, torch.where(v > hi, v - hi + bound, v - lo - bound))
    return out, torch.where(inside, -log_scale, torch.zeros_like(log_scale))


class AffineCoupling(nf.flows.Flow):
    """``x_b = z_b * exp(s) + t`` with ``(t, s) = net(squash(z_a), context)``, on ``|z_b| <= tail_bound``.

    The dimensions where ``mask`` is True (``z_a``) pass through and, with the context,
    parameterise a shift and a log-scale of the others. ``s`` is soft-clamped to
    ``[-scale_cap, scale_cap]`` (as zuko and nflows do). Bounded tails: beyond ``+-tail_bound``
    (standardised units) the map continues with slope 1 (:func:`bounded_affine`), and the net sees
    its input squashed to ``+-input_bound`` (``B tanh(z / B)``), so the coupling moves any point by a
    bounded amount: a flow of such couplings and linear layers has a negative log-density that grows
    like its Gaussian layer's far from the data, instead of multiplying distant coordinates by
    ``exp(s)`` layer after layer (which scored unseen recordings at 1e12 nats/pose). The net's last
    layer starts at zero, so the coupling starts as the identity. Convention (normflows'):
    ``forward`` maps base to data, ``inverse`` data to base; each returns its own log|det| ``(N,)``."""

    def __init__(
        self,
        mask: Tensor,
        context_dim: int = 0,
        hidden: int = 128,
        layers: int = 2,
        scale_cap: float = 3.0,
        input_bound: float = 3.0,
        tail_bound: float = 5.0,
    ) -> None:
        super().__init__()
        mask = mask.bool()
        self.register_buffer("mask", mask)
        self.n_cond = int(mask.sum())
        self.n_out = int((~mask).sum())
        # passive dims first, then active: gather with one index_select, scatter back with its inverse
        order = torch.cat([mask.nonzero().flatten(), (~mask).nonzero().flatten()])
        self.register_buffer("order", order, persistent=False)
        self.register_buffer("inv_order", torch.argsort(order), persistent=False)
        self.context_dim = context_dim
        self.scale_cap = scale_cap
        self.input_bound = input_bound
        self.tail_bound = tail_bound
        self.net = MLP(self.n_cond + context_dim, 2 * self.n_out, hidden, layers, zero_last=True)

    def _params(self, cond: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        cond = squash(cond, self.input_bound)
        if self.context_dim:
            if context is None:
                raise ValueError("this coupling needs a context")
            cond = torch.cat([cond, context], dim=-1)
        shift, raw = self.net(cond).chunk(2, dim=-1)
        return shift, self.scale_cap * torch.tanh(raw / self.scale_cap)

    def _split(self, v: Tensor) -> tuple[Tensor, Tensor]:
        return v.index_select(1, self.order).split([self.n_cond, self.n_out], dim=1)

    def _join(self, passive: Tensor, active: Tensor) -> Tensor:
        return torch.cat([passive, active], dim=1).index_select(1, self.inv_order)

    def forward(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        passive, active = self._split(z)
        shift, s = self._params(passive, context)
        out, ld = bounded_affine(active, shift, s, self.tail_bound, inverse=False)
        return self._join(passive, out), ld.sum(-1)

    def inverse(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        passive, active = self._split(x)
        shift, s = self._params(passive, context)
        out, ld = bounded_affine(active, shift, s, self.tail_bound, inverse=True)
        return self._join(passive, out), ld.sum(-1)
