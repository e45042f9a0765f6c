"""A small exact renderer: one ellipsoid per bone, ray-cast with a depth test.

Every ray is intersected analytically with every bone's ellipsoid, batched over frames, bones and
rays in torch (any device); the nearest hit wins. For ellipsoid ``x = C + M u`` (``|u| = 1``, camera
coordinates) and the ray ``x = s K^-1 (px, py, 1)`` through pixel position ``(px, py)``, the
intersection depth ``s`` solves ``s^2 a.a - 2 s a.q + q.q - 1 = 0`` with ``a = M^-1 K^-1 (px, py, 1)``,
``q = M^-1 C``. Both ``a.a`` (a quadratic form in ``(px, py, 1)``) and ``a.q`` (linear in it) are
computed for all (frame, bone, ray) at once as two matrix products with per-ray monomials, so the
cost per (bone, ray) pair is a handful of flops.

:func:`render` gives, per frame, an RGBA image (transparent background, so later stages can
composite; ``supersample`` x ``supersample`` rays per pixel, averaged: anti-aliased edges, alpha is
the pixel's coverage), the depth and bone buffers of the nearest surface seen in each pixel, and
:func:`cast_rays` the nearest surface along any rays (keypoint visibility uses the ray through
each keypoint itself). Shading: Lambert with a key light from above and a fill light from the
camera, over an ambient term; the optional procedural texture draws zebra stripes across each bone
(period ``stripe_period`` metres along it), dark hooves and muzzle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from probpose.kinematics.camera import Camera
from probpose.kinematics.forward import Posed
from probpose.kinematics.rig import Rig

__all__ = ["Frames", "render", "cast_rays", "image_boxes"]

LIGHT = (0.35, 1.0, 0.45)
"""Key light direction (towards the light) in the world; normalised before use."""
AMBIENT, KEY, FILL = 0.30, 0.55, 0.30
LIGHT_RGB = (0.93, 0.91, 0.86)
DARK_RGB = (0.06, 0.06, 0.07)


@dataclass(frozen=True)
class Frames:
    """Rendered frames: ``rgba`` ``(F, H, W, 4)`` uint8 (alpha: coverage); ``depth`` ``(F, H, W)``
    metres along the camera's z to the nearest surface seen in the pixel (``inf``: none); ``bone``
    ``(F, H, W)`` int16, that surface's bone (-1: background)."""

    rgba: Tensor
    depth: Tensor
    bone: Tensor


@dataclass(frozen=True)
class _Scene:
    """Ellipsoids in camera coordinates: ``m`` = M^-1 K^-1 ``(F, B, 3, 3)``, ``q`` = M^-1 C ``(F, B, 3)``,
    ``minv`` = M^-1 ``(F, B, 3, 3)``, ``quad`` ``(F, B, 6)`` and ``lin`` ``(F, B, 3)`` coefficients of
    a.a and a.q over the monomials (px^2, px py, py^2, px, py, 1) and (px, py, 1), ``cq`` = q.q - 1;
    ``boxes`` ``(F, B, 4)`` each ellipsoid's exact image bounding box (x0, y0, x1, y1) in pixels
    (the whole plane where it reaches behind the camera)."""

    m: Tensor
    q: Tensor
    minv: Tensor
    quad: Tensor
    lin: Tensor
    cq: Tensor
    boxes: Tensor


def _scene(rig: Rig, posed: Posed, camera: Camera, dtype: torch.dtype) -> _Scene:
    device = posed.positions.device
    centres, radii = (x.to(device=device, dtype=dtype) for x in rig.ellipsoids)
    g, p = posed.rotations.to(dtype), posed.positions.to(dtype)
    rc, tc = camera.R.to(dtype), camera.t.to(dtype)
    kinv = torch.linalg.inv(camera.K.to(torch.float64)).to(dtype)
    world_c = p + (g @ centres.unsqueeze(-1)).squeeze(-1)  # (F, B, 3)
    cen = (rc.unsqueeze(1) @ world_c.unsqueeze(-1)).squeeze(-1) + tc.unsqueeze(1)
    minv = (1 / radii).unsqueeze(-1) * (rc.unsqueeze(1) @ g).transpose(-1, -2)  # diag(1/r) G^T Rc^T
    q = (minv @ cen.unsqueeze(-1)).squeeze(-1)
    m = minv @ kinv.unsqueeze(1)
    qf = m.transpose(-1, -2) @ m  # (F, B, 3, 3): a.a = p~^T qf p~
    quad = torch.stack(
        [qf[..., 0, 0], 2 * qf[..., 0, 1], qf[..., 1, 1], 2 * qf[..., 0, 2], 2 * qf[..., 1, 2], qf[..., 2, 2]], -1
    )
    lin = (m.transpose(-1, -2) @ q.unsqueeze(-1)).squeeze(-1)  # a.q = lin . p~
    cq = (q * q).sum(-1) - 1
    big = radii.unsqueeze(-1) * (rc.unsqueeze(1) @ g).transpose(-1, -2)  # M^T = diag(r) G^T Rc^T: columns = rows of M
    k = camera.K.to(dtype)
    boxes = []
    for axis in (0, 1):  # tangent planes through the camera centre containing the other image axis
        mi, m3 = big[..., :, axis], big[..., :, 2]
        ci, cz = cen[..., axis], cen[..., 2]
        a2 = cz * cz - (m3 * m3).sum(-1)
        bh = ci * cz - (mi * m3).sum(-1)
        c2 = ci * ci - (mi * mi).sum(-1)
        disc = (bh * bh - a2 * c2).clamp_min(0).sqrt()
        ok = a2 > 1e-9
        t0 = torch.where(ok, (bh - disc) / a2.clamp_min(1e-9), torch.full_like(a2, -1e9))
        t1 = torch.where(ok, (bh + disc) / a2.clamp_min(1e-9), torch.full_like(a2, 1e9))
        f_ = k[:, axis, axis].unsqueeze(1)
        c_ = k[:, axis, 2].unsqueeze(1)
        boxes.append((f_ * t0 + c_, f_ * t1 + c_))
    box = torch.stack([boxes[0][0], boxes[1][0], boxes[0][1], boxes[1][1]], -1)
    return _Scene(m, q, minv, quad, lin, cq, box)


def _monomials(pix: Tensor) -> tuple[Tensor, Tensor]:
    """``pix`` ``(..., P, 2)`` -> ``(..., 6, P)`` quadratic and ``(..., 3, P)`` linear monomials."""
    x, y = pix[..., 0], pix[..., 1]
    one = torch.ones_like(x)
    return torch.stack([x * x, x * y, y * y, x, y, one], -2), torch.stack([x, y, one], -2)


def _nearest(scene: _Scene, pix: Tensor) -> tuple[Tensor, Tensor]:
    """Nearest hit along rays through pixel positions ``pix`` (``(P, 2)`` shared, or ``(F, P, 2)``):
    depth ``(F, P)`` (``inf``: none) and bone ``(F, P)`` (-1 where none).

    The discriminant is computed for every (frame, bone, ray); the depth only for the few pairs that
    hit (the camera is outside every ellipsoid, so a hit in front has ``a.q > 0``)."""
    phi2, phi1 = _monomials(pix)
    aa = scene.quad @ phi2  # (F, B, P)
    aq = scene.lin @ phi1
    disc = torch.addcmul(aq * aq, aa, scene.cq.unsqueeze(-1), value=-1)
    f, b, p = aa.shape
    fi, bi, pi = ((disc > 0) & (aq > 0)).nonzero(as_tuple=True)
    s = (aq[fi, bi, pi] - disc[fi, bi, pi].sqrt()) / aa[fi, bi, pi]
    keep = s > 1e-3
    fi, bi, pi, s = fi[keep], bi[keep], pi[keep], s[keep]
    flat = fi * p + pi
    depth = torch.full((f * p,), float("inf"), dtype=aa.dtype, device=aa.device)
    depth.scatter_reduce_(0, flat, s, "amin")
    win = s == depth[flat]
    bone = torch.full((f * p,), -1, dtype=torch.long, device=aa.device)
    bone.scatter_(0, flat[win], bi[win])
    return depth.reshape(f, p), bone.reshape(f, p)


TILE = 8
"""Rays per tile side in :func:`_nearest_tiled`."""


def _nearest_tiled(scene: _Scene, width: int, height: int, ss: int) -> tuple[Tensor, Tensor]:
    """Nearest hit for the regular grid of ``ss`` x ``ss`` rays per pixel (row-major over the
    ``height ss`` x ``width ss`` grid): depth and bone ``(F, P)``, as :func:`_nearest`.

    Rays are grouped in ``TILE`` x ``TILE`` tiles; a bone is tested only against the tiles its
    exact image bounding box overlaps, and in tile-local coordinates, so that both quadratic forms
    are one matrix product with a shared right-hand side."""
    dtype, device = scene.quad.dtype, scene.quad.device
    f = scene.quad.shape[0]
    gw, gh = width * ss, height * ss
    tw, th = -(-gw // TILE), -(-gh // TILE)
    # tile origins (the first ray's position, pixels) and extents
    step = 1.0 / ss
    ox = (torch.arange(tw, dtype=dtype, device=device) * TILE + 0.5) * step
    oy = (torch.arange(th, dtype=dtype, device=device) * TILE + 0.5) * step
    tyy, txx = torch.meshgrid(oy, ox, indexing="ij")
    tx0, ty0 = txx.reshape(-1), tyy.reshape(-1)  # (T,)
    span = (TILE - 1) * step
    box = scene.boxes  # (F, B, 4)
    over = (
        (box[..., 0:1] <= tx0 + span) & (box[..., 2:3] >= tx0) & (box[..., 1:2] <= ty0 + span) & (box[..., 3:4] >= ty0)
    )  # (F, B, T)
    fi, bi, ti = over.nonzero(as_tuple=True)
    x0, y0 = tx0[ti], ty0[ti]
    qa, qb, qc, qd, qe, qf = scene.quad[fi, bi].unbind(-1)
    quad = torch.stack(
        [
            qa,
            qb,
            qc,
            2 * qa * x0 + qb * y0 + qd,
            qb * x0 + 2 * qc * y0 + qe,
            qa * x0 * x0 + qb * x0 * y0 + qc * y0 * y0 + qd * x0 + qe * y0 + qf,
        ],
        -1,
    )
    la, lb, lc = scene.lin[fi, bi].unbind(-1)
    lin = torch.stack([la, lb, lc + la * x0 + lb * y0], -1)
    d = torch.arange(TILE, dtype=dtype, device=device) * step
    dyy, dxx = torch.meshgrid(d, d, indexing="ij")
    phi2, phi1 = _monomials(torch.stack([dxx.reshape(-1), dyy.reshape(-1)], -1))
    aa = quad @ phi2  # (pairs, TILE^2)
    aq = lin @ phi1
    disc = torch.addcmul(aq * aq, aa, scene.cq[fi, bi].unsqueeze(-1), value=-1)
    hit = (disc > 0) & (aq > 0)
    s = torch.where(hit, (aq - disc.clamp_min(0).sqrt()) / aa, torch.full_like(aa, float("inf")))
    s = s.masked_fill_(s <= 1e-3, float("inf"))
    # where each (tile, local ray) lands in the frame's ray grid (rays past the edge: masked)
    li = torch.arange(TILE, device=device)
    gx = (ti % tw).unsqueeze(-1) * TILE + li.repeat(TILE)  # (pairs, TILE^2)
    gy = (ti // tw).unsqueeze(-1) * TILE + li.repeat_interleave(TILE)
    inside = (gx < gw) & (gy < gh)
    s = s.masked_fill_(~inside, float("inf"))
    flat = (fi.unsqueeze(-1) * (gw * gh) + gy.clamp_max(gh - 1) * gw + gx.clamp_max(gw - 1)).reshape(-1)
    s = s.reshape(-1)
    depth = torch.full((f * gw * gh,), float("inf"), dtype=dtype, device=device)
    depth.scatter_reduce_(0, flat, s, "amin")
    win = (s == depth[flat]) & torch.isfinite(s)
    bone = torch.full((f * gw * gh,), -1, dtype=torch.long, device=device)
    bone.scatter_(0, flat[win], bi.unsqueeze(-1).expand(-1, TILE * TILE).reshape(-1)[win])
    return depth.reshape(f, -1), bone.reshape(f, -1)


def cast_rays(rig: Rig, posed: Posed, camera: Camera, pixels: Tensor) -> tuple[Tensor, Tensor]:
    """The nearest body surface along the rays through ``pixels`` ``(F, P, 2)`` (pixel positions,
    origin top-left corner): depth ``(F, P)`` in metres (``inf``: the ray misses) and bone ``(F, P)``
    int64 (-1: miss)."""
    scene = _scene(rig, posed, camera, torch.float64)
    return _nearest(scene, pixels.to(torch.float64))


def image_boxes(rig: Rig, posed: Posed, camera: Camera) -> Tensor:
    """The exact image bounding box ``(F, 4)`` (x0, y0, x1, y1; pixels, origin top-left corner) of
    the whole body seen by each camera: the union of every bone's ellipsoid's box (each the
    projection of its tangent planes through the camera centre, as the renderer uses to skip rays).
    Float64. A body reaching behind a camera gives an unbounded box (+-1e9)."""
    box = _scene(rig, posed, camera, torch.float64).boxes  # (F, B, 4)
    return torch.cat([box[..., :2].min(1).values, box[..., 2:].max(1).values], -1)


def _colours(
    rig: Rig, texture: bool, dtype: torch.dtype, device: torch.device
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    albedo = torch.tensor([b.albedo for b in rig.bones], dtype=dtype, device=device)
    stripes = torch.tensor([b.stripes and texture for b in rig.bones], device=device)
    dark_from = torch.tensor(
        [
            float(rig.lengths[i]) - b.dark_end if b.dark_end > 0 and texture else float("inf")
            for i, b in enumerate(rig.bones)
        ],
        dtype=dtype,
        device=device,
    )
    phase = torch.linspace(0, 3.0, rig.num_bones, dtype=dtype, device=device)
    return albedo, stripes, dark_from, phase


def render(
    rig: Rig,
    posed: Posed,
    camera: Camera,
    texture: Literal["stripes", "plain"] = "stripes",
    supersample: int = 2,
    stripe_period: float = 0.11,
    rays_per_chunk: int = 1 << 17,
) -> Frames:
    """Render posed rigs.

    Args:
        rig: the rig (its ellipsoids and colours).
        posed: ``rotations (F, B, 3, 3)`` and ``positions (F, B, 3)`` in the world (metres).
        camera: ``F`` cameras (``K``, ``R``, ``t`` with a leading ``F``), ``width`` x ``height``.
        texture: ``"stripes"`` (zebra) or ``"plain"`` (uniform light coat).
        supersample: rays per pixel along each axis (1: one ray through each pixel's centre).
        stripe_period: metres per black-and-white stripe pair.
        rays_per_chunk: frames are processed in chunks of about this many rays (memory bound:
            about 40 bytes per ray and bone).

    Returns:
        :class:`Frames` on the pose's device.
    """
    if texture not in ("stripes", "plain"):
        raise ValueError(f"texture must be 'stripes' or 'plain', got {texture!r}")
    if supersample < 1:
        raise ValueError(f"supersample must be >= 1, got {supersample}")
    n = posed.positions.shape[0]
    w, h, ss = camera.width, camera.height, supersample
    device = posed.positions.device
    dtype = torch.float32
    centres, radii = (x.to(device=device, dtype=dtype) for x in rig.ellipsoids)
    albedo, stripes, dark_from, phase = _colours(rig, texture == "stripes", dtype, device)
    light = torch.tensor(LIGHT, dtype=dtype, device=device)
    light = light / light.norm()
    light_rgb = torch.tensor(LIGHT_RGB, dtype=dtype, device=device)
    dark_rgb = torch.tensor(DARK_RGB, dtype=dtype, device=device)
    # sample positions (row-major over the supersampled grid), in output pixel units
    offs = (torch.arange(ss, dtype=dtype, device=device) + 0.5) / ss
    ys = (torch.arange(h, dtype=dtype, device=device).unsqueeze(1) + offs).reshape(-1)
    xs = (torch.arange(w, dtype=dtype, device=device).unsqueeze(1) + offs).reshape(-1)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    pix = torch.stack([gx.reshape(-1), gy.reshape(-1)], -1)  # (P, 2), P = h ss * w ss
    pt = torch.cat([pix, torch.ones(len(pix), 1, dtype=dtype, device=device)], 1)  # (P, 3) homogeneous
    n_rays = len(pix)
    chunk = max(1, rays_per_chunk // n_rays)
    rgba = torch.empty(n, h, w, 4, dtype=torch.uint8, device=device)
    depth = torch.empty(n, h, w, dtype=dtype, device=device)
    bone = torch.empty(n, h, w, dtype=torch.int16, device=device)
    for s0 in range(0, n, chunk):
        sl = slice(s0, min(n, s0 + chunk))
        cam = Camera(camera.K[sl], camera.R[sl], camera.t[sl], w, h)
        scene = _scene(rig, Posed(posed.rotations[sl], posed.positions[sl]), cam, dtype)
        f = scene.m.shape[0]
        zbuf, hit_bone = _nearest_tiled(scene, w, h, ss)  # (f, P)
        covered = hit_bone >= 0
        idx = hit_bone.clamp_min(0)
        fr = torch.arange(f, device=device).unsqueeze(1)
        m_hit = scene.m[fr, idx]  # (f, P, 3, 3)
        a = (m_hit @ pt.unsqueeze(-1)).squeeze(-1)  # (f, P, 3)
        zsafe = torch.where(covered, zbuf, torch.zeros_like(zbuf))
        u = zsafe.unsqueeze(-1) * a - scene.q[fr, idx]  # unit-sphere coordinates of the hit (f, P, 3)
        normal = (scene.minv[fr, idx].transpose(-1, -2) @ u.unsqueeze(-1)).squeeze(-1)  # outward, camera frame
        normal = normal / normal.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        key = cam.R.to(dtype) @ light  # (f, 3): the light's direction in camera coordinates
        diffuse = (normal * key.unsqueeze(1)).sum(-1).clamp_min(0)
        ray = torch.linalg.solve(cam.K.to(dtype), pt.T.expand(f, 3, n_rays)).transpose(1, 2)  # (f, P, 3)
        fill = (-(normal * ray).sum(-1) / ray.norm(dim=-1)).clamp_min(0)
        shade = AMBIENT + KEY * diffuse + FILL * fill
        along = centres[idx, 1] + radii[idx, 1] * u[..., 1]  # metres along the bone from its head
        pattern = torch.cos(2 * torch.pi * along / stripe_period + phase[idx])
        light_part = torch.where(stripes[idx], torch.sigmoid(6 * pattern), torch.ones_like(pattern))
        light_part = torch.where(along > dark_from[idx], torch.zeros_like(light_part), light_part)
        colour = dark_rgb + (albedo[idx].unsqueeze(-1) * light_rgb - dark_rgb) * light_part.unsqueeze(-1)
        rgb = (colour * shade.unsqueeze(-1)).clamp(0, 1) * covered.unsqueeze(-1)  # premultiplied
        # average the ss x ss samples of each pixel
        rgb = rgb.reshape(f, h, ss, w, ss, 3).mean((2, 4))
        cov = covered.to(dtype).reshape(f, h, ss, w, ss).mean((2, 4))
        colour_px = rgb / cov.clamp_min(1e-6).unsqueeze(-1)
        out = torch.cat([colour_px, cov.unsqueeze(-1)], -1).mul(255).round().clamp(0, 255).to(torch.uint8)
        rgba[sl] = out
        zb = zbuf.reshape(f, h, ss, w, ss).permute(0, 1, 3, 2, 4).reshape(f, h, w, ss * ss)
        ib = hit_bone.reshape(f, h, ss, w, ss)
        ib = ib.permute(0, 1, 3, 2, 4).reshape(f, h, w, ss * ss)
        zmin, which = zb.min(-1)
        depth[sl] = zmin
        bone[sl] = ib.gather(-1, which.unsqueeze(-1)).squeeze(-1).to(torch.int16)
    return Frames(rgba, depth, bone)
