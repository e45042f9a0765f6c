"""Grouped flows: one small flow per group (per joint) with its own weights, all groups evaluated in
one batched call (``torch.baddbmm`` over the groups).

Tensors are feature-major, ``(G, D, M)``: ``G`` groups (joints), ``D`` dimensions (3), ``M``
rows each (poses), so that the networks' batched matrix products emit their outputs in the layout
the spline wants without a transposition. Every layer takes ``index``, the ``(G,)`` group ids, so a
subset of groups -- one depth level of a kinematic tree, when sampling -- is evaluated with the same
weights.

Layers (normflows' direction convention: ``forward`` base -> data, ``inverse`` data -> base, each
returning its log|det| ``(G, M)``):

- :class:`GroupedActNorm`: per-group shift and log-scale, initialised on training data.
- :class:`GroupedAutoregressive`: a masked autoregressive transform within each group's ``D``
  dimensions, conditioned on a per-row context; ``spline`` (rational-quadratic, identity beyond
  ``tail_bound``) or ``affine`` (bounded log-scale; one affine layer is a full conditional
  Gaussian). Dimensions taken in ``order``; starts as the identity.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import Tensor, nn

from probpose.flows.affine import bounded_affine, squash
from probpose.flows.spline import identity_derivative, rq_spline_packed

__all__ = ["GroupedMaskedMLP", "GroupedActNorm", "GroupedAutoregressive", "GroupedFlowStack"]


class GroupedMaskedMLP(nn.Module):
    """A MADE network per group: ``(G', d_in, M) -> (G', d_out, M)`` with the weights of groups
    ``index``. Output ``m`` depends only on inputs of lower degree (degrees as in
    :class:`~probpose.flows.MaskedMLP`); ReLU; the last layer starts at zero."""

    def __init__(self, groups: int, in_degrees: Tensor, out_degrees: Tensor, hidden: int, layers: int) -> None:
        super().__init__()
        top = int(out_degrees.max())
        hid = torch.arange(hidden) % max(top, 1)
        shapes, masks = [], []
        prev = in_degrees
        for _ in range(layers):
            shapes.append((hidden, len(prev)))
            masks.append((hid[:, None] >= prev[None, :]).float())
            prev = hid
        shapes.append((len(out_degrees), len(prev)))
        masks.append((out_degrees[:, None] > prev[None, :]).float())
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for k, ((d_out, d_in), mask) in enumerate(zip(shapes, masks, strict=True)):
            bound = 1 / math.sqrt(d_in)
            last = k == len(shapes) - 1
            w = torch.zeros(groups, d_out, d_in) if last else torch.empty(groups, d_out, d_in).uniform_(-bound, bound)
            b = torch.zeros(groups, d_out, 1) if last else torch.empty(groups, d_out, 1).uniform_(-bound, bound)
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(b))
            self.register_buffer(f"mask{k}", mask, persistent=False)

    def forward(self, v: Tensor, index: Tensor) -> Tensor:
        n = len(self.weights)
        for k in range(n):
            v = torch.baddbmm(self.biases[k][index], self.weights[k][index] * getattr(self, f"mask{k}"), v)
            if k < n - 1:
                v = torch.relu(v)
        return v


class GroupedActNorm(nn.Module):
    """Per-group ``x = z * exp(log_scale) + shift``, initialised by :meth:`initialize` so that
    training data becomes zero-mean, unit-variance in each group and dimension (``data_init=False``:
    it starts as the identity, for data that is already whitened)."""

    def __init__(self, groups: int, dim: int, data_init: bool = True) -> None:
        super().__init__()
        self.data_init = data_init
        self.shift = nn.Parameter(torch.zeros(groups, dim, 1))
        self.log_scale = nn.Parameter(torch.zeros(groups, dim, 1))

    @torch.no_grad()
    def initialize(self, x: Tensor, index: Tensor, context: Tensor | None = None) -> None:
        """From data-side values ``x (G', D, M)`` of groups ``index``."""
        if not self.data_init:
            return
        self.shift[index] = x.mean(-1, keepdim=True)
        self.log_scale[index] = x.std(-1, keepdim=True, correction=0).clamp_min(1e-6).log()

    def forward(self, z: Tensor, index: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        s = self.log_scale[index]
        return z * s.exp() + self.shift[index], s.sum(1).expand(z.shape[0], z.shape[2])

    def inverse(self, x: Tensor, index: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        s = self.log_scale[index]
        return (x - self.shift[index]) * torch.exp(-s), (-s.sum(1)).expand_as(x[:, 0])


class GroupedAutoregressive(nn.Module):
    """Per group, ``x_i = f_i(z_i; x_<i, context)`` with ``f_i`` a rational-quadratic spline
    (``kind="spline"``; identity beyond ``tail_bound``) or affine (``kind="affine"``: log-scale
    soft-clamped to ``+-scale_cap``, slope 1 beyond ``tail_bound``, conditioner inputs squashed to
    ``+-tail_bound``)."""

    order: Tensor

    def __init__(
        self,
        groups: int,
        dim: int,
        context_dim: int,
        hidden: int = 32,
        layers: int = 2,
        kind: Literal["spline", "affine"] = "spline",
        num_bins: int = 8,
        tail_bound: float = 5.0,
        order: Tensor | None = None,
        scale_cap: float = 3.0,
    ) -> None:
        super().__init__()
        order = torch.arange(dim) if order is None else torch.as_tensor(order)
        if sorted(order.tolist()) != list(range(dim)):
            raise ValueError(f"order must be a permutation of 0..{dim - 1}")
        if kind not in ("spline", "affine"):
            raise ValueError(f"kind must be 'spline' or 'affine', got {kind!r}")
        self.dim, self.kind, self.num_bins = dim, kind, num_bins
        self.tail_bound, self.scale_cap, self.context_dim = float(tail_bound), scale_cap, context_dim
        self.register_buffer("order", order, persistent=False)
        degree = torch.empty(dim, dtype=torch.long)
        degree[order] = torch.arange(1, dim + 1)
        self.p = 3 * num_bins - 1 if kind == "spline" else 2
        in_degrees = torch.cat([degree, torch.zeros(context_dim, dtype=torch.long)])
        self.net = GroupedMaskedMLP(groups, in_degrees, degree.repeat_interleave(self.p), hidden, layers)
        if kind == "spline":
            with torch.no_grad():
                self.net.biases[-1].view(groups, dim, self.p)[:, :, 2 * num_bins :] = identity_derivative()

    def _params(self, x: Tensor, index: Tensor, context: Tensor | None) -> Tensor:
        """``x (G', D, M)`` -> ``(G', D, P, M)``."""
        inp = squash(x, self.tail_bound) if self.kind == "affine" else x
        if self.context_dim:
            assert context is not None  # checked by the caller
            inp = torch.cat([inp, context], 1)
        out = self.net(inp, index)
        return out.unflatten(1, (self.dim, self.p))

    def _transform(self, v: Tensor, params: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        """Elementwise on ``v (G', D', M)`` with ``params (G', D', P, M)``: ``inverse=False`` data -> base."""
        if self.kind == "spline":
            return rq_spline_packed(v, params, inverse=inverse, tail_bound=self.tail_bound, param_dim=-2)
        shift, raw = params.unbind(-2)
        s = self.scale_cap * torch.tanh(raw / self.scale_cap)
        return bounded_affine(v, shift, s, self.tail_bound, inverse=not inverse)

    def inverse(self, x: Tensor, index: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        z, ld = self._transform(x, self._params(x, index, context), inverse=False)
        return z, ld.sum(1)

    def forward(self, z: Tensor, index: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """One pass per dimension (``x_i`` needs ``x_<i`` only), sharing what the passes share: the
        groups' masked weights are gathered once, the context's part of the first layer is computed
        once, the first pass skips the (still zero) data part, and each pass computes only its own
        dimension's outputs. The same maths as :meth:`_params` (tested against the inverse)."""
        net = self.net
        last = len(net.weights) - 1
        ws = [net.weights[k][index] * getattr(net, f"mask{k}") for k in range(last + 1)]
        bs = [net.biases[k][index] for k in range(last + 1)]
        d, p = self.dim, self.p

        def layer(k: int, i: int) -> tuple[Tensor, Tensor]:
            """Layer ``k``'s weights and bias; of the last layer only dimension ``i``'s outputs."""
            return (ws[k], bs[k]) if k < last else (ws[k][:, i * p : (i + 1) * p], bs[k][:, i * p : (i + 1) * p])

        def context_part(w: Tensor, b: Tensor) -> Tensor:
            if not self.context_dim:
                return b.expand(-1, -1, z.shape[-1])
            assert context is not None  # checked by the caller
            return torch.baddbmm(b, w[:, :, d:], context)

        shared = context_part(ws[0], bs[0]) if last > 0 else None  # the first layer's context part, once
        cols: list[Tensor] = [torch.zeros_like(z[:, :1])] * d
        log_det = torch.zeros_like(z[:, 0])
        for step, i in enumerate(self.order.tolist()):
            w, b = layer(0, i)
            h = shared if shared is not None else context_part(w, b)
            if step > 0:  # the first pass's data part is zero: every x is still zero
                x = torch.cat(cols, 1)
                h = torch.baddbmm(h, w[:, :, :d], squash(x, self.tail_bound) if self.kind == "affine" else x)
            for k in range(1, last + 1):
                w, b = layer(k, i)
                h = torch.baddbmm(b, w, torch.relu(h))
            xi, ldi = self._transform(z[:, i : i + 1], h.unsqueeze(1), inverse=True)
            cols[i] = xi
            log_det = log_det + ldi[:, 0]
        return torch.cat(cols, 1), log_det


class GroupedFlowStack(nn.Module):
    """Grouped layers applied base -> data in order, over a standard-normal base on R^dim per row."""

    def __init__(self, dim: int, layers: list[nn.Module], context_dim: int = 0) -> None:
        super().__init__()
        self.dim, self.context_dim = dim, context_dim
        self.layers = nn.ModuleList(layers)

    def _layers(self) -> list[Any]:
        """The layers, base side first (each a grouped flow layer)."""
        return list(self.layers)

    def inverse_and_log_det(self, x: Tensor, index: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``x (G', D, M) -> z`` and log|det dz/dx| ``(G', M)``."""
        log_det = torch.zeros_like(x[:, 0])  # (G', M); a tensor op: traces for any batch size
        for layer in reversed(self._layers()):
            x, ld = layer.inverse(x, index, context)
            log_det = log_det + ld
        return x, log_det

    def forward_and_log_det(self, z: Tensor, index: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``z (G', D, M) -> x`` and log|det dx/dz| ``(G', M)``."""
        log_det = torch.zeros_like(z[:, 0])
        for layer in self._layers():
            z, ld = layer(z, index, context)
            log_det = log_det + ld
        return z, log_det

    def base_log_prob(self, z: Tensor) -> Tensor:
        """``(G', D, M) -> (G', M)``."""
        return -0.5 * (z * z).sum(1) - 0.5 * self.dim * math.log(2 * math.pi)

    def log_prob(self, x: Tensor, index: Tensor, context: Tensor | None = None) -> Tensor:
        z, log_det = self.inverse_and_log_det(x, index, context)
        return self.base_log_prob(z) + log_det

    @torch.no_grad()
    def initialize(self, x: Tensor, index: Tensor, context: Tensor | None = None) -> None:
        """Initialise every :class:`GroupedActNorm` from training data ``x (G', D, M)``."""
        for layer in reversed(self._layers()):
            if isinstance(layer, GroupedActNorm):
                layer.initialize(x, index, context)
            x, _ = layer.inverse(x, index, context)
