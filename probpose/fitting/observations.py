"""Observations a pose is fitted to, and their likelihoods.

- :class:`Joints3D`: 3D points ``(N, K, 3)`` metres with a mask ``(N, K)`` of observed points;
  likelihood ``Normal(points, sigma)`` on the observed ones (mocap, a 3D pose estimator).
- :class:`Keypoints2D`: 2D keypoints ``(N, K, 2)`` pixels (origin top-left, y down) with a confidence
  ``(N, K)`` in ``[0, 1]`` (0: missing) and a pinhole camera per frame (``K``, ``R``, ``t``, OpenCV:
  ``X_cam = R X + t``); robust likelihood ``StudentT(nu, projection, sigma / sqrt(confidence))``.

On disk (``probpose fit --observations FILE.npz``): either ``joints`` ``(N, K, 3)`` [+ ``mask``
``(N, K)``], or ``keypoints`` ``(N, K, 2)`` [+ ``confidence`` ``(N, K)``] + ``K`` ``(3, 3)`` or
``(N, 3, 3)``, ``R`` ``(3, 3)``/``(N, 3, 3)``, ``t`` ``(3,)``/``(N, 3)``; optionally ``names`` ``(K,)``
(which body points the rows are; default: all of the body's points in order), and ``init_orient``,
``init_transl`` ``(N, 3)`` (a starting root transform; 2D fits need a rough one), and ``sequence``
``(N,)`` integer ids: rows in time order, a change of id starts a new sequence (what the temporal
smoothness of :class:`~probpose.fitting.PoseFit` never crosses; default: one sequence).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from torch import Tensor

from probpose.data.npz import NpzArchive
from probpose.errors import DataError
from probpose.files import input_file
from probpose.kinematics import project

MIN_DEPTH = 1e-3
"""Metres: depths below it are clamped in the projection, so points behind a camera stay finite."""

__all__ = ["Joints3D", "Keypoints2D", "Observation", "load_observations"]


@dataclass
class Joints3D:
    """3D points ``(N, K, 3)`` metres, observed where ``mask`` ``(N, K)``; noise ``sigma`` metres."""

    points: Tensor
    mask: Tensor
    names: tuple[str, ...] | None = None
    sigma: float = 0.01
    init_orient: Tensor | None = None
    init_transl: Tensor | None = None
    sequence: Tensor | None = None

    kind = "3d"

    def __post_init__(self) -> None:
        p = self.points
        if p.ndim != 3 or p.shape[-1] != 3 or len(p) < 1:
            raise DataError("joints", None, f"expected (N >= 1, K, 3) metres, got {tuple(p.shape)}")
        if self.mask.shape != p.shape[:2]:
            raise DataError("mask", None, f"expected {tuple(p.shape[:2])}, got {tuple(self.mask.shape)}")
        self.mask = self.mask.bool()
        if not torch.isfinite(p[self.mask]).all():
            raise DataError("joints", None, "observed points hold NaN or infinite values (mask them out)")
        self.points = torch.where(self.mask.unsqueeze(-1), p, torch.zeros_like(p))
        if not self.sigma > 0:
            raise DataError("sigma", None, f"must be positive, got {self.sigma}")
        _check_seen(self.mask, "mask")
        _check_init(self, len(p))

    @property
    def num_frames(self) -> int:
        return len(self.points)

    @property
    def num_points(self) -> int:
        return self.points.shape[1]

    def select(self, frames: slice | Tensor) -> Joints3D:
        return Joints3D(
            self.points[frames],
            self.mask[frames],
            self.names,
            self.sigma,
            None if self.init_orient is None else self.init_orient[frames],
            None if self.init_transl is None else self.init_transl[frames],
            None if self.sequence is None else self.sequence[frames],
        )

    def sample(self, predicted: Tensor) -> None:
        """The likelihood site ``obs`` inside a ``frames`` plate: ``predicted`` ``(N, K, 3)``."""
        d = dist.Normal(predicted, self.sigma).mask(self.mask.unsqueeze(-1)).to_event(2)
        pyro.sample("obs", d, obs=self.points.to(predicted))

    def residual(self, predicted: Tensor) -> Tensor:
        """Per-frame mean distance of observed points (metres) ``(N,)``."""
        err = (predicted - self.points.to(predicted)).norm(dim=-1)
        m = self.mask.to(err)
        return (err * m).sum(-1) / m.sum(-1).clamp_min(1)


@dataclass
class Keypoints2D:
    """2D keypoints ``(N, K, 2)`` pixels, ``confidence`` ``(N, K)`` in [0, 1], cameras ``K``, ``R``
    ``(N, 3, 3)``, ``t`` ``(N, 3)``; Student-t noise of scale ``sigma`` pixels, ``nu`` degrees of freedom."""

    pixels: Tensor
    confidence: Tensor
    K: Tensor
    R: Tensor
    t: Tensor
    names: tuple[str, ...] | None = None
    sigma: float = 2.0
    nu: float = 4.0
    init_orient: Tensor | None = None
    init_transl: Tensor | None = None
    sequence: Tensor | None = None

    kind = "2d"

    def __post_init__(self) -> None:
        p = self.pixels
        n = len(p)
        if p.ndim != 3 or p.shape[-1] != 2 or n < 1:
            raise DataError("keypoints", None, f"expected (N >= 1, K, 2) pixels, got {tuple(p.shape)}")
        if self.confidence.shape != p.shape[:2]:
            raise DataError("confidence", None, f"expected {tuple(p.shape[:2])}, got {tuple(self.confidence.shape)}")
        if ((self.confidence < 0) | (self.confidence > 1) | ~torch.isfinite(self.confidence)).any():
            raise DataError("confidence", None, "must lie in [0, 1]")
        self.K = _per_frame(self.K, (3, 3), n, "K")
        self.R = _per_frame(self.R, (3, 3), n, "R")
        self.t = _per_frame(self.t, (3,), n, "t")
        _check_camera(self.K, self.R)
        seen = self.confidence > 0
        _check_seen(seen, "confidence")
        _check_init(self, n)
        if not torch.isfinite(p[seen]).all():
            raise DataError("keypoints", None, "keypoints with confidence > 0 hold NaN or infinite values")
        self.pixels = torch.where(seen.unsqueeze(-1), p, torch.zeros_like(p))
        if not (self.sigma > 0 and self.nu > 0):
            raise DataError("sigma", None, f"sigma and nu must be positive, got {self.sigma}, {self.nu}")

    @property
    def num_frames(self) -> int:
        return len(self.pixels)

    @property
    def num_points(self) -> int:
        return self.pixels.shape[1]

    def select(self, frames: slice | Tensor) -> Keypoints2D:
        return Keypoints2D(
            self.pixels[frames],
            self.confidence[frames],
            self.K[frames],
            self.R[frames],
            self.t[frames],
            self.names,
            self.sigma,
            self.nu,
            None if self.init_orient is None else self.init_orient[frames],
            None if self.init_transl is None else self.init_transl[frames],
            None if self.sequence is None else self.sequence[frames],
        )

    def predict(self, points: Tensor) -> Tensor:
        return project(points, self.K.to(points), self.R.to(points), self.t.to(points), min_depth=MIN_DEPTH)[0]

    def sample(self, predicted: Tensor) -> None:
        uv = self.predict(predicted)
        seen = self.confidence > 0
        scale = self.sigma / self.confidence.to(uv).clamp_min(1e-3).sqrt()
        d = dist.StudentT(self.nu, uv, scale.unsqueeze(-1)).mask(seen.unsqueeze(-1)).to_event(2)
        pyro.sample("obs", d, obs=self.pixels.to(uv))

    def residual(self, predicted: Tensor) -> Tensor:
        """Per-frame mean reprojection error of the observed keypoints (pixels) ``(N,)``."""
        err = (self.predict(predicted) - self.pixels.to(predicted)).norm(dim=-1)
        m = (self.confidence > 0).to(err)
        return (err * m).sum(-1) / m.sum(-1).clamp_min(1)


Observation = Joints3D | Keypoints2D


def _per_frame(x: Tensor, shape: tuple[int, ...], n: int, name: str) -> Tensor:
    x = torch.as_tensor(x, dtype=torch.float64)
    if x.shape not in (shape, (n,) + shape):
        raise DataError(name, None, f"expected {shape} or {(n,) + shape}, got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise DataError(name, None, "holds NaN or infinite values")
    return x.expand((n,) + shape).clone() if x.shape == shape else x


def _check_camera(k: Tensor, r: Tensor) -> None:
    """Refuse intrinsics that are not a pinhole camera's (``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]``
    with ``fx, fy > 0``: a singular ``K`` projects every point to one line) and rotations that are
    not rotations (``R^T R = I``, ``det R = +1``, to 1e-4)."""
    lower = torch.stack([k[:, 1, 0], k[:, 2, 0], k[:, 2, 1], k[:, 2, 2] - 1], -1).abs().amax(-1)
    bad = (lower > 1e-9) | (k[:, 0, 0] <= 0) | (k[:, 1, 1] <= 0)
    if bad.any():
        i = int(bad.nonzero()[0])
        raise DataError(
            "K",
            None,
            f"frame {i}: not a pinhole camera matrix [[fx, s, cx], [0, fy, cy], [0, 0, 1]] "
            "with fx, fy > 0 (a singular or malformed K)",
        )
    eye = torch.eye(3, dtype=r.dtype)
    off = (r.transpose(-1, -2) @ r - eye).abs().amax((-1, -2))
    bad = (off > 1e-4) | ((torch.linalg.det(r) - 1).abs() > 1e-4)
    if bad.any():
        i = int(bad.nonzero()[0])
        raise DataError("R", None, f"frame {i}: not a rotation matrix (R^T R = I and det R = +1 expected)")


def _check_init(obs: Joints3D | Keypoints2D, n: int) -> None:
    """``init_orient`` (axis-angle, radians, angle at most 2 pi) and ``init_transl`` (metres), ``(N, 3)``, finite."""
    for name in ("init_orient", "init_transl"):
        x = getattr(obs, name)
        if x is None:
            continue
        if x.shape != (n, 3):
            raise DataError(name, None, f"expected ({n}, 3), got {tuple(x.shape)}")
        if not torch.isfinite(x).all():
            raise DataError(name, None, "holds NaN or infinite values")
    if obs.init_orient is not None and (obs.init_orient.norm(dim=-1) > 2 * math.pi + 1e-6).any():
        raise DataError("init_orient", None, "axis-angle rotations with angles over 2 pi radians: not radians?")
    if obs.sequence is not None:
        seq = torch.as_tensor(obs.sequence)
        if seq.shape != (n,):
            raise DataError("sequence", None, f"expected ({n},) sequence ids, one per frame, got {tuple(seq.shape)}")
        whole = seq.is_floating_point() and bool(torch.isfinite(seq).all() and (seq == seq.round()).all())
        if seq.dtype == torch.bool or seq.is_complex() or (seq.is_floating_point() and not whole):
            raise DataError("sequence", None, f"expected integer sequence ids, got {seq.dtype} values")
        obs.sequence = seq.long()


def neighbours(sequence: Tensor | None, n: int) -> Tensor:
    """``(N - 2,)`` bool: frames ``t, t + 1, t + 2`` are consecutive frames of one sequence (rows in
    time order; a change of id starts a new sequence; ``None``: all frames one sequence)."""
    if sequence is None:
        return torch.ones(max(n - 2, 0), dtype=torch.bool)
    return (sequence[2:] == sequence[1:-1]) & (sequence[1:-1] == sequence[:-2])


def _check_seen(seen: Tensor, what: str) -> None:
    """Refuse observations with nothing observed in any frame (a fit would report a perfect residual)."""
    if not seen.any():
        raise DataError(what, None, "nothing is observed (every point masked out or of confidence 0): nothing to fit")


OBSERVATION_KEYS = (
    "joints",
    "mask",
    "keypoints",
    "confidence",
    "K",
    "R",
    "t",
    "names",
    "init_orient",
    "init_transl",
    "sequence",
)
"""The members of an observations file that are read (any other member is left unread)."""


def load_observations(path: str | Path, sigma: float | None = None, nu: float = 4.0) -> Observation:
    """Observations from an ``.npz`` (see the module docstring for the keys); only
    :data:`OBSERVATION_KEYS` are read. A FIFO or device, complex numbers and ``names`` that are not
    a list of strings are refused."""
    path = input_file(path, "observations")
    with NpzArchive(path) as archive:
        arrays = {k: archive.read(k) for k in archive.keys if k in OBSERVATION_KEYS}
    for key, value in arrays.items():
        if np.iscomplexobj(value):
            raise DataError(str(path), key, "holds complex numbers; real values expected")

    def get(key: str) -> Tensor | None:
        return torch.from_numpy(np.asarray(arrays[key], dtype=np.float64)) if key in arrays else None

    names = None
    if "names" in arrays:
        raw = arrays["names"]
        if raw.ndim != 1 or raw.dtype.kind not in "UO" or not all(isinstance(s, str) for s in raw.tolist()):
            raise DataError(str(path), "names", f"must be a list of point names (K,), got {raw.dtype} {raw.shape}")
        names = tuple(raw.tolist())
    init = {"init_orient": get("init_orient"), "init_transl": get("init_transl"), "sequence": get("sequence")}
    try:
        if "joints" in arrays and "keypoints" in arrays:
            raise DataError(str(path), None, "holds both 'joints' and 'keypoints': give one kind of observation")
        if "joints" in arrays:
            pts = get("joints")
            assert pts is not None  # present, checked above
            mask = get("mask")
            mask = torch.ones(pts.shape[:2], dtype=torch.bool) if mask is None else mask.bool()
            return Joints3D(pts, mask, names, 0.01 if sigma is None else sigma, **init)
        if "keypoints" in arrays:
            kp = get("keypoints")
            assert kp is not None  # present, checked above
            missing = [k for k in ("K", "R", "t") if k not in arrays]
            if missing:
                raise DataError(
                    str(path),
                    ", ".join(missing),
                    "2D keypoints need a camera: K (3, 3), R (3, 3), t (3,) (or one per frame)",
                )
            conf = get("confidence")
            conf = torch.ones(kp.shape[:2], dtype=torch.float64) if conf is None else conf
            k, r, t = get("K"), get("R"), get("t")
            assert k is not None and r is not None and t is not None  # present, checked above
            return Keypoints2D(kp, conf, k, r, t, names, 2.0 if sigma is None else sigma, nu, **init)
    except DataError as e:
        if e.file == str(path):
            raise
        raise DataError(str(path), e.file, e.reason) from None
    raise DataError(str(path), None, "expected 'joints' (N, K, 3) or 'keypoints' (N, K, 2) with a camera")
