"""Rational-quadratic spline couplings."""

from __future__ import annotations

import math

import normflows as nf
import torch

__all__ = ["spline_coupling"]


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
