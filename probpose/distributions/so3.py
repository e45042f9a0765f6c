"""An isotropic Gaussian on SO(3) in the tangent space at its mean, with its exact normaliser.

With respect to the normalised Haar measure on SO(3)::

    p_Haar(R | M, sigma) = exp(-phi^2 / (2 sigma^2)) / Z(sigma),   phi = angle of M^T R in [0, pi]
    Z(sigma) = (1/pi) * integral_0^pi exp(-phi^2 / (2 sigma^2)) (1 - cos phi) dphi

(the Haar measure of rotations at angle phi from M has density (1 - cos phi)/pi in phi). The
distribution here is over the canonical axis-angle vector of R, so its ``log_prob`` is a density
with respect to Lebesgue measure on the ball of radius pi, in the same units as every prior
(docs/architecture.md, "Event space and metrics"): ``log p_aa(x) = log p_Haar(R(x)) + log_haar_correction(x)``.
"""

from __future__ import annotations

import math

import torch
from pyro.distributions import TorchDistribution, constraints
from torch import Tensor

from probpose.distributions.constraints import axis_angle_ball, rotation_matrix
from probpose.rotations import (
    axis_angle_to_matrix,
    canonical_axis_angle,
    geodesic_distance,
    log_haar_correction,
    matrix_to_axis_angle,
)

__all__ = ["TangentGaussianSO3", "log_normaliser"]

_GRID = 4097  # Simpson's rule on [0, pi]
MIN_SCALE = 0.005
"""Smallest supported sigma (radians): the quadrature resolves the peak down to here."""


def _phi_grid(dtype: torch.dtype, device: torch.device | str | None) -> Tensor:  # quadrature nodes
    return torch.linspace(0, math.pi, _GRID, dtype=dtype, device=device)


def _simpson_weights(dtype: torch.dtype, device: torch.device | str | None) -> Tensor:
    w = torch.ones(_GRID, dtype=dtype, device=device)
    w[1:-1:2] = 4
    w[2:-1:2] = 2
    return w * (math.pi / (_GRID - 1)) / 3


def log_normaliser(scale: Tensor) -> Tensor:
    """``log Z(sigma)`` for any shape of ``sigma`` (radians, >= ``MIN_SCALE``); differentiable."""
    phi = _phi_grid(scale.dtype, scale.device)
    w = _simpson_weights(scale.dtype, scale.device)
    # log of the integrand, with (1 - cos phi) written as 2 sin^2(phi/2); phi = 0 contributes 0
    log_haar = torch.log(2 * torch.sin(phi / 2).pow(2).clamp_min(1e-300)) - math.log(math.pi)
    terms = -phi.pow(2) / (2 * scale.unsqueeze(-1).pow(2)) + log_haar + torch.log(w)
    return torch.logsumexp(terms, dim=-1)


class TangentGaussianSO3(TorchDistribution):
    """Rotations near ``loc`` with isotropic angular spread ``scale``, over axis-angle vectors.

    Args:
        loc: ``batch_shape + (3, 3)`` rotation matrices, the mode.
        scale: ``batch_shape`` (broadcastable) standard deviation in radians, > ``MIN_SCALE``.

    ``event_shape == (3,)``: a canonical axis-angle vector (angle in [0, pi], radians), so the
    support is the ball of radius pi; ``log_prob`` in nats with respect to Lebesgue measure on
    that ball. Not reparameterised.

    Example:
        >>> import math, torch
        >>> from probpose.distributions import TangentGaussianSO3
        >>> d = TangentGaussianSO3(torch.eye(3), torch.tensor(0.3))  # around the identity, 0.3 rad
        >>> v = d.sample((1000,))  # axis-angle, radians
        >>> v.shape, bool(v.norm(dim=-1).max() <= math.pi)
        (torch.Size([1000, 3]), True)
    """

    arg_constraints = {"loc": rotation_matrix, "scale": constraints.greater_than(MIN_SCALE)}
    support = axis_angle_ball

    def __init__(self, loc: Tensor, scale: Tensor | float, validate_args: bool | None = None) -> None:
        if loc.shape[-2:] != (3, 3):
            raise ValueError(f"loc must be (..., 3, 3) rotation matrices, got {tuple(loc.shape)}")
        scale = torch.as_tensor(scale, dtype=loc.dtype, device=loc.device)
        batch_shape = torch.broadcast_shapes(loc.shape[:-2], scale.shape)
        self.loc = loc.expand(batch_shape + (3, 3))
        self.scale = scale.expand(batch_shape)
        # the normaliser depends on the distinct scales only: compute it before broadcasting
        self._log_z = log_normaliser(scale).expand(batch_shape)
        super().__init__(batch_shape, torch.Size((3,)), validate_args=validate_args)

    def expand(  # type: ignore[override]  # returns its own class (Pyro's convention), not ExpandedDistribution
        self, batch_shape: torch.Size | tuple[int, ...], _instance: TorchDistribution | None = None
    ) -> TangentGaussianSO3:
        new = self._get_checked_instance(TangentGaussianSO3, _instance)
        batch_shape = torch.Size(batch_shape)
        new.loc = self.loc.expand(batch_shape + (3, 3))
        new.scale = self.scale.expand(batch_shape)
        new._log_z = self._log_z.expand(batch_shape)
        super(TangentGaussianSO3, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def log_prob_haar(self, rotation: Tensor) -> Tensor:
        """Log-density of rotation matrices ``(..., 3, 3)`` with respect to normalised Haar."""
        phi = geodesic_distance(self.loc, rotation)
        return -phi.pow(2) / (2 * self.scale.pow(2)) - self._log_z

    def log_prob(self, value: Tensor) -> Tensor:  # type: ignore[override]  # torch's signature; Pyro's abstract one adds *args
        if self._validate_args:
            self._validate_sample(value)
        return self.log_prob_haar(axis_angle_to_matrix(value)) + log_haar_correction(value)

    @torch.no_grad()
    def sample(self, sample_shape: torch.Size | list[int] | tuple[int, ...] = ()) -> Tensor:
        """Exact samples. The angle by rejection from the Maxwell density phi^2 exp(-phi^2/2 sigma^2)
        (phi = sigma times the norm of an N(0, I_3) draw), accepted with probability (1 - cos phi) / (phi^2 / 2) when
        phi <= pi; the axis uniform on the sphere."""
        shape = torch.Size(sample_shape) + self.batch_shape
        dtype, device = self.scale.dtype, self.scale.device
        scale = self.scale.expand(shape).reshape(-1)
        phi = torch.full_like(scale, float("nan"))
        todo = torch.ones_like(scale, dtype=torch.bool)
        for _ in range(10_000):
            idx = todo.nonzero().squeeze(-1)
            if not len(idx):
                break
            cand = scale[idx] * torch.linalg.vector_norm(torch.randn(len(idx), 3, dtype=dtype, device=device), dim=-1)
            ratio = 2 * (1 - torch.cos(cand)) / cand.pow(2).clamp_min(1e-300)
            ok = (cand <= math.pi) & (torch.rand_like(cand) < ratio)
            phi[idx[ok]] = cand[ok]
            todo[idx[ok]] = False
        if todo.any():
            raise RuntimeError("rejection sampling did not finish")
        axis = torch.nn.functional.normalize(torch.randn(shape + (3,), dtype=dtype, device=device), dim=-1)
        rot = self.loc.expand(shape + (3, 3)) @ axis_angle_to_matrix(axis * phi.reshape(shape).unsqueeze(-1))
        return canonical_axis_angle(matrix_to_axis_angle(rot))
