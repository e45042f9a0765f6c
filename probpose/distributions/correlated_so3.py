"""Rotations of ``J`` joints near their modes, with one full covariance of the tangent vectors.

Each joint's rotation ``R_j`` is its mode ``M_j`` times a residual rotation whose canonical
axis-angle vector is ``v_j = Log(M_j^T R_j)`` (radians, in the ball of radius pi). The residuals of
all joints, stacked ``(3J,)``, are Gaussian with covariance ``L L^T`` restricted to the product of
balls::

    p(x) = N(v(x); 0, L L^T) / P * prod_j h(x_j) / h(v_j)

over canonical axis-angle poses ``x`` ``(J, 3)``, where ``h`` is the Haar density in axis-angle
coordinates (:func:`~probpose.rotations.log_haar_correction`: left-multiplying by ``M_j^T`` keeps
Haar measure, so ``h(x_j) / h(v_j)`` is the Jacobian of ``x_j -> v_j``), and ``P`` the Gaussian's
mass inside the balls (every ``|v_j| < pi``). ``P`` has no closed form; ``log_prob`` omits it,
so it is *below* the normalised log-density by ``-log P``, which :meth:`log_mass_gap_bound`
bounds from above (about 1e-8 nats per joint at residual spreads of 0.5 rad; 0 to float precision at pose
priors' usual 0.1). Used as a VAE's likelihood, the importance-weighted bound computed with it
stays a lower bound on the normalised model's log-likelihood. Samples are exact (the Gaussian,
rejected outside the balls).
"""

from __future__ import annotations

import math

import torch
from pyro.distributions import TorchDistribution, constraints
from torch import Tensor

from probpose.distributions.constraints import axis_angle_ball, rotation_matrix
from probpose.rotations import axis_angle_to_matrix, log_haar_correction, matrix_to_axis_angle

__all__ = ["CorrelatedTangentGaussianSO3"]


class CorrelatedTangentGaussianSO3(TorchDistribution):
    """``J`` rotations near ``loc`` with correlated tangent residuals, over ``(J, 3)`` axis-angle.

    Args:
        loc: ``batch_shape + (J, 3, 3)`` rotation matrices, the modes.
        scale_tril: ``(3J, 3J)`` lower-triangular Cholesky factor (positive diagonal) of the
            residuals' covariance, radians, shared by every batch element; residual order is
            joint-major (joint 0's x, y, z, then joint 1's ...).

    ``event_shape == (J, 3)``; ``log_prob`` in nats with respect to Lebesgue measure on the
    product of balls of radius pi, without the truncation mass (module docstring).

    Example:
        >>> import torch
        >>> from probpose.distributions import CorrelatedTangentGaussianSO3
        >>> d = CorrelatedTangentGaussianSO3(torch.eye(3).expand(2, 3, 3), 0.2 * torch.eye(6))
        >>> d.sample((5,)).shape, d.log_prob(torch.zeros(2, 3)).shape
        (torch.Size([5, 2, 3]), torch.Size([]))
    """

    arg_constraints = {"loc": rotation_matrix, "scale_tril": constraints.lower_cholesky}
    support = constraints.independent(axis_angle_ball, 1)

    def __init__(self, loc: Tensor, scale_tril: Tensor, validate_args: bool | None = None) -> None:
        if loc.dim() < 3 or loc.shape[-2:] != (3, 3):
            raise ValueError(f"loc must be (..., J, 3, 3) rotation matrices, got {tuple(loc.shape)}")
        j = loc.shape[-3]
        if scale_tril.shape != (3 * j, 3 * j):
            raise ValueError(f"scale_tril must be (3J, 3J) = ({3 * j}, {3 * j}), got {tuple(scale_tril.shape)}")
        self.loc = loc
        self.scale_tril = scale_tril
        super().__init__(loc.shape[:-3], torch.Size((j, 3)), validate_args=validate_args)

    def expand(  # type: ignore[override]  # returns its own class (Pyro's convention)
        self, batch_shape: torch.Size | tuple[int, ...], _instance: TorchDistribution | None = None
    ) -> CorrelatedTangentGaussianSO3:
        new = self._get_checked_instance(CorrelatedTangentGaussianSO3, _instance)
        batch_shape = torch.Size(batch_shape)
        new.loc = self.loc.expand(batch_shape + self.loc.shape[-3:])
        new.scale_tril = self.scale_tril
        super(CorrelatedTangentGaussianSO3, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def residuals(self, value: Tensor) -> Tensor:
        """Canonical axis-angle residuals ``v_j = Log(M_j^T R(x_j))``, ``(..., J, 3)`` radians."""
        return matrix_to_axis_angle(self.loc.transpose(-1, -2) @ axis_angle_to_matrix(value))

    def log_prob(self, value: Tensor) -> Tensor:  # type: ignore[override]  # torch's signature
        if self._validate_args:
            self._validate_sample(value)
        v = self.residuals(value)
        flat = v.flatten(-2)
        # solve L y = v for every batch element at once: (3J, B)
        y = torch.linalg.solve_triangular(self.scale_tril, flat.reshape(-1, flat.shape[-1]).T, upper=False)
        maha = y.pow(2).sum(0).reshape(flat.shape[:-1])
        d = flat.shape[-1]
        log_det = self.scale_tril.diagonal().log().sum()
        gauss = -0.5 * maha - log_det - 0.5 * d * math.log(2 * math.pi)
        return gauss + (log_haar_correction(value) - log_haar_correction(v)).sum(-1)

    def log_mass_gap_bound(self) -> Tensor:
        """An upper bound on ``-log P`` (nats), the amount by which ``log_prob`` is below the
        normalised log-density: ``P >= 1 - sum_j P(|v_j| >= pi)``, each term bounded through the
        largest eigenvalue ``s^2`` of joint ``j``'s 3x3 covariance block by the chi-square (3 dof)
        tail at ``pi^2 / s^2``. ``inf`` when the bound is vacuous."""
        cov = self.scale_tril @ self.scale_tril.T
        j = self.event_shape[0]
        blocks = torch.stack([cov[3 * i : 3 * i + 3, 3 * i : 3 * i + 3] for i in range(j)])
        s2 = torch.linalg.eigvalsh(blocks)[:, -1]
        t = math.pi**2 / s2
        # chi-square survival, 3 degrees of freedom: erfc(sqrt(t/2)) + sqrt(2t/pi) exp(-t/2)
        tail = torch.special.erfc((t / 2).sqrt()) + (2 * t / math.pi).sqrt() * torch.exp(-t / 2)
        eps = tail.sum()
        return -torch.log1p(-eps) if eps < 1 else torch.full_like(eps, math.inf)

    @torch.no_grad()
    def sample(self, sample_shape: torch.Size | list[int] | tuple[int, ...] = ()) -> Tensor:
        """Exact samples ``sample_shape + batch_shape + (J, 3)``: residuals from the Gaussian,
        redrawn where any joint's falls outside the ball of radius pi."""
        shape = torch.Size(sample_shape) + self.batch_shape
        n, d = math.prod(shape), self.scale_tril.shape[0]
        out = torch.empty(n, d, dtype=self.scale_tril.dtype, device=self.scale_tril.device)
        todo = torch.arange(n, device=out.device)
        for _ in range(10_000):
            if not len(todo):
                break
            eps = torch.randn(len(todo), d, dtype=out.dtype, device=out.device)
            v = eps @ self.scale_tril.T
            ok = (v.reshape(len(todo), -1, 3).norm(dim=-1) < math.pi).all(-1)
            out[todo[ok]] = v[ok]
            todo = todo[~ok]
        if len(todo):
            raise RuntimeError("rejection sampling did not finish: the residual spread is too large")
        v = out.reshape(shape + self.event_shape)
        return matrix_to_axis_angle(self.loc.expand(shape + self.loc.shape[-3:]) @ axis_angle_to_matrix(v))
