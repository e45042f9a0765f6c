"""Results of a fit: the fitted values (:class:`FitResult`) and posterior summaries on SO(3) per frame
and joint (:class:`Posterior`, :func:`summarize`): the mean rotation (the rotation nearest to the
average matrix), the angular standard deviation (root mean square geodesic distance from the
mean, degrees) and the radius of the 90% credible ball around the mean (degrees); a true rotation
is "covered" when its geodesic distance from the mean is within that radius.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from probpose.rotations import (
    axis_angle_to_matrix,
    geodesic_distance,
    geodesic_error_deg,
    matrix_to_axis_angle,
    mean_rotation,
)

__all__ = ["Posterior", "FitResult", "summarize", "mean_rotation"]


@dataclass
class Posterior:
    """Posterior summaries per frame and joint: ``mean`` ``(N, J, 3)`` axis-angle radians,
    ``std_deg`` and ``radius90_deg`` ``(N, J)`` degrees, and the ``samples`` ``(S, N, J, 3)``."""

    mean: Tensor
    std_deg: Tensor
    radius90_deg: Tensor
    samples: Tensor

    def covers(self, truth: Tensor) -> Tensor:
        """``(N, J)`` bool: the true rotation lies inside the 90% ball."""
        return geodesic_error_deg(truth, self.mean) <= self.radius90_deg


@dataclass
class FitResult:
    """A fit: ``pose`` ``(N, J, 3)`` axis-angle radians, ``orient`` ``(N, 3)``, ``transl`` ``(N, 3)``
    metres, the observed points it predicts ``(N, K, 3)``, the per-frame ``residual`` (metres for 3D,
    pixels for 2D), the loss history, and the posterior when one was inferred."""

    pose: Tensor
    orient: Tensor
    transl: Tensor
    points: Tensor
    residual: Tensor
    inference: str
    losses: list[float] = field(default_factory=list)
    posterior: Posterior | None = None
    seconds: float = 0.0
    latent: Tensor | None = None
    """The latent site's values (``pose``; ``z`` for VAEs; ``pose_base`` for base-space fits)."""


def summarize(samples: Tensor) -> Posterior:
    """Posterior summaries of pose samples ``(S, N, J, 3)`` (see the module docstring)."""
    rot = axis_angle_to_matrix(samples.double())
    mean = mean_rotation(rot)
    dist_deg = torch.rad2deg(geodesic_distance(rot, mean.unsqueeze(0)))  # (S, N, J)
    std = dist_deg.square().mean(0).sqrt()
    radius = torch.quantile(dist_deg, 0.9, dim=0)
    return Posterior(matrix_to_axis_angle(mean), std, radius, samples)
