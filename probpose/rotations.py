"""Rotation representations and the axis-angle <-> Haar change of measure.

All functions are batched over leading dimensions, differentiable, work in float32 and float64
on any device, and are stable at angle 0 (Taylor branches of functions of theta^2, so values and
gradients stay finite) and near pi (Shepperd's method for matrix -> quaternion).

Conventions:

- axis-angle ``v`` ``(..., 3)``: rotation by ``|v|`` radians about ``v / |v|``. *Canonical*
  axis-angle has angle in ``[0, pi]``; every function that returns axis-angle returns it canonical.
- rotation matrix ``(..., 3, 3)``, acting on column vectors.
- unit quaternion ``(..., 4)`` as ``(w, x, y, z)``; returned with ``w >= 0``.
- 6D ``(..., 6)``: the first two columns of the matrix, ``R[..., :, :2]`` flattened row-major,
  i.e. ``(R00, R01, R10, R11, R20, R21)`` (the VPoser layout of Zhou et al.'s representation).
- Euler ``(..., 3)``: angle ``k`` is about axis ``order[k]``. *Extrinsic* (static axes, the
  default; Blender's and SciPy's lowercase convention): ``R = R_{order[2]} R_{order[1]} R_{order[0]}``.
  *Intrinsic* (rotating axes): ``R = R_{order[0]} R_{order[1]} R_{order[2]}``. All six Tait-Bryan
  orders, radians or degrees.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = [
    "geodesic_error_deg",
    "nearest_rotation",
    "axis_angle_to_matrix",
    "matrix_to_axis_angle",
    "axis_angle_to_quaternion",
    "quaternion_to_axis_angle",
    "quaternion_to_matrix",
    "matrix_to_quaternion",
    "matrix_to_rotation_6d",
    "rotation_6d_to_matrix",
    "euler_to_matrix",
    "matrix_to_euler",
    "TAIT_BRYAN_ORDERS",
    "canonical_axis_angle",
    "geodesic_distance",
    "log_haar_correction",
    "LOG_HAAR_VOLUME",
    "random_rotations",
]

# Threshold on theta^2 below which Taylor series are used; the first omitted term is O(theta^6),
# below 1e-18 relative there.
_SMALL_T2 = 1e-6


def _of_theta(t2: Tensor, fn: Callable[[Tensor], Tensor], taylor: Callable[[Tensor], Tensor]) -> Tensor:
    """``fn(theta)`` given ``theta^2``, with ``taylor(theta^2)`` near 0 (no NaN gradients)."""
    small = t2 < _SMALL_T2
    theta = torch.sqrt(torch.where(small, torch.ones_like(t2), t2))
    return torch.where(small, taylor(t2), fn(theta))


def _sinc(t2: Tensor) -> Tensor:
    """sin(theta) / theta from theta^2."""
    return _of_theta(t2, lambda t: torch.sin(t) / t, lambda s: 1 - s / 6 + s * s / 120)


def _cos(t2: Tensor) -> Tensor:
    return _of_theta(t2, torch.cos, lambda s: 1 - s / 2 + s * s / 24)


def _check_last(x: Tensor, shape: tuple[int, ...], what: str) -> None:
    if tuple(x.shape[x.dim() - len(shape) :]) != shape:
        raise ValueError(f"{what} must have trailing shape {shape}, got {tuple(x.shape)}")


def _norm(x: Tensor, eps: float = 0.0) -> Tensor:
    """``max(|x|, eps)`` over the last dimension, kept ``(..., 1)``; the gradient is finite (0 where
    clamped). A sum of squares, not ``torch.linalg.vector_norm``, which is 5-10x slower on the strided
    3-vectors of a 6D rotation on a CPU."""
    s = (x * x).sum(-1, keepdim=True)
    return torch.sqrt(s.clamp_min(eps * eps)) if eps > 0 else torch.sqrt(s)


# ---------------------------------------------------------------------- axis-angle <-> matrix
def axis_angle_to_matrix(v: Tensor) -> Tensor:
    """Axis-angle ``(..., 3)`` (radians, any angle) -> rotation matrix ``(..., 3, 3)`` (Rodrigues).

    ``R = I + a K + b K^2`` with ``K`` the cross-product matrix of ``v``, ``a = sin t / t`` and
    ``b = (1 - cos t) / t^2``; written out entry by entry (``K^2 = v v^T - t^2 I``), one stack
    and no matrix product (2-3x faster than building ``K`` and ``K @ K`` on a CPU)."""
    _check_last(v, (3,), "axis-angle")
    t2 = (v * v).sum(-1)
    a = _sinc(t2)  # sin t / t
    half = _sinc(t2 / 4)
    b = 0.5 * half * half  # (1 - cos t) / t^2 = 2 sin^2(t/2) / t^2, no cancellation
    x, y, z = v.unbind(-1)
    bx, by, bz = b * x, b * y, b * z
    ax, ay, az = a * x, a * y, a * z
    bxy, bxz, byz = bx * y, bx * z, by * z
    m = [
        1 - (by * y + bz * z), bxy - az, bxz + ay,
        bxy + az, 1 - (bx * x + bz * z), byz - ax,
        bxz - ay, byz + ax, 1 - (bx * x + by * y),
    ]  # fmt: skip
    return torch.stack(m, dim=-1).reshape(v.shape + (3,))


def matrix_to_axis_angle(r: Tensor) -> Tensor:
    """Rotation matrix ``(..., 3, 3)`` -> canonical axis-angle ``(..., 3)``, angle in ``[0, pi]``."""
    return quaternion_to_axis_angle(matrix_to_quaternion(r))


# ---------------------------------------------------------------------- quaternions
def axis_angle_to_quaternion(v: Tensor) -> Tensor:
    """Axis-angle ``(..., 3)`` -> unit quaternion ``(..., 4)`` ``(w, x, y, z)``.

    ``w >= 0`` for canonical input (angle <= pi); angles above pi give ``w < 0``, the same rotation.
    """
    _check_last(v, (3,), "axis-angle")
    t2 = (v * v).sum(-1)
    w = _cos(t2 / 4)
    xyz = v * (0.5 * _sinc(t2 / 4))[..., None]  # sin(t/2) / t = 0.5 * sinc(t/2)
    return torch.cat([w[..., None], xyz], dim=-1)


def quaternion_to_axis_angle(q: Tensor) -> Tensor:
    """Quaternion ``(..., 4)`` ``(w, x, y, z)`` (normalised here) -> canonical axis-angle ``(..., 3)``."""
    _check_last(q, (4,), "quaternion")
    q = q / torch.linalg.vector_norm(q, dim=-1, keepdim=True)
    sign = torch.where(q[..., :1] < 0, -torch.ones_like(q[..., :1]), torch.ones_like(q[..., :1]))
    q = q * sign
    w, xyz = q[..., 0], q[..., 1:]
    n2 = (xyz * xyz).sum(-1)
    small = n2 < 1e-8
    n = torch.sqrt(torch.where(small, torch.ones_like(n2), n2))
    # angle / n with angle = 2 atan2(n, w); near n = 0: 2/w (1 - n^2 / (3 w^2)).
    w_safe = torch.where(small, w, torch.ones_like(w))
    factor = torch.where(small, 2 / w_safe * (1 - n2 / (3 * w_safe * w_safe)), 2 * torch.atan2(n, w) / n)
    return xyz * factor[..., None]


def quaternion_to_matrix(q: Tensor) -> Tensor:
    """Quaternion ``(..., 4)`` ``(w, x, y, z)`` (normalised here) -> rotation matrix ``(..., 3, 3)``."""
    _check_last(q, (4,), "quaternion")
    q = q / torch.linalg.vector_norm(q, dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    m = [
        1 - 2 * (y * y + z * z),
        2 * (x * y - w * z),
        2 * (x * z + w * y),
        2 * (x * y + w * z),
        1 - 2 * (x * x + z * z),
        2 * (y * z - w * x),
        2 * (x * z - w * y),
        2 * (y * z + w * x),
        1 - 2 * (x * x + y * y),
    ]
    return torch.stack(m, dim=-1).reshape(q.shape[:-1] + (3, 3))


_SHEPPERD = torch.tensor(((0, 4, 5, 6), (4, 1, 7, 8), (5, 7, 2, 9), (6, 8, 9, 3)))
"""For each largest quaternion component (w, x, y, z), where :func:`matrix_to_quaternion`'s ten
values hold ``4 q_best q_i`` for ``i = w, x, y, z`` (built once, not per call)."""


def matrix_to_quaternion(r: Tensor) -> Tensor:
    """Rotation matrix ``(..., 3, 3)`` -> unit quaternion ``(..., 4)`` with ``w >= 0``.

    Shepperd's method: of the four ways to recover the quaternion, the one dividing by the largest
    component is used, so it is accurate at every angle including pi. Only that way is gathered
    (:data:`_SHEPPERD`), not all four computed and masked.
    """
    _check_last(r, (3, 3), "rotation matrix")
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = r.reshape(r.shape[:-2] + (9,)).unbind(-1)
    values = torch.stack(
        [
            1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22,  # 4 w^2, 4 x^2, ...
            m21 - m12, m02 - m20, m10 - m01, m10 + m01, m02 + m20, m12 + m21,
        ],
        dim=-1,
    )  # fmt: skip
    best = values[..., :4].argmax(-1)  # the largest of 4 w^2 ... 4 z^2: at least 1 (they sum to 4)
    numerators = values.gather(-1, _SHEPPERD.to(r.device)[best])  # 4 q_best q_i
    q = numerators / (2 * torch.sqrt(values.gather(-1, best[..., None])))
    q = torch.where(q[..., :1] < 0, -q, q)
    return q / _norm(q)


# ---------------------------------------------------------------------- 6D
def matrix_to_rotation_6d(r: Tensor) -> Tensor:
    """Rotation matrix ``(..., 3, 3)`` -> 6D ``(..., 6)``: the first two columns, row-major."""
    _check_last(r, (3, 3), "rotation matrix")
    return r[..., :, :2].reshape(r.shape[:-2] + (6,))


def rotation_6d_to_matrix(d6: Tensor, eps: float = 1e-12) -> Tensor:
    """6D ``(..., 6)`` (any two non-parallel 3-vectors, see module doc) -> rotation matrix
    ``(..., 3, 3)`` by Gram-Schmidt. Exact inverse of :func:`matrix_to_rotation_6d`."""
    _check_last(d6, (6,), "6D rotation")
    a = d6.reshape(d6.shape[:-1] + (3, 2))
    a1, a2 = a[..., 0], a[..., 1]
    b1 = a1 / _norm(a1, eps)
    u2 = a2 - (b1 * a2).sum(-1, keepdim=True) * b1
    b2 = u2 / _norm(u2, eps)
    x1, y1, z1 = b1.unbind(-1)
    x2, y2, z2 = b2.unbind(-1)
    b3 = torch.stack([y1 * z2 - z1 * y2, z1 * x2 - x1 * z2, x1 * y2 - y1 * x2], dim=-1)  # b1 x b2
    return torch.stack([b1, b2, b3], dim=-1)


# ---------------------------------------------------------------------- Euler
TAIT_BRYAN_ORDERS = ("XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX")
_AXIS = {"X": 0, "Y": 1, "Z": 2}


def _parse_order(order: str) -> tuple[int, int, int]:
    o = order.upper()
    if o not in TAIT_BRYAN_ORDERS:
        raise ValueError(f"Euler order must be one of the Tait-Bryan orders {TAIT_BRYAN_ORDERS}, got {order!r}")
    return _AXIS[o[0]], _AXIS[o[1]], _AXIS[o[2]]


def _elementary(axis: int, angle: Tensor) -> Tensor:
    c, s = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    if axis == 0:
        m = [one, zero, zero, zero, c, -s, zero, s, c]
    elif axis == 1:
        m = [c, zero, s, zero, one, zero, -s, zero, c]
    else:
        m = [c, -s, zero, s, c, zero, zero, zero, one]
    return torch.stack(m, dim=-1).reshape(angle.shape + (3, 3))


def euler_to_matrix(angles: Tensor, order: str = "XYZ", *, intrinsic: bool = False, degrees: bool = False) -> Tensor:
    """Euler angles ``(..., 3)`` -> rotation matrix ``(..., 3, 3)``.

    ``angles[..., k]`` is the angle about axis ``order[k]``. Extrinsic (default):
    ``R = R_{order[2]} R_{order[1]} R_{order[0]}``; intrinsic: ``R = R_{order[0]} R_{order[1]} R_{order[2]}``.
    PASyn's ``R = Rz Ry Rx`` with columns ``(x, y, z)`` is ``order="XYZ"``, extrinsic.
    """
    _check_last(angles, (3,), "Euler angles")
    axes = _parse_order(order)
    if degrees:
        angles = torch.deg2rad(angles)
    mats = [_elementary(ax, angles[..., k]) for k, ax in enumerate(axes)]
    return mats[0] @ mats[1] @ mats[2] if intrinsic else mats[2] @ mats[1] @ mats[0]


def matrix_to_euler(r: Tensor, order: str = "XYZ", *, intrinsic: bool = False, degrees: bool = False) -> Tensor:
    """Rotation matrix ``(..., 3, 3)`` -> Euler angles ``(..., 3)`` (inverse of :func:`euler_to_matrix`).

    The middle angle is in ``[-pi/2, pi/2]``, the others in ``(-pi, pi]``. At gimbal lock (middle
    angle +-pi/2) the first angle is set to 0 and the rotation is still reproduced exactly.
    """
    _check_last(r, (3, 3), "rotation matrix")
    if intrinsic:
        rev = order.upper()[::-1]
        return matrix_to_euler(r, rev, intrinsic=False, degrees=degrees).flip(-1)
    i, j, k = _parse_order(order)
    s = 1.0 if (i, j, k) in ((0, 1, 2), (1, 2, 0), (2, 0, 1)) else -1.0
    cos_b = torch.sqrt(r[..., i, i] ** 2 + r[..., j, i] ** 2)
    b = torch.atan2(-s * r[..., k, i], cos_b)
    lock = cos_b < 1e-6 if r.dtype == torch.float64 else cos_b < 1e-3
    a = torch.where(lock, torch.zeros_like(b), torch.atan2(s * r[..., k, j], r[..., k, k]))
    c = torch.where(lock, torch.atan2(-s * r[..., i, j], r[..., j, j]), torch.atan2(s * r[..., j, i], r[..., i, i]))
    out = torch.stack([a, b, c], dim=-1)
    return torch.rad2deg(out) if degrees else out


# ---------------------------------------------------------------------- canonical form, distance
def canonical_axis_angle(v: Tensor) -> Tensor:
    """The same rotation with angle in ``[0, pi]``: ``(..., 3)`` -> ``(..., 3)``.

    Inputs already canonical are returned unchanged (bit for bit)."""
    _check_last(v, (3,), "axis-angle")
    t2 = (v * v).sum(-1)
    big = t2 > math.pi**2
    theta = torch.sqrt(torch.where(big, t2, torch.ones_like(t2)))
    t = torch.remainder(theta, 2 * math.pi)
    new = torch.where(t > math.pi, t - 2 * math.pi, t)  # signed angle in (-pi, pi]
    return torch.where(big[..., None], v * (new / theta)[..., None], v)


def geodesic_distance(r1: Tensor, r2: Tensor) -> Tensor:
    """Angle of ``r1^T r2`` in radians, ``[0, pi]``: ``(..., 3, 3), (..., 3, 3) -> (...)``.

    Computed as ``atan2(sin, cos)`` (accurate at 0 and at pi, unlike ``acos``); the gradient at
    distance 0 is 0 (a subgradient of the kink)."""
    _check_last(r1, (3, 3), "rotation matrix")
    _check_last(r2, (3, 3), "rotation matrix")
    r = r1.transpose(-1, -2) @ r2
    axial = torch.stack([r[..., 2, 1] - r[..., 1, 2], r[..., 0, 2] - r[..., 2, 0], r[..., 1, 0] - r[..., 0, 1]], -1)
    n2 = (axial * axial).sum(-1)
    pos = n2 > 0
    sin2 = torch.where(pos, torch.sqrt(torch.where(pos, n2, torch.ones_like(n2))), torch.zeros_like(n2))
    cos2 = r[..., 0, 0] + r[..., 1, 1] + r[..., 2, 2] - 1  # 2 cos, 2 sin: scale cancels in atan2
    return torch.atan2(sin2, cos2)


# ---------------------------------------------------------------------- Haar measure
LOG_HAAR_VOLUME = math.log(8 * math.pi**2)
"""log of 8 pi^2, the volume of SO(3) in axis-angle coordinates' natural measure."""


def log_haar_correction(v: Tensor) -> Tensor:
    """Per-rotation change of measure from normalised Haar to axis-angle Lebesgue: ``(..., 3) -> (...)``.

    For a canonical axis-angle ``v`` with angle ``phi`` and a density ``p_Haar`` on SO(3)
    (normalised Haar measure, total mass 1)::

        log p_aa(v) = log p_Haar(R(v)) + log(2 (1 - cos phi) / phi^2) - log(8 pi^2)

    This returns the last two terms (nats). Sum it over joints and subtract from a model's
    axis-angle log-density to get its log-density with respect to Haar; a uniform random rotation
    has ``log p_aa(v) = log_haar_correction(v)``. Stable at ``phi = 0`` (value ``-log 8 pi^2``).
    """
    _check_last(v, (3,), "axis-angle")
    t2 = (v * v).sum(-1)
    # 2 (1 - cos phi) / phi^2 = sinc(phi / 2)^2
    return 2 * torch.log(_sinc(t2 / 4)) - LOG_HAAR_VOLUME


def random_rotations(
    shape: tuple[int, ...] | torch.Size,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Rotation matrices ``shape + (3, 3)`` drawn from the Haar (uniform) distribution on SO(3)
    (normalised Gaussian quaternions)."""
    q = torch.randn(tuple(shape) + (4,), generator=generator, dtype=dtype, device=device)
    return quaternion_to_matrix(q)


def geodesic_error_deg(pose: Tensor, truth: Tensor) -> Tensor:
    """The geodesic angle between two sets of axis-angle rotations ``(..., 3)`` (radians), in
    degrees ``(...)``, computed in float64: the one rotation error every report uses."""
    return torch.rad2deg(geodesic_distance(axis_angle_to_matrix(pose.double()), axis_angle_to_matrix(truth.double())))


def nearest_rotation(m: Tensor) -> Tensor:
    """The rotation nearest (Frobenius) to each matrix ``(..., 3, 3)``: ``U diag(1, 1, det(U V^T)) V^T``
    from ``m = U S V^T`` (the determinant's sign keeps it a rotation, not a reflection)."""
    u, _, vt = torch.linalg.svd(m)
    d = torch.sign(torch.linalg.det(u @ vt))
    fix = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], -1))
    return u @ fix @ vt


def mean_rotation(rot: Tensor) -> Tensor:
    """The rotation nearest (Frobenius) to the average of ``rot`` ``(S, ..., 3, 3)`` over ``S``
    (the chordal L2 mean)."""
    return nearest_rotation(rot.mean(0))
