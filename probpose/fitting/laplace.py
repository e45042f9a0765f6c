"""The Laplace approximation at a mode: a Gaussian per frame whose precision is the Hessian of the
negative log joint, by finite differences of its gradient, floored to stay positive definite.
"""

from __future__ import annotations

import logging
from typing import Literal

import pyro
import torch
from torch import Tensor

from probpose.fitting.model import PoseFit
from probpose.fitting.values import flatten_sites, log_joint, unflatten_sites

log = logging.getLogger(__name__)

__all__ = ["laplace"]


def laplace(
    fit: PoseFit,
    values: dict[str, Tensor],
    step: float = 1e-4,
    min_precision: float = 1e-6,
    method: Literal["autograd", "differences"] = "autograd",
) -> tuple[Tensor, Tensor]:
    """The Laplace approximation at ``values`` (a MAP), per frame: the Hessian ``H_n`` ``(N, D, D)``
    of ``-log p(obs, latents)`` in frame ``n``'s flat latent vector (the sites of ``values`` in
    order: pose or z, then the root unless known) and the covariance's Cholesky factor
    ``(N, D, D)`` of ``H_n^-1``.

    Without the smoothness factor the log joint is a sum over frames, so the Hessian is exactly
    block-diagonal and one batched Hessian-vector product per coordinate gives all frames' blocks.
    ``method="autograd"``: double backward (exact through splines too: their fused backward
    re-derives itself with autograd when recorded, ``probpose/flows/spline.py``); ``"differences"``:
    central differences of gradients (``step`` in the latent's units), which across the kinks of
    ReLU conditioners are noise, so only for smooth models. Eigenvalues
    are taken by absolute value and floored at ``min_precision``: flat directions (a joint neither
    the prior nor the data constrain) get a wide but finite spread, and a point that is not a
    strict minimum gets the local curvature's magnitude (both are logged). With ``smooth > 0``
    the smoothness factor's curvature is left out (the Hessian is each frame's own; the guide is
    per frame)."""
    fit = fit.without_smoothness()
    base = flatten_sites(values)
    n, d = base.shape

    def grad(x: Tensor, create_graph: bool = False) -> Tensor:
        with pyro.poutine.block(), fit.frozen_prior():
            nlp = -log_joint(fit, unflatten_sites(x, values))
        (g,) = torch.autograd.grad(nlp, x, create_graph=create_graph)
        return g

    if method == "autograd":
        x = base.clone().requires_grad_(True)
        g = grad(x, create_graph=True)
        hess = torch.stack([torch.autograd.grad(g[:, i].sum(), x, retain_graph=True)[0] for i in range(d)], -2)
    elif method == "differences":
        cols = []
        for i in range(d):
            e = torch.zeros(d, dtype=base.dtype)
            e[i] = step
            plus = grad((base + e).requires_grad_(True))
            minus = grad((base - e).requires_grad_(True))
            cols.append((plus - minus) / (2 * step))  # (N, D): column i of each block
        hess = torch.stack(cols, -1)
    else:
        raise ValueError(f"method must be 'autograd' or 'differences', got {method!r}")
    hess = 0.5 * (hess + hess.transpose(-1, -2)).detach()
    # H^-1 = A A^T with A = V diag(|lambda|^-1/2); its Cholesky factor from the QR of A^T (stable
    # however wide the eigenvalues' range), in float64
    evals, evecs = torch.linalg.eigh(hess.double())
    bad = evals < min_precision
    if bad.any():
        log.info(
            "laplace: %d of %d Hessian eigenvalues below %g (most negative %.3g) taken by absolute value and floored",
            int(bad.sum()),
            evals.numel(),
            min_precision,
            float(evals.min()),
        )
    a = evecs * evals.abs().clamp_min(min_precision).rsqrt().unsqueeze(-2)
    r = torch.linalg.qr(a.transpose(-1, -2)).R
    tril = r.transpose(-1, -2)
    tril = tril * torch.sign(torch.diagonal(tril, dim1=-2, dim2=-1)).unsqueeze(-2)  # positive diagonal
    return hess, tril.to(base.dtype)
