"""RealNVP affine coupling with an optional context (normflows' AffineCouplingBlock rejects one)."""

from __future__ import annotations

import normflows as nf
import torch
from torch import Tensor

from probpose.flows.mlp import MLP

__all__ = ["AffineCoupling"]


class AffineCoupling(nf.flows.Flow):
    """``x_b = z_b * exp(s) + t`` with ``(t, s) = net(z_a, context)``.

    The dimensions where ``mask`` is True (``z_a``) pass through and, with the context,
    parameterise a shift and a log-scale of the others. ``s`` is soft-clamped to
    ``[-scale_cap, scale_cap]`` (``scale_cap * tanh(s / scale_cap)``). The net's last layer starts
    at zero, so the coupling starts as the identity. Convention (normflows'): ``forward`` maps base
    to data, ``inverse`` data to base; each returns its own log|det| ``(N,)``."""

    def __init__(
        self, mask: Tensor, context_dim: int = 0, hidden: int = 128, layers: int = 2, scale_cap: float = 3.0
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
        self.net = MLP(self.n_cond + context_dim, 2 * self.n_out, hidden, layers, zero_last=True)

    def _params(self, cond: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
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
        return self._join(passive, active * s.exp() + shift), s.sum(-1)

    def inverse(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        passive, active = self._split(x)
        shift, s = self._params(passive, context)
        return self._join(passive, (active - shift) * torch.exp(-s)), -s.sum(-1)
