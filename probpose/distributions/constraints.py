"""Constraints of the pose priors: finite axis-angle poses, the axis-angle ball, rotation matrices.

torch's ``constraints.real`` admits +-inf; a pose with an infinite angle is no pose, so the priors'
support is :data:`pose_space` (finite values, event ``(J, 3)``)."""

from __future__ import annotations

import math

import torch
import torch.distributions.transforms
from pyro.distributions import constraints
from torch import Tensor
from torch.distributions import biject_to, transform_to

__all__ = ["finite", "pose_space", "axis_angle_ball", "rotation_matrix"]


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


finite = _Finite()
"""Finite real numbers."""


@biject_to.register(_Finite)
@transform_to.register(_Finite)
def _finite_transform(constraint: constraints.Constraint) -> torch.distributions.Transform:
    # R is the support's interior: inference (autoguides, NUTS) works on unconstrained reals
    return torch.distributions.transforms.identity_transform

pose_space = constraints.independent(finite, 2)
"""The support of every pose prior: finite ``(J, 3)`` axis-angle poses (R^(3J))."""
axis_angle_ball = _AxisAngleBall()
"""The support of distributions over one canonical axis-angle rotation: the closed ball of radius pi."""
rotation_matrix = _RotationMatrix()
"""Rotation matrices (orthogonal, determinant +1)."""
