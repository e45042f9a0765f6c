"""Coupling stacks built from normflows layers, with the fixes DESIGN.md section 7 calls for.

- :class:`FlowStack` runs a list of ``normflows.flows.Flow`` layers itself, accumulating
  log-determinants in the data's dtype and device (normflows' own ``NormalizingFlow`` creates
  float32 accumulators), over a fixed standard-normal base.
- :class:`ActNorm` accepts (and ignores) ``context`` and is initialised only by an explicit
  :meth:`FlowStack.initialize` on a training batch -- never by whichever call comes first.
- :class:`AffineCoupling` is a RealNVP coupling that also takes a context (normflows'
  ``AffineCouplingBlock`` raises ``TypeError`` on one).
- :func:`spline_coupling` wraps normflows' ``CoupledRationalQuadraticSpline`` and sets it to the
  identity at initialisation, like every coupling here.

Convention (normflows'): ``forward`` maps base ``z`` to data ``x``; ``inverse`` maps ``x`` to ``z``;
each returns the log|det| of its own direction, shape ``(N,)``.
"""

from __future__ import annotations

import math
from typing import Literal

import normflows as nf
import torch
from torch import Tensor, nn

__all__ = ["ActNorm", "AffineCoupling", "spline_coupling", "FlowStack", "coupling_stack"]


class ActNorm(nf.flows.Flow):
    """Per-dimension affine map ``x = z * exp(log_scale) + shift`` with data-dependent init."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.shift = nn.Parameter(torch.zeros(dim))
        self.log_scale = nn.Parameter(torch.zeros(dim))
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        """Set the map so that the batch ``x`` (data side, ``(N, D)``) becomes zero-mean, unit-variance."""
        std = x.std(0).clamp_min(1e-6)
        self.shift.copy_(x.mean(0))
        self.log_scale.copy_(std.log())
        self.initialized.fill_(True)

    def forward(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = z * self.log_scale.exp() + self.shift
        return x, self.log_scale.sum().expand(z.shape[0])

    def inverse(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        z = (x - self.shift) * torch.exp(-self.log_scale)
        return z, (-self.log_scale.sum()).expand(x.shape[0])


class _MLP(nn.Sequential):
    def __init__(self, d_in: int, d_out: int, hidden: int, layers: int) -> None:
        mods: list[nn.Module] = []
        d = d_in
        for _ in range(layers):
            mods += [nn.Linear(d, hidden), nn.ReLU()]
            d = hidden
        last = nn.Linear(d, d_out)
        nn.init.zeros_(last.weight)  # the coupling starts as the identity
        nn.init.zeros_(last.bias)
        mods.append(last)
        super().__init__(*mods)


class AffineCoupling(nf.flows.Flow):
    """RealNVP affine coupling with an optional context.

    The dimensions where ``mask`` is True pass through and, with the context, parameterise a shift
    and a log-scale of the others: ``x_b = z_b * exp(s) + t``. ``s`` is soft-clamped to
    ``[-scale_cap, scale_cap]`` for stability."""

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
        self.net = _MLP(self.n_cond + context_dim, 2 * self.n_out, hidden, layers)

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


def spline_coupling(
    dim: int,
    context_dim: int = 0,
    hidden: int = 128,
    num_blocks: int = 2,
    num_bins: int = 8,
    tail_bound: float = 5.0,
    reverse_mask: bool = False,
) -> nf.flows.CoupledRationalQuadraticSpline:
    """normflows' rational-quadratic spline coupling (linear tails beyond ``tail_bound``), set to
    the identity: the transform net's last layer outputs equal bin widths/heights and knot
    derivatives of 1, and so does the unconditional element-wise spline of the passive half."""
    layer = nf.flows.CoupledRationalQuadraticSpline(
        dim, num_blocks, hidden, num_context_channels=context_dim or None, num_bins=num_bins,
        tails="linear", tail_bound=tail_bound, reverse_mask=reverse_mask,
    )  # fmt: skip
    prqct = layer.prqct
    identity_derivative = math.log(math.expm1(1 - prqct.min_derivative))  # softplus^-1(1 - min)
    with torch.no_grad():
        final = prqct.transform_net.final_layer
        final.weight.zero_()
        bias = final.bias.view(-1, prqct._transform_dim_multiplier())
        bias[:, : 2 * num_bins] = 0.0
        bias[:, 2 * num_bins :] = identity_derivative
        uncond = getattr(prqct, "unconditional_transform", None)
        if uncond is not None:
            uncond.unnormalized_widths.zero_()
            uncond.unnormalized_heights.zero_()
            uncond.unnormalized_derivatives.fill_(identity_derivative)
    return layer


class FlowStack(nn.Module):
    """Layers applied in order from the base (``z``) to the data (``x``) side, over a standard
    normal base on R^dim. ``context``: ``(N, context_dim)`` or ``None``."""

    def __init__(self, dim: int, layers: list[nf.flows.Flow], context_dim: int = 0) -> None:
        super().__init__()
        self.dim = dim
        self.context_dim = context_dim
        self.layers = nn.ModuleList(layers)

    def _check(self, v: Tensor, context: Tensor | None) -> None:
        if v.dim() != 2 or v.shape[1] != self.dim:
            raise ValueError(f"expected (N, {self.dim}) inputs, got {tuple(v.shape)}")
        if self.context_dim:
            if context is None or context.shape != (v.shape[0], self.context_dim):
                got = None if context is None else tuple(context.shape)
                raise ValueError(f"expected a context of shape ({v.shape[0]}, {self.context_dim}), got {got}")
        elif context is not None:
            raise ValueError("this flow takes no context")

    def inverse_and_log_det(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``x (N, D) -> z (N, D)`` and log|det dz/dx| ``(N,)`` in ``x``'s dtype."""
        self._check(x, context)
        log_det = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for layer in reversed(self.layers):
            x, ld = layer.inverse(x, context=context)
            log_det = log_det + ld
        return x, log_det

    def forward_and_log_det(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``z (N, D) -> x (N, D)`` and log|det dx/dz| ``(N,)``."""
        self._check(z, context)
        log_det = torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)
        for layer in self.layers:
            z, ld = layer(z, context=context)
            log_det = log_det + ld
        return z, log_det

    def base_log_prob(self, z: Tensor) -> Tensor:
        return -0.5 * (z * z).sum(-1) - 0.5 * self.dim * math.log(2 * math.pi)

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """log p(x) ``(N,)`` in nats: base density of ``z`` plus log|det dz/dx|."""
        z, log_det = self.inverse_and_log_det(x, context)
        return self.base_log_prob(z) + log_det

    @torch.no_grad()
    def initialize(self, x: Tensor, context: Tensor | None = None) -> None:
        """Initialise every :class:`ActNorm` from a training batch ``x (N, D)``: the batch is
        pushed from the data side towards the base and each ActNorm standardises its input."""
        self._check(x, context)
        for layer in reversed(self.layers):
            if isinstance(layer, ActNorm):
                layer.initialize(x)
            x, _ = layer.inverse(x, context=context)


def coupling_stack(
    dim: int,
    K: int,
    kind: Literal["affine", "spline"] = "affine",
    context_dim: int = 0,
    hidden: int = 128,
    layers: int = 2,
    mixing: Literal["permute", "lu", "none"] = "permute",
    actnorm: bool = True,
    num_bins: int = 8,
    tail_bound: float = 5.0,
    seed: int = 0,
) -> FlowStack:
    """K coupling blocks on R^dim, each ``[ActNorm] -> coupling -> mixing`` (base side first).

    ``kind``: ``affine`` (RealNVP, our :class:`AffineCoupling`) or ``spline`` (normflows'
    rational-quadratic spline coupling). ``mixing``: a fixed random permutation, an LU-decomposed
    linear map with permutation (normflows' ``LULinearPermute``), or none (masks alternate).
    ``seed`` fixes the permutations (a local generator; the global RNG is not touched)."""
    if dim < 2:
        raise ValueError("a coupling flow needs at least 2 dimensions")
    if K < 1:
        raise ValueError(f"K must be >= 1, got {K}")
    gen = torch.Generator().manual_seed(seed)
    out: list[nf.flows.Flow] = []
    for k in range(K):
        if actnorm:
            out.append(ActNorm(dim))
        if kind == "affine":
            mask = torch.zeros(dim, dtype=torch.bool)
            mask[(k % 2) :: 2] = True
            out.append(AffineCoupling(mask, context_dim, hidden, layers))
        elif kind == "spline":
            out.append(
                spline_coupling(dim, context_dim, hidden, layers, num_bins, tail_bound, reverse_mask=bool(k % 2))
            )
        else:
            raise ValueError(f"unknown coupling kind {kind!r}; affine or spline")
        if k < K - 1:
            if mixing == "permute":
                perm = nf.flows.Permute(dim, mode="shuffle")
                p = torch.randperm(dim, generator=gen)
                perm.perm.copy_(p)
                perm.inv_perm.copy_(torch.argsort(p))
                out.append(perm)
            elif mixing == "lu":
                out.append(nf.flows.LULinearPermute(dim, identity_init=True))
            elif mixing != "none":
                raise ValueError(f"unknown mixing {mixing!r}; permute, lu or none")
    return FlowStack(dim, out, context_dim)
