"""A flow as an ordered stack of layers over a standard-normal base, and the coupling stacks."""

from __future__ import annotations

import math
from typing import Any, Literal

import normflows as nf
import torch
from torch import Tensor, nn

from probpose.flows.actnorm import ActNorm
from probpose.flows.affine import AffineCoupling
from probpose.flows.autoregressive import AutoregressiveRQS
from probpose.flows.linear import GaussianLayer
from probpose.flows.spline import RQSCoupling

__all__ = ["FlowStack", "coupling_stack"]


_CONSTANT_VOLUME = (nf.flows.Permute, nf.flows.LULinearPermute)
"""normflows layers whose log-determinant is the same for every row (and which build it with the
batch size as a Python number, which ``torch.jit.trace`` would bake in)."""


def _per_row(layer: nn.Module, log_det: Tensor, v: Tensor) -> Tensor:
    """A layer's log-determinant per row of ``v (N, D)``, in ``v``'s dtype (normflows' permutation
    gives float32 zeros whatever the input)."""
    if isinstance(layer, _CONSTANT_VOLUME):
        return log_det.reshape(-1)[:1].to(v.dtype).expand_as(v[:, 0])
    return log_det


class FlowStack(nn.Module):
    """Layers applied in order from the base (``z``) to the data (``x``) side, over a standard
    normal base on R^dim. ``context``: ``(N, context_dim)`` or ``None``."""

    def __init__(self, dim: int, layers: list[nf.flows.Flow], context_dim: int = 0) -> None:
        super().__init__()
        self.dim = dim
        self.context_dim = context_dim
        self.layers = nn.ModuleList(layers)

    def _layers(self) -> list[Any]:
        """The layers, base side first (normflows flows)."""
        return list(self.layers)

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
        log_det = torch.zeros_like(x[:, 0])  # a tensor op: traces for any batch size
        for layer in reversed(self._layers()):
            x, ld = layer.inverse(x, context=context)
            log_det = log_det + _per_row(layer, ld, x)
        return x, log_det

    def forward_and_log_det(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``z (N, D) -> x (N, D)`` and log|det dx/dz| ``(N,)``."""
        self._check(z, context)
        log_det = torch.zeros_like(z[:, 0])
        for layer in self._layers():
            z, ld = layer(z, context=context)
            log_det = log_det + _per_row(layer, ld, z)
        return z, log_det

    def base_log_prob(self, z: Tensor) -> Tensor:
        return -0.5 * (z * z).sum(-1) - 0.5 * self.dim * math.log(2 * math.pi)

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """log p(x) ``(N,)`` in nats: base density of ``z`` plus log|det dz/dx|."""
        z, log_det = self.inverse_and_log_det(x, context)
        return self.base_log_prob(z) + log_det

    @torch.no_grad()
    def initialize(self, x: Tensor, context: Tensor | None = None) -> None:
        """Initialise every data-dependent layer (:class:`ActNorm`, :class:`GaussianLayer`) from a
        training batch ``x (N, D)``: the batch is pushed from the data side towards the base and
        each such layer is fitted to what reaches it."""
        self._check(x, context)
        for layer in reversed(self._layers()):
            if isinstance(layer, (ActNorm, GaussianLayer)):
                layer.initialize(x)
            x, _ = layer.inverse(x, context=context)


def coupling_stack(
    dim: int,
    K: int,
    kind: Literal["affine", "spline", "autoregressive"] = "affine",
    context_dim: int = 0,
    hidden: int = 128,
    layers: int = 2,
    mixing: Literal["permute", "lu", "none"] = "permute",
    actnorm: bool = True,
    num_bins: int = 8,
    tail_bound: float = 5.0,
    seed: int = 0,
    gaussian: bool = False,
    min_variance: float = 1e-6,
) -> FlowStack:
    """K coupling blocks on R^dim, each ``[ActNorm] -> coupling -> mixing`` (base side first).

    ``kind``: ``affine`` (RealNVP, :class:`AffineCoupling`), ``spline`` (rational-quadratic,
    :class:`RQSCoupling`, identity beyond ``tail_bound``) or ``autoregressive`` (a masked
    autoregressive spline, :class:`AutoregressiveRQS`: for small dimensions; sampling takes one
    pass per dimension). ``mixing``: a fixed random permutation, an LU-decomposed
    linear map with permutation (normflows' ``LULinearPermute``), or none (masks alternate).
    ``seed`` fixes the permutations (a local generator; the global RNG is not touched).
    ``gaussian``: a learnable full-covariance :class:`GaussianLayer` at the data side (eigenvalues
    floored at ``min_variance``): initialised on training data, the stack starts as the data's
    full-covariance Gaussian."""
    if dim < 2:
        raise ValueError("a coupling flow needs at least 2 dimensions")
    if K < 1:
        raise ValueError(f"K must be >= 1, got {K}")
    gen = torch.Generator().manual_seed(seed)
    out: list[nf.flows.Flow] = []
    for k in range(K):
        if actnorm:
            out.append(ActNorm(dim, data_init=not gaussian))
        mask = torch.zeros(dim, dtype=torch.bool)
        mask[(k % 2) :: 2] = True  # passive dimensions alternate between blocks
        if kind == "affine":
            out.append(AffineCoupling(mask, context_dim, hidden, layers, tail_bound=tail_bound))
        elif kind == "spline":
            out.append(RQSCoupling(mask, context_dim, hidden, layers, num_bins, tail_bound))
        elif kind == "autoregressive":
            order = torch.arange(dim) if k % 2 == 0 else torch.arange(dim).flip(0)
            out.append(AutoregressiveRQS(dim, context_dim, hidden, layers, num_bins, tail_bound, order))
        else:
            raise ValueError(f"unknown coupling kind {kind!r}; affine, spline or autoregressive")
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
    if gaussian:
        out.append(GaussianLayer(dim, min_variance))
    return FlowStack(dim, out, context_dim)
