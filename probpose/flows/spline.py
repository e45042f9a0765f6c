"""Rational-quadratic splines (Durkan et al. 2019, "Neural Spline Flows") with linear tails, and the
coupling layer built on them.

:func:`rq_spline` computes the same function as normflows' ``unconstrained_rational_quadratic_spline``
with ``tails="linear"`` (tested to 1e-6 in float64: forward, inverse, log-det, tails) but without
masked indexing: inputs are clamped into ``[-B, B]``, every element goes through the spline, and
``torch.where`` restores the identity tails; all per-bin quantities are gathered in one call. On
small per-joint batches, where the number of tensor operations dominates, that is several times
faster for a training step.

Beyond ``[-B, B]`` the spline is the identity, so a spline coupling moves any input by at most
``2B``: a flow of such couplings and linear layers has a log-density whose negative grows
quadratically away from the data, like a Gaussian's.

Derivatives: the forward direction runs :class:`_RQSplineForward`, a hand-written first-order
backward (fast training). When a gradient is itself differentiated (``create_graph=True``:
Hessians, double backward) that backward re-derives the gradient with torch's autograd, so second
derivatives are exact; inside ``torch.func`` transforms (``vmap``, ``grad``, ``jacrev``,
``jacfwd``, ``hessian``) the spline is computed with plain tensor operations, which every transform
understands. Nothing is switched globally.
"""

from __future__ import annotations

import functools
import math

import normflows as nf
import torch
from torch import Tensor
from torch.nn import functional as F

from probpose.flows.mlp import MLP

__all__ = ["DEFAULT_MIN_BIN_WIDTH", "DEFAULT_MIN_BIN_HEIGHT", "DEFAULT_MIN_DERIVATIVE", "rq_spline", "RQSCoupling"]

DEFAULT_MIN_BIN_WIDTH = 1e-3
DEFAULT_MIN_BIN_HEIGHT = 1e-3
DEFAULT_MIN_DERIVATIVE = 1e-3


def identity_derivative(min_derivative: float = DEFAULT_MIN_DERIVATIVE) -> float:
    """The unnormalised derivative that gives a knot derivative of exactly 1 (softplus^-1(1 - min))."""
    return math.log(math.expm1(1 - min_derivative))


def rq_spline(
    inputs: Tensor,
    unnormalized_widths: Tensor,
    unnormalized_heights: Tensor,
    unnormalized_derivatives: Tensor,
    inverse: bool = False,
    tail_bound: float = 3.0,
    min_bin_width: float = DEFAULT_MIN_BIN_WIDTH,
    min_bin_height: float = DEFAULT_MIN_BIN_HEIGHT,
    min_derivative: float = DEFAULT_MIN_DERIVATIVE,
) -> tuple[Tensor, Tensor]:
    """Monotone rational-quadratic spline on ``[-B, B]`` (``B = tail_bound``), identity outside.

    Args:
        inputs: ``(...)``.
        unnormalized_widths, unnormalized_heights: ``(..., K)`` bin logits (softmax).
        unnormalized_derivatives: ``(..., K - 1)`` interior knot derivatives (softplus); the two
            boundary derivatives are 1, matching the linear tails.
        inverse: compute the inverse map (a quadratic root per element).

    Returns:
        outputs ``(...)`` and the elementwise log|d output / d input| ``(...)``.
    """
    params = torch.cat([unnormalized_widths, unnormalized_heights, unnormalized_derivatives], -1)
    shape = torch.broadcast_shapes(inputs.shape, params.shape[:-1])
    flat = params.expand(shape + params.shape[-1:]).reshape(-1, params.shape[-1]).T  # (3K - 1, N)
    out, ld = rq_spline_packed(
        inputs.expand(shape).reshape(-1),
        flat,
        inverse,
        tail_bound,
        min_bin_width,
        min_bin_height,
        min_derivative,
        param_dim=-2,
    )
    return out.view(shape), ld.view(shape)


def rq_spline_packed(
    inputs: Tensor,
    params: Tensor,
    inverse: bool = False,
    tail_bound: float = 3.0,
    min_bin_width: float = DEFAULT_MIN_BIN_WIDTH,
    min_bin_height: float = DEFAULT_MIN_BIN_HEIGHT,
    min_derivative: float = DEFAULT_MIN_DERIVATIVE,
    param_dim: int = -1,
) -> tuple[Tensor, Tensor]:
    """:func:`rq_spline` with the parameters packed as a network emits them: ``3K - 1`` values =
    widths ``K``, heights ``K``, interior derivatives ``K - 1`` (normflows' layout) along
    ``param_dim`` of ``params`` (the last by default; ``-2`` for feature-major ``(..., 3K - 1, M)``
    layouts, which need no transposition); the other dimensions match ``inputs``.

    The forward direction (the density's, the one training uses) runs :class:`_RQSplineForward`,
    with a fused analytic backward (see the module docstring for second derivatives and
    ``torch.func``); the inverse direction uses torch's autograd."""
    params = params.movedim(param_dim, -2) if param_dim != -2 else params
    k = (params.shape[-2] + 1) // 3
    if params.shape[-2] != 3 * k - 1 or k < 2:
        raise ValueError(f"params must have 3K - 1 entries with K >= 2, got {params.shape[-2]}")
    if min_bin_width * k > 1.0 or min_bin_height * k > 1.0:
        raise ValueError("minimal bin width or height too large for the number of bins")
    if inputs.dim() == 0:
        inputs, params = inputs[None], params[..., None]
    if inverse or min_bin_width != min_bin_height or torch._C._are_functorch_transforms_active():
        w, h, d = params.movedim(-2, -1).split([k, k, k - 1], dim=-1)
        return _rq_spline_autograd(inputs, w, h, d, inverse, tail_bound, min_bin_width, min_bin_height, min_derivative)
    shape = torch.broadcast_shapes(inputs.shape, params.shape[:-2] + params.shape[-1:])
    params = params.expand(shape[:-1] + params.shape[-2:-1] + shape[-1:])
    return _RQSplineForward.apply(inputs.expand(shape), params, float(tail_bound), min_bin_width, min_derivative)


@functools.lru_cache(maxsize=32)
def _bins(k: int, device: torch.device) -> Tensor:
    """Bin indices ``(K, 1)`` (cached)."""
    return torch.arange(k, device=device)[:, None]


@functools.lru_cache(maxsize=32)
def _offsets(k: int, bound: float, min_size: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """The interior knots' fixed part ``(K - 1, 1)``: ``b (2B min) - B`` (cached per setting)."""
    return (torch.arange(1, k, dtype=dtype, device=device) * (2 * bound * min_size) - bound)[:, None]


class _RQSplineForward(torch.autograd.Function):
    """The spline's forward map and log-derivative with a hand-written backward.

    Layout: ``x (*B, M)`` and ``params (*B, 3K - 1, M)``: the bins sit before the last dimension,
    so every softmax, cumulative sum, bin selection and their gradients broadcast over contiguous
    rows of ``M`` elements (small inner dimensions vectorise poorly on CPUs). The gradient with
    respect to the input and the six per-bin quantities is written in closed form and scattered
    back through the cumulative sums and softmaxes with masks: a few dozen tensor operations
    instead of autograd's graph of about a hundred, mostly in place, and the tails' bookkeeping is
    skipped when no input lies beyond the bound. Checked against autograd with ``gradcheck``.
    Widths and heights share one minimal size.

    When the backward is itself recorded (``create_graph=True``), it recomputes the spline from the
    saved inputs with torch's autograd and returns that gradient, whose graph gives exact second
    derivatives; the closed form above serves first-order backward passes only."""

    @staticmethod
    def forward(ctx, x, params, bound, min_size, min_d):  # noqa: D102
        k = (params.shape[-2] + 1) // 3
        lead, m = x.shape[:-1], x.shape[-1]
        offsets = _offsets(k, bound, min_size, x.dtype, x.device)
        inside = (x >= -bound) & (x <= bound)
        tails = not bool(inside.all())
        xc = x.clamp(-bound, bound) if tails else x
        logits = params[..., : 2 * k, :].unflatten(-2, (2, k))  # (*B, 2, K, M)
        p = (logits - logits.amax(-2, keepdim=True)).exp_()
        p /= p.sum(-2, keepdim=True)  # softmax of widths and heights over the bins
        knots = x.new_empty(lead + (2, k + 1, m))  # -B, the K - 1 interior knots, B (ends exact)
        knots[..., 0, :] = -bound
        knots[..., k, :] = bound
        inner = knots[..., 1:k, :]
        torch.cumsum(p[..., :-1, :], -2, out=inner)
        inner.mul_(2 * bound * (1 - min_size * k)).add_(offsets)
        ud = params[..., 2 * k :, :]
        derivs = x.new_empty(lead + (k + 1, m))
        derivs[..., 0, :] = 1.0
        derivs[..., k, :] = 1.0
        torch.nn.functional.softplus(ud, out=derivs[..., 1:k, :])  # type: ignore[call-arg]  # torch takes out= (its stub omits it)
        derivs[..., 1:k, :] += min_d
        idx = (xc.unsqueeze(-2) >= knots[..., 0, 1:k, :]).sum(-2, keepdim=True)  # (*B, 1, M): normflows' rule
        both = idx.unsqueeze(-3).expand(lead + (2, 1, m))
        cw, ch = knots.gather(-2, both).squeeze(-2).unbind(-2)
        cw1, ch1 = knots.gather(-2, both + 1).squeeze(-2).unbind(-2)
        d0 = derivs.gather(-2, idx).squeeze(-2)
        d1 = derivs.gather(-2, idx + 1).squeeze(-2)
        w = cw1 - cw
        s = (ch1 - ch).div_(w)  # delta, the bin's slope
        h = s * w
        theta = (xc - cw).div_(w)
        t = theta * (1 - theta)
        den = (d0 + d1 - 2 * s).mul_(t).add_(s)
        th2 = theta * theta
        num = (s * th2).addcmul_(d0, t).mul_(h)
        a = (d1 * th2).addcmul_(s, t, value=2).addcmul_(d0, (1 - theta) ** 2)
        y = ch + num / den
        logdet = torch.log(s).mul_(2).add_(torch.log(a)).sub_(torch.log(den).mul_(2))
        if tails:
            y = torch.where(inside, y, x)
            logdet = torch.where(inside, logdet, torch.zeros_like(x))
        ctx.save_for_backward(x, params, inside, idx, p, ud, w, h, s, theta, d0, d1, den, num, a)
        ctx.bound, ctx.k, ctx.scale, ctx.tails = bound, k, 1 - min_size * k, tails
        ctx.min_size, ctx.min_d = min_size, min_d
        return y, logdet

    @staticmethod
    def backward(ctx, gy, gl):  # noqa: D102
        x, params, inside, idx, p, ud, w, h, s, theta, d0, d1, den, num, a = ctx.saved_tensors
        if torch.is_grad_enabled():  # this backward is being recorded: a second derivative follows
            return (*_recorded_vjp(ctx, x, params, gy, gl), None, None, None)
        bound, k = ctx.bound, ctx.k
        t = theta * (1 - theta)
        dt = 1 - 2 * theta
        c = d0 + d1 - 2 * s
        if ctx.tails:
            zero = torch.zeros_like(gy)
            gy_in, gl_in = torch.where(inside, gy, zero), torch.where(inside, gl, zero)
        else:
            gy_in, gl_in = gy, gl
        # partial derivatives of y and of log|dy/dx| in theta, s, h, d0, d1, chained with the upstream
        inv_den = 1 / den
        q = gy_in * inv_den  # gy / den
        r = num * inv_den  # num / den = y - ch
        inv_a = 1 / a
        g_theta = q * (h * (2 * s * theta + d0 * dt) - r * c * dt) + gl_in * (
            2 * (d1 * theta + s * dt - d0 * (1 - theta)) * inv_a - 2 * c * dt * inv_den
        )
        g_s = q * (h * theta * theta - r * (1 - 2 * t)) + gl_in * (2 / s + 2 * t * inv_a - 2 * (1 - 2 * t) * inv_den)
        inv_w = 1 / w
        g_x = g_theta * inv_w
        if ctx.tails:
            g_x = torch.where(inside, g_x, gy)
        g_h = q * (s * theta * theta + d0 * t) + g_s * inv_w
        g_d0 = q * t * (h - r) + gl_in * ((1 - theta) ** 2 * inv_a - 2 * t * inv_den)
        g_d1 = -q * r * t + gl_in * (theta * theta * inv_a - 2 * t * inv_den)
        # per bin b: knot b = -B + 2B sum_{j<b} size_j, and size b, of x (widths) and y (heights).
        # Through the softmax: g_logit_b = p_b (g_p_b - sum_j p_j g_p_j), where g_p_b is g_knot for
        # the bins below the input's, g_size for its own, 0 above; the sum is g_knot P_below + g_size p_own.
        bins = _bins(k, gy.device)
        below = (bins < idx).to(gy.dtype).unsqueeze(-3)  # (*B, 1, K, M)
        at = (bins == idx).to(gy.dtype).unsqueeze(-3)
        scale = 2 * bound * ctx.scale
        g_knot = torch.stack([-g_theta * inv_w, gy_in], -2).mul_(scale).unsqueeze(-2)  # (*B, 2, 1, M)
        g_size = torch.stack([-(g_theta * theta + g_s * s) * inv_w, g_h], -2).mul_(scale).unsqueeze(-2)
        p_below = (p * below).sum(-2, keepdim=True)  # (*B, 2, 1, M)
        p_own = (p * at).sum(-2, keepdim=True)
        total = g_knot * p_below + g_size * p_own
        g_params = gy.new_empty(gy.shape[:-1] + (3 * k - 1, gy.shape[-1]))
        g_logits = g_params[..., : 2 * k, :].unflatten(-2, (2, k))
        torch.mul(below, g_knot, out=g_logits)
        g_logits.addcmul_(at, g_size).sub_(total).mul_(p)
        # interior derivative j (1 .. K-1) = min_d + softplus(ud[j - 1]); bin b uses derivatives b and b + 1
        interior = bins[1:]
        g_ud = torch.where(interior == idx, g_d0.unsqueeze(-2), torch.where(interior == idx + 1, g_d1.unsqueeze(-2), 0))
        torch.mul(torch.sigmoid(ud), g_ud, out=g_params[..., 2 * k :, :])
        return g_x, g_params, None, None, None


def _recorded_vjp(ctx, x: Tensor, params: Tensor, gy: Tensor, gl: Tensor) -> tuple[Tensor | None, Tensor | None]:
    """The vector-Jacobian product of :class:`_RQSplineForward` with its own graph: the spline
    recomputed from the saved inputs with torch's autograd (the same function to rounding)."""
    need_x, need_params = ctx.needs_input_grad[:2]
    xs = x if x.requires_grad else x.detach().requires_grad_(need_x)
    ps = params if params.requires_grad else params.detach().requires_grad_(need_params)
    wanted = [t for t, need in ((xs, need_x), (ps, need_params)) if need]
    if not wanted:
        return None, None
    k = ctx.k
    with torch.enable_grad():
        w, h, d = ps.movedim(-2, -1).split([k, k, k - 1], dim=-1)
        y, ld = _rq_spline_autograd(xs, w, h, d, False, ctx.bound, ctx.min_size, ctx.min_size, ctx.min_d)
        grads = iter(torch.autograd.grad((y, ld), wanted, (gy, gl), create_graph=True, allow_unused=True))
    gx = next(grads) if need_x else None
    gp = next(grads) if need_params else None
    return gx, gp


def _rq_spline_autograd(
    inputs: Tensor,
    unnormalized_widths: Tensor,
    unnormalized_heights: Tensor,
    unnormalized_derivatives: Tensor,
    inverse: bool = False,
    tail_bound: float = 3.0,
    min_bin_width: float = DEFAULT_MIN_BIN_WIDTH,
    min_bin_height: float = DEFAULT_MIN_BIN_HEIGHT,
    min_derivative: float = DEFAULT_MIN_DERIVATIVE,
) -> tuple[Tensor, Tensor]:
    """:func:`rq_spline` with torch's autograd through every operation (both directions)."""
    bound = float(tail_bound)
    k = unnormalized_widths.shape[-1]
    if min_bin_width * k > 1.0 or min_bin_height * k > 1.0:
        raise ValueError("minimal bin width or height too large for the number of bins")
    inside = (inputs >= -bound) & (inputs <= bound)
    x = inputs.clamp(-bound, bound)

    # widths and heights together: (..., 2, K). The softmax is written out (torch's kernel is
    # several times slower on a last dimension of size K).
    logits = torch.stack([unnormalized_widths, unnormalized_heights], -2)
    e = torch.exp(logits - logits.amax(-1, keepdim=True))
    p = e / e.sum(-1, keepdim=True)
    # knot b = -B + 2B (b min + (1 - K min) cumsum(p)_b), the same operations as the fused forward, so
    # the two directions invert each other to rounding
    minimum = torch.tensor([[min_bin_width], [min_bin_height]], dtype=x.dtype, device=x.device)
    offsets = torch.arange(1, k, dtype=x.dtype, device=x.device) * (2 * bound * minimum) - bound
    inner = torch.cumsum(p[..., :-1], dim=-1) * (2 * bound * (1 - minimum * k)) + offsets
    end = torch.full_like(inner[..., :1], bound)
    knots = torch.cat([-end, inner, end], -1)  # (..., 2, K + 1): x knots, y knots; ends exact
    ones = torch.ones_like(unnormalized_derivatives[..., :1])
    interior = min_derivative + F.softplus(unnormalized_derivatives.contiguous())  # softplus is slow on strides
    derivs = torch.cat([ones, interior, ones], -1)  # (..., K + 1), 1 at both ends (linear tails)

    # the bin of each input: the number of interior knots at or below it (normflows' rule); then
    # every per-bin quantity in one gather: knots k and k + 1 of x, y and the derivatives
    search = knots[..., 1 if inverse else 0, 1:-1]
    idx = (x.unsqueeze(-1) >= search).sum(-1, keepdim=True)
    table = torch.cat([knots, derivs.unsqueeze(-2)], -2)  # (..., 3, K + 1)
    pair = torch.cat([idx, idx + 1], -1).unsqueeze(-2).expand(*table.shape[:-1], 2)
    g = table.gather(-1, pair)  # (..., 3, 2)
    cw, ch, d0 = g[..., 0].unbind(-1)
    cw1, ch1, d1 = g[..., 1].unbind(-1)
    w, h = cw1 - cw, ch1 - ch
    delta = h / w
    slope_sum = d0 + d1 - 2 * delta

    if inverse:
        dy = x - ch
        a = dy * slope_sum + h * (delta - d0)
        b = h * d0 - dy * slope_sum
        c = -delta * dy
        disc = (b * b - 4 * a * c).clamp_min(0)
        theta = (2 * c) / (-b - torch.sqrt(disc))
        out = theta * w + cw
        t1t = theta * (1 - theta)
    else:
        theta = (x - cw) / w
        t1t = theta * (1 - theta)
        out = ch + h * (delta * theta * theta + d0 * t1t) / (delta + slope_sum * t1t)
    denominator = delta + slope_sum * t1t
    numerator = delta * delta * (d1 * theta * theta + 2 * delta * t1t + d0 * (1 - theta) ** 2)
    logabsdet = torch.log(numerator) - 2 * torch.log(denominator)
    if inverse:
        logabsdet = -logabsdet
    return torch.where(inside, out, inputs), torch.where(inside, logabsdet, torch.zeros_like(logabsdet))


class RQSCoupling(nf.flows.Flow):
    """A rational-quadratic spline coupling with an optional context.

    The dimensions where ``mask`` is True pass through and, with the context, parameterise a
    monotone spline on ``[-B, B]`` (identity beyond) for each of the others. The conditioner is a
    :class:`~probpose.flows.MLP` whose last layer starts at the identity spline (equal bins, unit
    derivatives), so the coupling starts as the identity. A custom ``conditioner`` (any module
    mapping ``(N, n_passive + context_dim)`` to ``(N, n_active * (3K - 1))``) may replace it.

    Convention (normflows'): ``forward`` maps base to data (the spline's inverse), ``inverse``
    data to base (the spline itself, analytic); each returns its log|det| ``(N,)``."""

    def __init__(
        self,
        mask: Tensor,
        context_dim: int = 0,
        hidden: int = 128,
        layers: int = 2,
        num_bins: int = 8,
        tail_bound: float = 5.0,
        conditioner: torch.nn.Module | None = None,
    ) -> None:
        super().__init__()
        mask = mask.bool()
        self.register_buffer("mask", mask)
        self.n_cond = int(mask.sum())
        self.n_out = int((~mask).sum())
        if self.n_out == 0:
            raise ValueError("the mask leaves no dimension to transform")
        order = torch.cat([mask.nonzero().flatten(), (~mask).nonzero().flatten()])
        self.register_buffer("order", order, persistent=False)
        self.register_buffer("inv_order", torch.argsort(order), persistent=False)
        self.context_dim = context_dim
        self.num_bins = num_bins
        self.tail_bound = float(tail_bound)
        n_params = self.n_out * (3 * num_bins - 1)
        if self.n_cond + context_dim == 0:
            raise ValueError("a coupling needs passive dimensions or a context to condition on")
        if conditioner is None:
            conditioner = MLP(self.n_cond + context_dim, n_params, hidden, layers, zero_last=True)
            with torch.no_grad():
                bias = conditioner.last.bias.view(self.n_out, 3 * num_bins - 1)
                bias[:, 2 * num_bins :] = identity_derivative()
        self.net = conditioner

    def _split(self, v: Tensor) -> tuple[Tensor, Tensor]:
        return v.index_select(1, self.order).split([self.n_cond, self.n_out], dim=1)

    def _join(self, passive: Tensor, active: Tensor) -> Tensor:
        return torch.cat([passive, active], dim=1).index_select(1, self.inv_order)

    def _spline(self, v: Tensor, context: Tensor | None, inverse: bool) -> tuple[Tensor, Tensor]:
        passive, active = self._split(v)
        cond = passive
        if self.context_dim:
            if context is None:
                raise ValueError("this coupling needs a context")
            cond = torch.cat([passive, context], dim=-1)
        p = 3 * self.num_bins - 1
        if isinstance(self.net, MLP):  # feature-major: (n_out, P, N), no transposition of the parameters
            params = self.net.forward_feature_major(cond).view(self.n_out, p, v.shape[0])
            out, ld = rq_spline_packed(active.T, params, inverse=inverse, tail_bound=self.tail_bound, param_dim=-2)
            return self._join(passive, out.T), ld.sum(0)
        params = self.net(cond).view(v.shape[0], self.n_out, p)
        out, ld = rq_spline_packed(active, params, inverse=inverse, tail_bound=self.tail_bound)
        return self._join(passive, out), ld.sum(-1)

    def forward(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._spline(z, context, inverse=True)

    def inverse(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._spline(x, context, inverse=False)
