"""Colour transfer by statistics (Reinhard, Ashikhmin, Gooch and Shirley, "Color transfer between
images", IEEE CG&A 2001): no training, no network; the baseline a learned stylisation must beat.

Both images go to Ruderman's perceptual ``l alpha beta`` space: RGB -> LMS by Reinhard's matrix,
``log10`` (LMS clamped below at ``1e-4``: black has no logarithm), then
``lab = diag(1/sqrt 3, 1/sqrt 6, 1/sqrt 2) [[1, 1, 1], [1, 1, -2], [1, -1, 0]] log LMS``. Each
channel of the content (over its mask: the animal, not the transparent background) is moved to
the style's mean and standard deviation, ``(x - mu_c) sigma_s / max(sigma_c, min_std) + mu_s``,
and the result goes back through the inverse maps. ``min_std`` (default 0.01 in ``l alpha beta``
units) keeps the chroma channels of a nearly grey render (a zebra: white and black) from being
amplified into noise: below it the content's spread is kept as it is and only its mean moves.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["colour_transfer", "rgb_to_lab", "lab_to_rgb", "lab_stats"]

_RGB_TO_LMS = ((0.3811, 0.5783, 0.0402), (0.1967, 0.7244, 0.0782), (0.0241, 0.1288, 0.8444))
_LOG_FLOOR = 1e-4


def _matrices(dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    rgb_lms = torch.tensor(_RGB_TO_LMS, dtype=torch.float64)
    mix = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, -2.0], [1.0, -1.0, 0.0]], dtype=torch.float64)
    lms_lab = torch.diag(torch.tensor([1 / math.sqrt(3), 1 / math.sqrt(6), 1 / math.sqrt(2)], dtype=torch.float64))
    return rgb_lms.to(dtype=dtype, device=device), (lms_lab @ mix).to(dtype=dtype, device=device)


def rgb_to_lab(images: Tensor) -> Tensor:
    """RGB ``(N, 3, H, W)`` in [0, 1] -> ``l alpha beta`` ``(N, 3, H, W)``."""
    rgb_lms, lms_lab = _matrices(images.dtype, images.device)
    lms = torch.einsum("ij,njhw->nihw", rgb_lms, images).clamp_min(_LOG_FLOOR)
    return torch.einsum("ij,njhw->nihw", lms_lab, torch.log10(lms))


def lab_to_rgb(lab: Tensor) -> Tensor:
    """The inverse of :func:`rgb_to_lab` (not clamped to [0, 1])."""
    rgb_lms, lms_lab = _matrices(lab.dtype, lab.device)
    lms = torch.pow(10.0, torch.einsum("ij,njhw->nihw", torch.linalg.inv(lms_lab), lab))
    return torch.einsum("ij,njhw->nihw", torch.linalg.inv(rgb_lms), lms)


def lab_stats(images: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Per-image, per-channel mean and (population) std ``(N, 3)`` in ``l alpha beta`` over the
    pixels where ``mask`` ``(N, 1, H, W)`` is above 0.5 (every pixel without a mask)."""
    return _stats(rgb_to_lab(images), mask)


def _stats(lab: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    w = torch.ones_like(lab[:, :1]) if mask is None else (mask > 0.5).to(lab.dtype)
    count = w.sum((-2, -1)).clamp_min(1)  # (N, 1)
    mean = (lab * w).sum((-2, -1)) / count
    var = ((lab - mean[..., None, None]).square() * w).sum((-2, -1)) / count
    return mean, var.sqrt()


def colour_transfer(
    content: Tensor, style: Tensor, mask: Tensor | None = None, style_mask: Tensor | None = None, min_std: float = 0.01
) -> Tensor:
    """Content images ``(N, 3, H, W)`` (RGB in [0, 1]) with each image's ``l alpha beta`` channel
    means and stds moved to those of its style image (``(N or 1, 3, H2, W2)``); statistics over
    ``mask`` / ``style_mask`` ``(N, 1, H, W)`` where given. Returns RGB, not clamped (clamp to
    [0, 1] to save it)."""
    if min_std <= 0:
        raise ValueError(f"min_std must be positive, got {min_std}")
    lab = rgb_to_lab(content)
    cm, cs = _stats(lab, mask)
    sm, ss = lab_stats(style, style_mask)
    scale = (ss / cs.clamp_min(min_std))[..., None, None]
    return lab_to_rgb((lab - cm[..., None, None]) * scale + sm[..., None, None])
