"""A masked autoregressive rational-quadratic spline (Durkan et al. 2019, MADE conditioner).

For a small dimension -- one joint's 3 numbers -- an autoregressive spline is the most expressive
layer per operation: ``x_i`` given ``x_<i`` and the context is any monotone 1-D spline, so one layer
can represent, for example, a mixture of Gaussians exactly up to the spline's resolution, where a
coupling layer needs several. ``log_prob`` (data -> base) is one pass of a masked network;
sampling (base -> data) takes ``dim`` passes, one per dimension -- fine for 3, not for a whole
pose (use couplings there).
"""

from __future__ import annotations

import normflows as nf
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from probpose.flows.spline import identity_derivative, rq_spline

__all__ = ["MaskedMLP", "AutoregressiveRQS"]


class _MaskedLinear(nn.Linear):
    mask: Tensor

    def __init__(self, d_in: int, d_out: int, mask: Tensor) -> None:
        super().__init__(d_in, d_out)
        self.register_buffer("mask", mask.to(self.weight.dtype))

    def forward(self, v: Tensor) -> Tensor:
        return F.linear(v, self.weight * self.mask, self.bias)


class MaskedMLP(nn.Module):
    """A MADE network: input ``k`` has degree ``in_degrees[k]``, output ``m`` degree
    ``out_degrees[m]``; output ``m`` depends only on inputs of degree below it. Hidden units take
    degrees ``0 .. max(out_degrees) - 1`` in turn; ReLU; the last layer starts at zero."""

    def __init__(self, in_degrees: Tensor, out_degrees: Tensor, hidden: int, layers: int) -> None:
        super().__init__()
        top = int(out_degrees.max())
        hid = torch.arange(hidden) % max(top, 1)
        mods: list[nn.Module] = []
        prev = in_degrees
        for _ in range(layers):
            mods += [_MaskedLinear(len(prev), hidden, (hid[:, None] >= prev[None, :]).float()), nn.ReLU()]
            prev = hid
        last = _MaskedLinear(len(prev), len(out_degrees), (out_degrees[:, None] > prev[None, :]).float())
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        mods.append(last)
        self.net = nn.Sequential(*mods)

    def forward(self, v: Tensor) -> Tensor:
        return self.net(v)


class AutoregressiveRQS(nf.flows.Flow):
    """``x_i = spline_i(z_i)`` with the spline of dimension ``i`` a function of ``x_<i`` and the
    context (dimensions taken in ``order``); rational-quadratic on ``[-B, B]``, identity beyond.

    Starts as the identity. Convention (normflows'): ``forward`` maps base to data (``dim``
    network passes), ``inverse`` data to base (one pass); each returns its log|det| ``(N,)``."""

    order: Tensor
    degree: Tensor

    def __init__(
        self,
        dim: int,
        context_dim: int = 0,
        hidden: int = 64,
        layers: int = 2,
        num_bins: int = 8,
        tail_bound: float = 5.0,
        order: Tensor | None = None,
    ) -> None:
        super().__init__()
        order = torch.arange(dim) if order is None else torch.as_tensor(order)
        if sorted(order.tolist()) != list(range(dim)):
            raise ValueError(f"order must be a permutation of 0..{dim - 1}")
        self.dim, self.context_dim, self.num_bins, self.tail_bound = dim, context_dim, num_bins, float(tail_bound)
        self.register_buffer("order", order, persistent=False)
        degree = torch.empty(dim, dtype=torch.long)
        degree[order] = torch.arange(1, dim + 1)  # the first in order has degree 1: it sees the context only
        self.register_buffer("degree", degree, persistent=False)
        p = 3 * num_bins - 1
        in_degrees = torch.cat([degree, torch.zeros(context_dim, dtype=torch.long)])
        out_degrees = degree.repeat_interleave(p)  # dimension-major: p parameters per dimension
        self.net = MaskedMLP(in_degrees, out_degrees, hidden, layers)
        with torch.no_grad():
            last = self.net.net[-1]
            assert isinstance(last, nn.Linear)
            last.bias.view(dim, p)[:, 2 * num_bins :] = identity_derivative()

    def _params(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        inp = x
        if self.context_dim:
            assert context is not None  # checked by the caller
            inp = torch.cat([x, context], -1)
        k = self.num_bins
        out = self.net(inp).unflatten(-1, (self.dim, 3 * k - 1))
        return out.split([k, k, k - 1], dim=-1)

    def _check(self, context: Tensor | None) -> None:
        if self.context_dim and context is None:
            raise ValueError("this layer needs a context")

    def inverse(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check(context)
        z, ld = rq_spline(x, *self._params(x, context), tail_bound=self.tail_bound)
        return z, ld.sum(-1)

    def forward(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check(context)
        x = torch.zeros_like(z)
        log_det = torch.zeros_like(z[:, 0])
        for i in self.order.tolist():  # x_i needs x_<i only: one pass per dimension
            w, h, d = (p[:, i : i + 1] for p in self._params(x, context))
            xi, ldi = rq_spline(z[:, i : i + 1], w, h, d, inverse=True, tail_bound=self.tail_bound)
            x = torch.cat([x[:, :i], xi, x[:, i + 1 :]], -1)
            log_det = log_det + ldi[:, 0]
        return x, log_det
