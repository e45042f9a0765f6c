"""Our rational-quadratic spline and coupling against normflows' implementation (the reference), in
float64: forward, inverse, log-determinants and the linear tails."""

import math

import pytest
import torch
from normflows.flows.neural_spline.coupling import PiecewiseRationalQuadraticCoupling
from normflows.nets.resnet import ResidualNet
from normflows.utils import splines
from torch import nn

from probpose.flows import RQSCoupling, rq_spline

F64 = torch.float64


def _params(n, d, k, seed=0, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    return [scale * torch.randn(n, d, m, generator=g, dtype=F64) for m in (k, k, k - 1)]


@pytest.mark.parametrize("inverse", [False, True])
@pytest.mark.parametrize("bins, bound", [(8, 3.0), (4, 5.0), (16, 1.5)])
def test_spline_equals_normflows(inverse, bins, bound):
    g = torch.Generator().manual_seed(1)
    x = 2 * bound * torch.randn(4000, 3, generator=g, dtype=F64)  # about a third lands in the tails
    x[:5, 0] = torch.tensor([-bound, bound, -bound - 1e-9, bound + 1e-9, 0.0], dtype=F64)  # the tail edges
    uw, uh, ud = _params(4000, 3, bins)
    ref, ref_ld = splines.unconstrained_rational_quadratic_spline(
        x, uw, uh, ud, inverse=inverse, tails="linear", tail_bound=bound
    )
    out, ld = rq_spline(x, uw, uh, ud, inverse=inverse, tail_bound=bound)
    assert (out - ref).abs().max() < 1e-6 and (ld - ref_ld).abs().max() < 1e-6
    tails = x.abs() > bound
    assert tails.sum() > 1000 and torch.equal(out[tails], x[tails]) and (ld[tails] == 0).all()


def test_spline_inverse_and_logdet_against_autograd():
    uw, uh, ud = _params(300, 1, 8, seed=2)
    x = (4 * torch.rand(300, 1, dtype=F64) - 2).requires_grad_()
    y, ld = rq_spline(x, uw, uh, ud, tail_bound=2.5)
    (grad,) = torch.autograd.grad(y.sum(), x)
    assert (grad.log() - ld).abs().max() < 1e-10  # elementwise: log dy/dx
    back, ld_inv = rq_spline(y.detach(), uw, uh, ud, inverse=True, tail_bound=2.5)
    assert (back - x.detach()).abs().max() < 1e-8 and (ld + ld_inv).abs().max() < 1e-8
    xs = torch.linspace(-4, 4, 2001, dtype=F64)[:, None]
    ys, _ = rq_spline(xs, *(p[:1].expand(2001, 1, -1) for p in (uw, uh, ud)), tail_bound=2.5)
    assert (ys.diff(dim=0) > 0).all()  # monotone, through the tails


class _NormflowsConditioner(nn.Module):
    """normflows' ResidualNet in our conditioner slot, with normflows' scaling of the bin logits."""

    def __init__(self, net, n_passive, n_out, bins, hidden):
        super().__init__()
        self.net, self.n_passive, self.n_out, self.bins, self.hidden = net, n_passive, n_out, bins, hidden

    def forward(self, cond):
        context = cond[:, self.n_passive :] if cond.shape[1] > self.n_passive else None
        out = self.net(cond[:, : self.n_passive], context).view(len(cond), self.n_out, -1)
        scale = torch.ones(out.shape[-1], dtype=out.dtype)
        scale[: 2 * self.bins] = 1 / math.sqrt(self.hidden)
        return (out * scale).flatten(1)


@pytest.mark.parametrize("context_dim", [0, 4])
def test_coupling_equals_normflows_coupling(context_dim):
    torch.manual_seed(0)
    dim, bins, hidden, bound = 7, 6, 16, 2.0
    nf_mask = torch.zeros(dim, dtype=torch.int64)
    nf_mask[1::2] = 1  # normflows: 1 = transformed
    ref = PiecewiseRationalQuadraticCoupling(
        nf_mask,
        lambda i, o: ResidualNet(i, o, hidden, context_features=context_dim or None, num_blocks=2),
        num_bins=bins,
        tails="linear",
        tail_bound=bound,
        apply_unconditional_transform=False,
    ).double()
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.3 * torch.randn_like(p))
    n_passive = int((nf_mask == 0).sum())
    adapter = _NormflowsConditioner(ref.transform_net, n_passive, dim - n_passive, bins, hidden)
    ours = RQSCoupling(nf_mask == 0, context_dim, num_bins=bins, tail_bound=bound, conditioner=adapter).double()
    x = 1.5 * torch.randn(500, dim, dtype=F64)
    ctx = torch.randn(500, context_dim, dtype=F64) if context_dim else None
    z_ref, ld_ref = ref(x, ctx)
    z, ld = ours.inverse(x, ctx)  # data -> base: the spline itself
    assert (z - z_ref).abs().max() < 1e-6 and (ld - ld_ref).abs().max() < 1e-6
    x_ref, ldi_ref = ref.inverse(z_ref, ctx)
    x2, ldi = ours(z, ctx)  # base -> data
    assert (x2 - x_ref).abs().max() < 1e-6 and (ldi - ldi_ref).abs().max() < 1e-6
    assert (x2 - x).abs().max() < 1e-9


def test_a_new_coupling_is_the_identity():
    c = RQSCoupling(torch.tensor([True, False, True, False]), context_dim=3).double()
    x = 2 * torch.randn(100, 4, dtype=F64)
    z, ld = c.inverse(x, torch.randn(100, 3, dtype=F64))
    assert (z - x).abs().max() < 1e-6 and ld.abs().max() < 1e-6  # parameters initialised in float32


def test_second_derivatives_through_the_fused_backward_are_exact():
    """gradgradcheck of the forward spline (inside and beyond the bound) through the fused
    Function, whose backward re-derives itself with autograd when recorded; its Hessian equals the
    all-autograd spline's (the closed-form first-order backward alone would miss terms)."""
    from probpose.flows.spline import _rq_spline_autograd, rq_spline_packed

    torch.manual_seed(0)
    x = (torch.randn(3, 5, dtype=torch.float64) * 2).requires_grad_(True)
    w = torch.randn(3, 23, 5, dtype=torch.float64)

    def f(x):
        params = w * (1 + 0.1 * x.sum(-1))[:, None, None]  # parameters depend on the input too
        y, ld = rq_spline_packed(x, params, tail_bound=3.0, param_dim=-2)
        return (y.square() + ld).sum()

    def reference(x):
        params = (w * (1 + 0.1 * x.sum(-1))[:, None, None]).movedim(-2, -1)
        y, ld = _rq_spline_autograd(x, *params.split([8, 8, 7], -1), tail_bound=3.0)
        return (y.square() + ld).sum()

    assert torch.autograd.gradgradcheck(lambda x: f(x), (x,))
    fused = torch.autograd.functional.hessian(f, x.detach())
    exact = torch.autograd.functional.hessian(reference, x.detach())
    torch.testing.assert_close(fused, exact, rtol=1e-9, atol=1e-9)
    assert exact.abs().max() > 0.1  # a Hessian with terms to miss
