"""A full-covariance Gaussian layer: ``x = mean + L z`` with ``L`` lower-triangular (the Cholesky
factor of the training data's covariance).

Placed at the data side of a flow and fitted to training data at initialisation (mean and floored
covariance), it makes the flow start as exactly the full-covariance Gaussian of the data: the
couplings (the identity at initialisation) can then only add to the best Gaussian, instead of
having to learn every linear correlation of a 150-dimensional pose by gradient descent. ``mean`` and
``L`` are fixed buffers: optimising ``L`` directly takes steps of the learning rate's size along
directions whose standard deviation may be 1e-3, which diverges; the learnable ActNorm and mixing
layers next to it adjust the linear part in whitened coordinates instead. Because ``L`` is
lower-triangular, ``z_i`` depends on ``x_1 .. x_i`` only: in an order where parents precede
children a per-joint factorisation stays exact.
"""

from __future__ import annotations

import normflows as nf
import torch
from torch import Tensor

__all__ = ["floored_covariance", "moments_to_covariance", "GaussianLayer"]


def moments_to_covariance(count: Tensor | float, s1: Tensor, s2: Tensor) -> tuple[Tensor, Tensor]:
    """Mean ``(..., D)`` and maximum-likelihood covariance ``(..., D, D)`` (divided by the count)
    from the sufficient statistics of (possibly weighted) data: the count (``(...)`` or a
    number), ``s1 = sum w x`` ``(..., D)`` and ``s2 = sum w x x^T`` ``(..., D, D)``. Used by every
    closed-form Gaussian fit (per-joint, full, the mixture's M-step), so they agree to the bit."""
    count = torch.as_tensor(count, dtype=s1.dtype, device=s1.device)
    mean = s1 / count.unsqueeze(-1)
    return mean, s2 / count[..., None, None] - mean.unsqueeze(-1) * mean.unsqueeze(-2)


def floored_covariance(cov: Tensor, min_variance: float) -> Tensor:
    """The nearest covariance with every eigenvalue >= ``min_variance`` (eigenvalues clipped): the
    constrained maximum-likelihood estimate under ``Sigma >= min_variance I``."""
    cov = 0.5 * (cov + cov.transpose(-1, -2))
    vals, vecs = torch.linalg.eigh(cov)
    return (vecs * vals.clamp_min(min_variance).unsqueeze(-2)) @ vecs.transpose(-1, -2)


class GaussianLayer(nf.flows.Flow):
    """``forward``: base -> data, ``x = mean + L z``; ``inverse``: ``z = L^-1 (x - mean)``; log|det|
    ``sum log diag L`` (and its negative). ``mean (D,)`` and ``scale_tril (D, D)`` are buffers; the
    identity until :meth:`initialize`."""

    def __init__(self, dim: int, min_variance: float = 1e-6) -> None:
        super().__init__()
        self.dim, self.min_variance = dim, min_variance
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("scale_tril", torch.eye(dim))
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        """Mean and (floored) covariance of the data-side batch ``x (N, D)``, in float64."""
        xd = x.double()
        cov = floored_covariance(torch.cov(xd.T, correction=0).reshape(self.dim, self.dim), self.min_variance)
        self.mean.copy_(xd.mean(0))
        self.scale_tril.copy_(torch.linalg.cholesky(cov))
        self.initialized.fill_(True)

    def _log_det(self, v: Tensor) -> Tensor:
        """``log |det L|`` for each row of ``v (N, D)``."""
        return self.scale_tril.diagonal().log().sum().expand_as(v[:, 0])

    def forward(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.mean + z @ self.scale_tril.T, self._log_det(z)

    def inverse(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        z = torch.linalg.solve_triangular(self.scale_tril, (x - self.mean).T, upper=False).T
        return z, -self._log_det(x)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, min_variance={self.min_variance:g}"
