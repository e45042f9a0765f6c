"""Animating the rig: leg poses from a prior or a file, smooth motion of every other bone, a path
on the ground plane, and a tracking pinhole camera per sequence. Seeded and reproducible.

The frames are cut into sequences of ``sequence_frames``. Per sequence: a heading, a walking speed
(0 = turning on the spot) and a smooth turn rate give the animal's path on the ground plane; a
camera at a random yaw around the animal, elevation and distance follows the body's centre, with a
small smooth hand-held jitter of its position and aim. Within each frame the leg joints take the
given pose; the other moving bones (``Rig.motion``: ranges per bone, degrees) follow smooth
curves (sums of slow sinusoids) that stay inside their stated ranges; the body is lowered or
raised so that its lowest hoof touches the ground (y = 0).

Framing (``SceneOptions.framing``): with ``"crop"`` (the default) every frame's camera is the
tracking camera's view cropped to a window around the animal, as the crops a top-down pose
estimator is trained on: the window is placed so that the larger side of the animal's exact image
bounding box (every bone's ellipsoid, and every keypoint) fills a fraction of the frame between
``fill_min`` and ``fill_max`` (a smooth curve per sequence), with a smooth shift that keeps the box
inside. The crop is a change of intrinsics only (:func:`crop_intrinsics`: focal length and principal
point), so the frame is rendered at full resolution, not resampled. ``"scene"`` keeps the tracking
camera's whole view (the animal about half the frame at the default distances).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from probpose.errors import ConfigError
from probpose.kinematics.camera import Camera, crop_intrinsics, intrinsics, look_at
from probpose.kinematics.forward import Posed
from probpose.kinematics.rig import Rig
from probpose.options import option, validate
from probpose.rotations import axis_angle_to_matrix, euler_to_matrix
from probpose.synthesis.render import image_boxes

__all__ = ["SceneOptions", "Animation", "animate", "smooth_curves", "yaw_matrix"]


@dataclass
class SceneOptions:
    """Motion and camera ranges. Angles in degrees, distances in metres, speeds per second."""

    fps: float = option(30.0, gt=0)
    sequence_frames: int = option(300, ge=1)
    speed_max: float = option(1.5, ge=0)
    turn_rate_max: float = option(30.0, ge=0)
    distance_min: float = option(4.5, gt=0)
    distance_max: float = option(6.5, gt=0)
    elevation_min: float = option(0.0, ge=-80, le=80)
    elevation_max: float = option(25.0, ge=-80, le=80)
    fov: float = option(40.0, gt=1, lt=170)
    jitter: float = option(0.03, ge=0)
    """Camera position and aim jitter (metres, amplitude)."""
    motion_scale: float = option(1.0, ge=0, le=1)
    """Scales the non-leg bones' motion ranges (0: still)."""
    framing: Literal["crop", "scene"] = "crop"
    """``crop``: each frame a crop around the animal (its box's larger side a fraction ``fill_min`` to
    ``fill_max`` of the frame); ``scene``: the tracking camera's whole view."""
    fill_min: float = option(0.72, gt=0, le=1)
    fill_max: float = option(0.88, gt=0, le=1)

    def __post_init__(self) -> None:
        validate(self)
        if self.fill_min > self.fill_max:
            raise ConfigError(f"fill_min ({self.fill_min}) must not exceed fill_max ({self.fill_max})")
        for lo, hi in (("distance_min", "distance_max"), ("elevation_min", "elevation_max")):
            if getattr(self, lo) > getattr(self, hi):
                raise ConfigError(f"{lo} ({getattr(self, lo)}) must not exceed {hi} ({getattr(self, hi)})")


@dataclass(frozen=True)
class Animation:
    """An animated, filmed rig.

    Attributes:
        rotations: ``(N, B, 3, 3)`` local bone rotations (each in its bone's frame).
        root_rotation: ``(N, 3, 3)`` model -> world rotation (the heading, about world y).
        root_position: ``(N, 3)`` model origin in the world (metres).
        legs: ``(N, L, 3)`` the leg joints' axis-angle rotations used (radians).
        camera: ``N`` cameras (the cropped ones with ``framing="crop"``).
        sequence: ``(N,)`` int64 sequence index of every frame.
        posed: the rig's forward kinematics (world frames and heads).
        scene_K: ``(N, 3, 3)`` the tracking camera's intrinsics before any crop.
        crop: ``(N, 4)`` the crop window (x0, y0, x1, y1) in the tracking camera's pixels; the
            whole image ``(0, 0, W, H)`` with ``framing="scene"``.
    """

    rotations: Tensor
    root_rotation: Tensor
    root_position: Tensor
    legs: Tensor
    camera: Camera
    sequence: Tensor
    posed: Posed
    scene_K: Tensor
    crop: Tensor


def smooth_curves(
    n: int,
    channels: int,
    fps: float,
    generator: torch.Generator,
    freq: tuple[float, float] = (0.05, 0.5),
    terms: int = 3,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """``(n, channels)`` smooth curves in ``[-1, 1]``: per channel a sum of ``terms`` sinusoids with
    frequencies uniform in ``freq`` (Hz at ``fps``), random phases and non-negative weights that
    sum to one (so the bound holds exactly)."""
    f = freq[0] + (freq[1] - freq[0]) * torch.rand(channels, terms, generator=generator, dtype=dtype)
    phase = 2 * math.pi * torch.rand(channels, terms, generator=generator, dtype=dtype)
    weight = torch.rand(channels, terms, generator=generator, dtype=dtype) + 0.1
    weight = weight / weight.sum(-1, keepdim=True)
    t = torch.arange(n, dtype=dtype).reshape(n, 1, 1) / fps
    return (weight * torch.sin(2 * math.pi * f * t + phase)).sum(-1)


def yaw_matrix(yaw: Tensor) -> Tensor:
    """Rotations ``(..., 3, 3)`` about world +y by ``yaw`` (radians)."""
    c, s = torch.cos(yaw), torch.sin(yaw)
    one, zero = torch.ones_like(yaw), torch.zeros_like(yaw)
    return torch.stack([c, zero, s, zero, one, zero, -s, zero, c], -1).reshape(yaw.shape + (3, 3))


def _uniform(lo: float, hi: float, generator: torch.Generator) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=generator, dtype=torch.float64))


def animate(
    rig: Rig,
    legs: Tensor,
    width: int,
    height: int,
    options: SceneOptions | None = None,
    generator: torch.Generator | None = None,
) -> Animation:
    """Animate ``rig`` with leg poses ``legs`` ``(N, L, 3)`` (axis-angle, radians, in the order of
    ``rig.legs``) and film it with ``width`` x ``height`` cameras. Float64, on ``legs``' device."""
    options = options or SceneOptions()
    if legs.ndim != 3 or legs.shape[1:] != (rig.legs.num_joints, 3):
        raise ValueError(f"legs must be (N, {rig.legs.num_joints}, 3) axis-angle, got {tuple(legs.shape)}")
    n = len(legs)
    if n < 1:
        raise ValueError("no frames to animate")
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    device = legs.device
    dtype = torch.float64
    nb = rig.num_bones
    rot = torch.eye(3, dtype=dtype).repeat(n, nb, 1, 1)
    rot[:, list(rig.leg_bones)] = axis_angle_to_matrix(legs.detach().to("cpu", dtype))
    moving = sorted(rig.motion)
    if moving and options.motion_scale > 0:
        curves = smooth_curves(n, 3 * len(moving), options.fps, generator).reshape(n, len(moving), 3)
        lo = torch.tensor([[r.x[0], r.y[0], r.z[0]] for r in (rig.motion[i] for i in moving)], dtype=dtype)
        hi = torch.tensor([[r.x[1], r.y[1], r.z[1]] for r in (rig.motion[i] for i in moving)], dtype=dtype)
        mid, half = (lo + hi) / 2, (hi - lo) / 2 * options.motion_scale
        rot[:, moving] = euler_to_matrix(mid + half * curves, "XYZ", degrees=True)
    yaw = torch.empty(n, dtype=dtype)
    pos = torch.zeros(n, 3, dtype=dtype)
    eye = torch.empty(n, 3, dtype=dtype)
    target = torch.empty(n, 3, dtype=dtype)
    sequence = torch.empty(n, dtype=torch.int64)
    centre = torch.tensor([0.30, 1.0, 0.0], dtype=dtype)  # the body's centre in the model frame
    for k, s in enumerate(range(0, n, options.sequence_frames)):
        m = min(n, s + options.sequence_frames) - s
        sequence[s : s + m] = k
        heading = _uniform(0, 2 * math.pi, generator)
        speed = _uniform(0, options.speed_max, generator)
        turn = math.radians(options.turn_rate_max) * smooth_curves(m, 1, options.fps, generator)[:, 0]
        yaw_s = heading + torch.cumsum(turn, 0) / options.fps
        forward = torch.stack([torch.cos(yaw_s), torch.zeros_like(yaw_s), -torch.sin(yaw_s)], -1)
        path = torch.cumsum(speed * forward, 0) / options.fps
        path = path - path[0]
        yaw[s : s + m] = yaw_s
        pos[s : s + m] = path
        cam_yaw = _uniform(0, 2 * math.pi, generator)
        elev = math.radians(_uniform(options.elevation_min, options.elevation_max, generator))
        dist = _uniform(options.distance_min, options.distance_max, generator)
        aim = path + (yaw_matrix(yaw_s) @ centre)
        direction = [math.cos(elev) * math.sin(cam_yaw), math.sin(elev), math.cos(elev) * math.cos(cam_yaw)]
        offset = dist * torch.tensor(direction, dtype=dtype)
        shake = options.jitter * smooth_curves(m, 6, options.fps, generator, freq=(0.2, 1.5))
        eye[s : s + m] = aim + offset + shake[:, :3]
        target[s : s + m] = aim + shake[:, 3:]
    root_rotation = yaw_matrix(yaw)
    posed = rig.pose(rot, root_rotation, pos)
    hooves = rig.tails_of(posed)[:, list(rig.hooves), 1].min(dim=1).values  # (n,)
    lift = torch.stack([torch.zeros_like(hooves), -hooves, torch.zeros_like(hooves)], -1)
    pos = pos + lift
    eye = eye + lift
    target = target + lift
    posed = Posed(posed.rotations, posed.positions + lift.unsqueeze(1))
    r, t = look_at(eye, target)
    scene_k = intrinsics(width, height, options.fov).expand(n, 3, 3).clone()
    window = torch.tensor([0.0, 0.0, width, height], dtype=dtype).expand(n, 4).clone()
    if options.framing == "crop":  # drawn after everything else: the scene framing's draws are unchanged
        window = _crop_windows(rig, posed, Camera(scene_k, r, t, width, height), sequence, options, generator)
    crop_k = crop_intrinsics(scene_k, window, width)
    camera = Camera(crop_k.to(device), r.to(device), t.to(device), width, height)
    return Animation(
        rot.to(device),
        root_rotation.to(device),
        pos.to(device),
        legs.detach().to(device, dtype),
        camera,
        sequence.to(device),
        Posed(posed.rotations.to(device), posed.positions.to(device)),
        scene_k.to(device),
        window.to(device),
    )


def _crop_windows(
    rig: Rig, posed: Posed, camera: Camera, sequence: Tensor, options: SceneOptions, generator: torch.Generator
) -> Tensor:
    """Crop windows ``(N, 4)`` (x0, y0, x1, y1; the tracking camera's pixels, the image's aspect
    ratio) in which the larger side of the animal's box fills a fraction of the frame following a
    smooth curve in ``[fill_min, fill_max]`` per sequence, shifted smoothly by up to 60% of the slack
    on each side, so that the box (every ellipsoid and keypoint) stays inside."""
    w, h = camera.width, camera.height
    box = image_boxes(rig, posed, camera)
    pix, _ = camera.project(rig.keypoints_of(posed))
    box = torch.cat([torch.minimum(box[:, :2], pix.min(1).values), torch.maximum(box[:, 2:], pix.max(1).values)], -1)
    if not torch.isfinite(box).all() or box.abs().max() > 1e8:
        raise ConfigError(
            "framing: the animal reaches behind a camera (distance_min too small); use a larger "
            "distance or framing 'scene'"
        )
    n = len(box)
    curves = torch.empty(n, 3, dtype=box.dtype)
    for k in range(int(sequence.max()) + 1):
        rows = (sequence == k).nonzero().squeeze(1)
        curves[rows] = smooth_curves(len(rows), 3, options.fps, generator)
    fill = options.fill_min + (options.fill_max - options.fill_min) * (curves[:, 0] + 1) / 2
    bw, bh = box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]
    win_w = torch.maximum(bw, bh * w / h) / fill
    win_h = win_w * h / w
    cx = (box[:, 0] + box[:, 2]) / 2 + 0.6 * curves[:, 1] * (win_w - bw) / 2
    cy = (box[:, 1] + box[:, 3]) / 2 + 0.6 * curves[:, 2] * (win_h - bh) / 2
    return torch.stack([cx - win_w / 2, cy - win_h / 2, cx + win_w / 2, cy + win_h / 2], -1)
