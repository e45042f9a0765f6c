"""What a stylised frame looks like, in numbers: checkerboard energy, chroma, edge structure.

All take images ``(N, 3, H, W)`` RGB in [0, 1] and a mask ``(N, 1, H, W)`` (bool, or alpha in [0, 1]:
a pixel counts where ``alpha > 0.5``), and pool over every masked pixel of every image.

- :func:`mixed_difference`: the mean of ``|x[i, j] - x[i+1, j] - x[i, j+1] + x[i+1, j+1]|`` over
  the 2x2 blocks wholly inside the mask and over channels. A one-pixel checkerboard of amplitude
  ``a`` gives ``4 a``; smooth shading and straight edges give almost nothing. The ratio of a
  stylised frame's value to its render's measures the checkerboard a decoder adds.
- :func:`chroma`: the mean distance of a pixel from its own grey, ``|x - mean_c(x) 1|`` (Euclidean,
  RGB in [0, 1]; 0 for greys, 0.816 for a saturated primary).
- :func:`edge_similarity`: the Pearson correlation, inside the mask, of the Sobel gradient
  magnitudes of the two images' luma (Rec. 601 weights), per image, averaged: 1 when the edges
  (the stripes, the silhouette's inner contours) are where they were, whatever the colours.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = ["mixed_difference", "chroma", "edge_similarity", "luma"]

_LUMA = (0.299, 0.587, 0.114)


def _mask(mask: Tensor) -> Tensor:
    return mask > 0.5 if mask.is_floating_point() else mask.bool()


def mixed_difference(images: Tensor, mask: Tensor) -> float:
    """Mean absolute mixed second difference over the 2x2 blocks inside ``mask`` (see the module)."""
    m = _mask(mask)
    d = (images[..., :-1, :-1] - images[..., 1:, :-1] - images[..., :-1, 1:] + images[..., 1:, 1:]).abs()
    inside = m[..., :-1, :-1] & m[..., 1:, :-1] & m[..., :-1, 1:] & m[..., 1:, 1:]  # (N, 1, H-1, W-1)
    count = int(inside.sum()) * images.shape[1]
    if count == 0:
        raise ValueError("mixed_difference: no 2x2 block lies inside the mask")
    return float((d * inside).sum() / count)


def chroma(images: Tensor, mask: Tensor) -> float:
    """Mean distance of the masked pixels from their own grey (RGB units)."""
    m = _mask(mask)[:, 0]
    if not m.any():
        raise ValueError("chroma: the mask is empty")
    grey = images.mean(1, keepdim=True)
    dist = (images - grey).square().sum(1).sqrt()  # (N, H, W)
    return float(dist[m].mean())


def luma(images: Tensor) -> Tensor:
    """Rec. 601 luma ``(N, 1, H, W)`` of RGB images ``(N, 3, H, W)``."""
    w = torch.tensor(_LUMA, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images * w).sum(1, keepdim=True)


def _sobel(y: Tensor) -> Tensor:
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=y.dtype, device=y.device)
    k = torch.stack([kx, kx.T]).unsqueeze(1)  # (2, 1, 3, 3)
    g = F.conv2d(F.pad(y, (1, 1, 1, 1), mode="replicate"), k)
    return g.square().sum(1, keepdim=True).sqrt()


def edge_similarity(images: Tensor, reference: Tensor, mask: Tensor) -> float:
    """The mean over images of the Pearson correlation of the Sobel gradient magnitudes of the
    lumas of ``images`` and ``reference`` over each image's pixels inside ``mask`` (1: the same
    edges; per image, so a frame made darker or paler overall keeps its score). Images with fewer
    than two masked pixels are skipped."""
    m = _mask(mask)
    ga, gb = _sobel(luma(images)), _sobel(luma(reference))
    scores = []
    for a, b, k in zip(ga, gb, m, strict=True):
        a, b = a[k], b[k]
        if a.numel() < 2:
            continue
        a, b = a - a.mean(), b - b.mean()
        scores.append(float((a * b).sum() / (a.square().sum().sqrt() * b.square().sum().sqrt()).clamp_min(1e-12)))
    if not scores:
        raise ValueError("edge_similarity: no image has two pixels inside the mask")
    return sum(scores) / len(scores)
