"""Constraints of the pose priors: finite axis-angle poses, the axis-angle ball, rotation matrices.

torch's ``constraints.real`` admits +-inf; a pose with an infinite angle is no pose, so the priors'
support is :data:`pose_space` (finite values, event ``(J, 3)``).

Each support that inference may need to leave has a registered bijection from unconstrained
reals (``biject_to``/``transform_to``), so Pyro's autoguides and NUTS take a site with that support
as a latent: the identity for :data:`finite`, and :class:`BallTransform` (radial, algebraic)
onto the open axis-angle ball."""

from __future__ import annotations

import math

import torch
import torch.distributions.transforms
from pyro.distributions import constraints
from torch import Tensor
from torch.distributions import biject_to, transform_to

__all__ = ["finite", "pose_space", "axis_angle_ball", "rotation_matrix", "BallTransform"]


class _Finite(constraints.Constraint):
    """Finite real numbers (no NaN, no inf)."""

    is_discrete = False
    event_dim = 0

    def check(self, value: Tensor) -> Tensor:
        return torch.isfinite(value)

    def __repr__(self) -> str:
        return "Finite()"


class _AxisAngleBall(constraints.Constraint):
    """Axis-angle vectors ``(..., 3)`` with angle at most pi (canonical axis-angle)."""

    event_dim = 1

    def check(self, value: Tensor) -> Tensor:
        tol = 1e-6 if value.dtype == torch.float64 else 1e-5
        return torch.isfinite(value).all(-1) & (torch.linalg.vector_norm(value, dim=-1) <= math.pi + tol)

    def __repr__(self) -> str:
        return "AxisAngleBall(radius=pi)"


class _RotationMatrix(constraints.Constraint):
    """Matrices ``(..., 3, 3)`` that are rotations: orthogonal with determinant +1."""

    event_dim = 2

    def check(self, value: Tensor) -> Tensor:
        tol = 1e-8 if value.dtype == torch.float64 else 1e-4
        eye = torch.eye(3, dtype=value.dtype, device=value.device)
        orthogonal = ((value.transpose(-1, -2) @ value - eye).abs() <= tol).flatten(-2).all(-1)
        return orthogonal & ((torch.linalg.det(value) - 1).abs() <= tol) & torch.isfinite(value).flatten(-2).all(-1)

    def __repr__(self) -> str:
        return "RotationMatrix()"


class BallTransform(torch.distributions.Transform):
    """``R^3 -> `` the open ball of radius ``pi``: ``y = pi u / sqrt(1 + |u|^2)`` (event ``(..., 3)``).

    A radial map ``r -> f(r)`` has ``log |det J| = log f'(r) + 2 log(f(r) / r)``; here
    ``f(r) / r = pi (1 + r^2)^(-1/2)`` and ``f'(r) = pi (1 + r^2)^(-3/2)``, so
    ``log |det J| = 3 log pi - 5/2 log(1 + r^2)``. The boundary is approached algebraically, not
    exponentially (as ``tanh`` would), so gradients far out in ``u`` stay usable for NUTS."""

    domain = constraints.independent(constraints.real, 1)
    codomain: constraints.Constraint
    bijective = True
    sign = +1

    def __init__(self, cache_size: int = 0) -> None:
        super().__init__(cache_size=cache_size)
        self.codomain = _AxisAngleBall()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BallTransform)

    def _call(self, u: Tensor) -> Tensor:
        return math.pi * u * torch.rsqrt(1 + u.square().sum(-1, keepdim=True))

    def _inverse(self, y: Tensor) -> Tensor:
        s2 = (y.square().sum(-1, keepdim=True) / math.pi**2).clamp(max=1 - torch.finfo(y.dtype).eps)
        return y * torch.rsqrt(1 - s2) / math.pi

    def log_abs_det_jacobian(self, u: Tensor, y: Tensor) -> Tensor:
        return 3 * math.log(math.pi) - 2.5 * torch.log1p(u.square().sum(-1))


finite = _Finite()
"""Finite real numbers."""


@biject_to.register(_Finite)
@transform_to.register(_Finite)
def _finite_transform(constraint: constraints.Constraint) -> torch.distributions.Transform:
    # R is the support's interior: inference (autoguides, NUTS) works on unconstrained reals
    return torch.distributions.transforms.identity_transform


@biject_to.register(_AxisAngleBall)
@transform_to.register(_AxisAngleBall)
def _ball_transform(constraint: constraints.Constraint) -> torch.distributions.Transform:
    return BallTransform()


pose_space = constraints.independent(finite, 2)
"""The support of every pose prior: finite ``(J, 3)`` axis-angle poses (R^(3J))."""
axis_angle_ball = _AxisAngleBall()
"""The support of distributions over one canonical axis-angle rotation: the closed ball of radius pi."""
rotation_matrix = _RotationMatrix()
"""Rotation matrices (orthogonal, determinant +1)."""
