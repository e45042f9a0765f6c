"""ActNorm with an explicit, data-dependent initialisation: normflows' ActNorm initialises itself on
its first call in whichever direction comes first (from base noise if sampling comes first)."""

from __future__ import annotations

import normflows as nf
import torch
from torch import Tensor, nn

__all__ = ["ActNorm"]


class ActNorm(nf.flows.Flow):
    """Per-dimension affine map ``x = z * exp(log_scale) + shift`` (base ``z`` to data ``x``).

    Unlike normflows' ActNorm it accepts (and ignores) ``context``, and it is initialised only by
    an explicit :meth:`initialize` on a training batch, never by whichever call comes first.
    ``data_init=False``: it starts (and stays, until trained) as the identity; for a stack whose
    data side is already whitened, where standardising again would sharpen floored directions."""

    def __init__(self, dim: int, data_init: bool = True) -> None:
        super().__init__()
        self.data_init = data_init
        self.shift = nn.Parameter(torch.zeros(dim))
        self.log_scale = nn.Parameter(torch.zeros(dim))
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        """Set the map so that the batch ``x`` (data side, ``(N, D)``) becomes zero-mean, unit-variance
        (a no-op but for the flag when ``data_init`` is off)."""
        self.initialized.fill_(True)
        if not self.data_init:
            return
        std = x.std(0, correction=0).clamp_min(1e-6)
        self.shift.copy_(x.mean(0))
        self.log_scale.copy_(std.log())
        self.initialized.fill_(True)

    def forward(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = z * self.log_scale.exp() + self.shift
        return x, self.log_scale.sum().expand_as(z[:, 0])

    def inverse(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        z = (x - self.shift) * torch.exp(-self.log_scale)
        return z, (-self.log_scale.sum()).expand_as(x[:, 0])
