"""Pinhole cameras in the OpenCV convention (docs/architecture.md, "Synthesis and fitting conventions").

Camera frame: x right, y down, z forward (metres). Extrinsics map world to camera,
``X_cam = R @ X_world + t``. Intrinsics ``K = [[f, 0, cx], [0, f, cy], [0, 0, 1]]`` map to pixels
whose origin is the top-left corner of the top-left pixel (pixel ``(i, j)`` covers
``[i, i + 1) x [j, j + 1)``; its centre is ``(i + 0.5, j + 0.5)``), so the principal point of an
image ``W`` x ``H`` made by :func:`intrinsics` is ``(W / 2, H / 2)``; a crop
(:func:`crop_intrinsics`) scales the focal length and moves the principal point with the window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Camera", "intrinsics", "look_at", "crop_intrinsics", "project"]


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


def crop_intrinsics(k: Tensor, window: Tensor, width: int) -> Tensor:
    """The intrinsics ``(..., 3, 3)`` of a crop: the ``window`` ``(..., 4)`` (x0, y0, x1, y1 in the
    pixels of ``k``'s image; the window's aspect ratio is the output image's) rescaled to an image
    ``width`` pixels wide. A pixel ``p`` of the original image lands at ``s (p - (x0, y0))`` with
    ``s = width / (x1 - x0)``; the camera is still a pinhole (focal length ``s f``, principal point
    moved with the window)."""
    s = width / (window[..., 2] - window[..., 0])
    a = torch.zeros(window.shape[:-1] + (3, 3), dtype=k.dtype, device=k.device)
    a[..., 0, 0] = s
    a[..., 1, 1] = s
    a[..., 0, 2] = -s * window[..., 0]
    a[..., 1, 2] = -s * window[..., 1]
    a[..., 2, 2] = 1
    return a @ k


def project(points: Tensor, k: Tensor, r: Tensor, t: Tensor, min_depth: float | None = None) -> tuple[Tensor, Tensor]:
    """World points ``(..., N, 3)`` (metres) -> (pixels ``(..., N, 2)``, depth ``(..., N)`` metres)
    through cameras ``K``, ``R`` ``(..., 3, 3)`` and ``t`` ``(..., 3)``: ``X_cam = R X + t``,
    pixels ``K X_cam / z``. Points behind a camera get meaningless pixels (check ``depth > 0``);
    with ``min_depth`` the division uses ``max(z, min_depth)``, so that they stay finite and
    differentiable (fitting), while the returned depth is the true one."""
    cam = (r.unsqueeze(-3) @ points.unsqueeze(-1)).squeeze(-1) + t.unsqueeze(-2)
    z = cam[..., 2]
    zd = z if min_depth is None else z.clamp_min(min_depth)
    uv = (k.unsqueeze(-3) @ (cam / zd.unsqueeze(-1)).unsqueeze(-1)).squeeze(-1)
    return uv[..., :2], z


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

    def project(self, points: Tensor, min_depth: float | None = None) -> tuple[Tensor, Tensor]:
        """World points ``(..., N, 3)`` -> (pixels ``(..., N, 2)``, depth ``(..., N)`` in metres):
        :func:`project` with these cameras."""
        return project(points, self.K, self.R, self.t, min_depth)

    @property
    def centre(self) -> Tensor:
        """Camera centres in the world ``(..., 3)``."""
        return -(self.R.transpose(-1, -2) @ self.t.unsqueeze(-1)).squeeze(-1)

    @property
    def fov_degrees(self) -> float:
        """Horizontal field of view of the first camera (degrees)."""
        f = float(self.K.reshape(-1, 3, 3)[0, 0, 0])
        return math.degrees(2 * math.atan(self.width / 2 / f))
