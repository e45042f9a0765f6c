"""Pinhole cameras in the OpenCV convention (docs/architecture.md, "Synthesis and fitting conventions").

Camera frame: x right, y down, z forward (metres). Extrinsics map world to camera,
``X_cam = R @ X_world + t``. Intrinsics ``K = [[f, 0, cx], [0, f, cy], [0, 0, 1]]`` map to pixels
whose origin is the top-left corner of the top-left pixel (pixel ``(i, j)`` covers
``[i, i + 1) x [j, j + 1)``; its centre is ``(i + 0.5, j + 0.5)``), so the principal point of an
image ``W`` x ``H`` is ``(W / 2, H / 2)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Camera", "intrinsics", "look_at", "pixel_rays"]


def intrinsics(width: int, height: int, fov_degrees: float | Tensor, dtype: torch.dtype = torch.float64) -> Tensor:
    """``K`` ``(..., 3, 3)`` of a ``width`` x ``height`` image (pixels) with horizontal field of view
    ``fov_degrees`` (square pixels, principal point at the image centre)."""
    fov = torch.as_tensor(fov_degrees, dtype=dtype)
    if torch.any((fov <= 0) | (fov >= 180)):
        raise ValueError(f"field of view must be in (0, 180) degrees, got {fov_degrees}")
    f = (width / 2) / torch.tan(torch.deg2rad(fov) / 2)
    k = torch.zeros(fov.shape + (3, 3), dtype=dtype)
    k[..., 0, 0] = f
    k[..., 1, 1] = f
    k[..., 0, 2] = width / 2
    k[..., 1, 2] = height / 2
    k[..., 2, 2] = 1
    return k


def look_at(eye: Tensor, target: Tensor, up: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Extrinsics ``(R (..., 3, 3), t (..., 3))`` of a camera at ``eye`` looking at ``target``
    (both ``(..., 3)`` world points, metres) with ``up`` (default world +y) pointing up in the image."""
    if up is None:
        up = torch.tensor([0.0, 1.0, 0.0], dtype=eye.dtype, device=eye.device)
    forward = target - eye
    forward = forward / forward.norm(dim=-1, keepdim=True)
    right = torch.linalg.cross(forward, up.expand_as(forward), dim=-1)
    norm = right.norm(dim=-1, keepdim=True)
    if torch.any(norm < 1e-8):
        raise ValueError("look_at: the viewing direction is parallel to 'up'")
    right = right / norm
    down = torch.linalg.cross(forward, right, dim=-1)
    r = torch.stack([right, down, forward], dim=-2)
    t = -(r @ eye.unsqueeze(-1)).squeeze(-1)
    return r, t


def pixel_rays(k: Tensor, width: int, height: int) -> Tensor:
    """Directions ``(..., 3, H * W)`` through every pixel centre (row-major), in camera coordinates,
    scaled to unit depth (``z = 1``): a point at depth ``s`` on the ray is ``s * d``."""
    dtype, device = k.dtype, k.device
    js, is_ = torch.meshgrid(
        torch.arange(height, dtype=dtype, device=device) + 0.5,
        torch.arange(width, dtype=dtype, device=device) + 0.5,
        indexing="ij",
    )
    pix = torch.stack([is_.flatten(), js.flatten(), torch.ones_like(is_).flatten()])  # (3, P)
    return torch.linalg.solve(k, pix.expand(k.shape[:-2] + pix.shape))


@dataclass(frozen=True)
class Camera:
    """Per-frame pinhole cameras: ``K (..., 3, 3)``, ``R (..., 3, 3)``, ``t (..., 3)``; an image of
    ``width`` x ``height`` pixels."""

    K: Tensor
    R: Tensor
    t: Tensor
    width: int
    height: int

    def to_camera(self, points: Tensor) -> Tensor:
        """World points ``(..., N, 3)`` -> camera coordinates ``(..., N, 3)`` (metres)."""
        return (self.R.unsqueeze(-3) @ points.unsqueeze(-1)).squeeze(-1) + self.t.unsqueeze(-2)

    def project(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """World points ``(..., N, 3)`` -> (pixels ``(..., N, 2)``, depth ``(..., N)`` in metres).
        Points behind the camera get non-finite or meaningless pixels: check ``depth > 0``."""
        cam = self.to_camera(points)
        z = cam[..., 2]
        uvw = (self.K.unsqueeze(-3) @ cam.unsqueeze(-1)).squeeze(-1)
        return uvw[..., :2] / z.unsqueeze(-1), z

    @property
    def centre(self) -> Tensor:
        """Camera centres in the world ``(..., 3)``."""
        return -(self.R.transpose(-1, -2) @ self.t.unsqueeze(-1)).squeeze(-1)

    @property
    def fov_degrees(self) -> float:
        """Horizontal field of view of the first camera (degrees)."""
        f = float(self.K.reshape(-1, 3, 3)[0, 0, 0])
        return math.degrees(2 * math.atan(self.width / 2 / f))
