"""Rotation conversions against float64 references built independently (matrix exponential of the
skew matrix, products of elementary rotations), at angles 0, 1e-7, pi - 1e-6 and random."""

import math

import pytest
import torch

from probpose import rotations as R

DTYPES = [torch.float64, torch.float32]
TOL = {torch.float64: 1e-12, torch.float32: 2e-6}
ANGLES = [0.0, 1e-7, math.pi - 1e-6, "random"]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def skew(v):
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], -1).reshape(v.shape[:-1] + (3, 3))


def ref_matrix(v):
    """float64 reference: exp of the skew-symmetric matrix."""
    return torch.linalg.matrix_exp(skew(v.double()))


def make_axis_angle(angle, n=257, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    axis = torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=torch.float64), dim=-1)
    if angle == "random":
        theta = torch.rand(n, 1, generator=g, dtype=torch.float64) * math.pi
    else:
        theta = torch.full((n, 1), angle, dtype=torch.float64)
    return (axis * theta).to(dtype)


def assert_close(a, b, dtype, scale=1.0):
    err = (a.double() - b.double()).abs().max().item()
    assert err <= TOL[dtype] * scale, err


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("angle", ANGLES)
def test_axis_angle_matrix_quaternion_6d_round_trips(angle, dtype, device):
    v = make_axis_angle(angle, dtype=dtype).to(device)
    m = R.axis_angle_to_matrix(v)
    assert m.dtype == dtype and m.device.type == device
    assert_close(m.cpu(), ref_matrix(v.cpu()), dtype)
    # matrix -> axis-angle recovers v (angles here are < pi, so canonical v is unique)
    assert_close(R.matrix_to_axis_angle(m).cpu(), v.cpu(), dtype, scale=4)
    # quaternion paths agree with the matrix
    q = R.axis_angle_to_quaternion(v)
    assert_close(torch.linalg.vector_norm(q, dim=-1).cpu(), torch.ones(len(v)), dtype)
    assert (q[..., 0] >= 0).all()
    assert_close(R.quaternion_to_matrix(q).cpu(), ref_matrix(v.cpu()), dtype)
    assert_close(R.quaternion_to_axis_angle(q).cpu(), v.cpu(), dtype, scale=4)
    q2 = R.matrix_to_quaternion(m)
    assert_close(q2.cpu(), q.cpu(), dtype, scale=4)
    # 6D
    d6 = R.matrix_to_rotation_6d(m)
    assert_close(R.rotation_6d_to_matrix(d6).cpu(), m.cpu(), dtype)


def test_exactly_pi_gives_the_same_rotation():
    v = make_axis_angle(math.pi)
    back = R.matrix_to_axis_angle(R.axis_angle_to_matrix(v))
    assert torch.allclose(back.norm(dim=-1), torch.full((len(v),), math.pi, dtype=torch.float64), atol=1e-12)
    assert_close(R.axis_angle_to_matrix(back), ref_matrix(v), torch.float64)


def test_6d_layout_and_gram_schmidt_of_noisy_input():
    m = R.axis_angle_to_matrix(make_axis_angle("random", n=50))
    d6 = R.matrix_to_rotation_6d(m)
    assert torch.equal(d6[:, :2], m[:, 0, :2]) and torch.equal(d6[:, 4:], m[:, 2, :2])
    noisy = d6 * 3 + 0.05 * torch.randn_like(d6)
    rot = R.rotation_6d_to_matrix(noisy)
    eye = torch.eye(3, dtype=torch.float64).expand_as(rot)
    assert_close(rot.transpose(-1, -2) @ rot, eye, torch.float64, scale=100)
    assert torch.allclose(torch.linalg.det(rot), torch.ones(50, dtype=torch.float64))


def ref_euler(angles, order, intrinsic):
    mats = []
    for k, ax in enumerate(order):
        e = torch.zeros(angles.shape[:-1] + (3,), dtype=torch.float64)
        e[..., "XYZ".index(ax)] = angles[..., k].double()
        mats.append(ref_matrix(e))
    return mats[0] @ mats[1] @ mats[2] if intrinsic else mats[2] @ mats[1] @ mats[0]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("intrinsic", [False, True])
@pytest.mark.parametrize("order", R.TAIT_BRYAN_ORDERS)
def test_euler_all_tait_bryan_orders(order, intrinsic, dtype):
    g = torch.Generator().manual_seed(1)
    ang = (torch.rand(300, 3, generator=g, dtype=torch.float64) * 2 - 1) * math.pi
    ang[:, 1] *= 0.49  # middle angle in (-pi/2, pi/2): the inverse is unique
    ang = ang.to(dtype)
    m = R.euler_to_matrix(ang, order, intrinsic=intrinsic)
    assert_close(m, ref_euler(ang, order, intrinsic), dtype, scale=2)
    assert_close(R.matrix_to_euler(m, order, intrinsic=intrinsic), ang, dtype, scale=10)
    deg = torch.rad2deg(ang)
    assert_close(R.euler_to_matrix(deg, order, intrinsic=intrinsic, degrees=True), m, dtype, scale=4)
    assert_close(R.matrix_to_euler(m, order, intrinsic=intrinsic, degrees=True), deg, dtype, scale=1e3)
    # every rotation (not just those made from Euler angles) round-trips through Euler
    rot = R.axis_angle_to_matrix(make_axis_angle("random", dtype=dtype, seed=3))
    back = R.euler_to_matrix(R.matrix_to_euler(rot, order, intrinsic=intrinsic), order, intrinsic=intrinsic)
    assert_close(back, rot, dtype, scale=10)


@pytest.mark.parametrize("order", R.TAIT_BRYAN_ORDERS)
def test_euler_gimbal_lock_reproduces_rotation(order):
    ang = torch.tensor([[0.3, math.pi / 2, -1.1], [2.0, -math.pi / 2, 0.4]], dtype=torch.float64)
    m = R.euler_to_matrix(ang, order)
    back = R.euler_to_matrix(R.matrix_to_euler(m, order), order)
    assert_close(back, m, torch.float64, scale=1e3)


def test_pasyn_convention_is_extrinsic_xyz():
    ang = torch.tensor([0.1, -0.7, 1.3], dtype=torch.float64)
    rz = ref_matrix(torch.tensor([0, 0, 1.3], dtype=torch.float64))
    ry = ref_matrix(torch.tensor([0, -0.7, 0], dtype=torch.float64))
    rx = ref_matrix(torch.tensor([0.1, 0, 0], dtype=torch.float64))
    assert_close(R.euler_to_matrix(ang, "XYZ"), rz @ ry @ rx, torch.float64)
    with pytest.raises(ValueError, match="Tait-Bryan"):
        R.euler_to_matrix(ang, "XYX")


@pytest.mark.parametrize("dtype", DTYPES)
def test_canonical_axis_angle(dtype):
    v = make_axis_angle("random", dtype=dtype)
    assert torch.equal(R.canonical_axis_angle(v), v)  # canonical input untouched
    g = torch.Generator().manual_seed(2)
    big = torch.randn(500, 3, generator=g, dtype=torch.float64) * 6
    c = R.canonical_axis_angle(big.to(dtype))
    assert (c.double().norm(dim=-1) <= math.pi + 1e-6).all()
    assert_close(R.axis_angle_to_matrix(c), ref_matrix(big), dtype, scale=20)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("angle", ANGLES)
def test_geodesic_distance(angle, dtype):
    a = R.axis_angle_to_matrix(make_axis_angle("random", dtype=dtype, seed=5))
    rel = make_axis_angle(angle, dtype=dtype, seed=6)
    b = a @ R.axis_angle_to_matrix(rel)
    d = R.geodesic_distance(a, b)
    assert_close(d, rel.double().norm(dim=-1), dtype, scale=50)
    assert (d >= 0).all() and (d <= math.pi).all()


def test_batch_shapes_preserved():
    v = torch.randn(2, 3, 4, 3)
    assert R.axis_angle_to_matrix(v).shape == (2, 3, 4, 3, 3)
    assert R.matrix_to_axis_angle(R.axis_angle_to_matrix(v)).shape == (2, 3, 4, 3)
    assert R.axis_angle_to_quaternion(v).shape == (2, 3, 4, 4)
    assert R.matrix_to_euler(R.axis_angle_to_matrix(v), "ZYX").shape == (2, 3, 4, 3)
    assert R.log_haar_correction(v).shape == (2, 3, 4)
    with pytest.raises(ValueError, match="trailing shape"):
        R.axis_angle_to_matrix(torch.zeros(4, 4))


@pytest.mark.parametrize(
    "fn",
    [
        R.axis_angle_to_matrix,
        lambda v: R.matrix_to_axis_angle(R.axis_angle_to_matrix(v)),
        R.axis_angle_to_quaternion,
        lambda v: R.quaternion_to_axis_angle(R.axis_angle_to_quaternion(v)),
        R.log_haar_correction,
        lambda v: R.matrix_to_euler(R.axis_angle_to_matrix(v), "XYZ"),
        lambda v: R.geodesic_distance(R.axis_angle_to_matrix(v), torch.eye(3, dtype=v.dtype)),
    ],
    ids=["aa2mat", "mat2aa", "aa2quat", "quat2aa", "haar", "euler", "geodesic"],
)
def test_gradients_finite_at_zero_and_correct_elsewhere(fn):
    zero = torch.zeros(4, 3, dtype=torch.float64, requires_grad=True)
    fn(zero).sum().backward()
    assert torch.isfinite(zero.grad).all()
    for angle in (1e-7, 0.5, math.pi - 1e-3):
        v = make_axis_angle(angle, n=5, seed=7).requires_grad_(True)
        assert torch.autograd.gradcheck(fn, (v,), eps=1e-9 if angle < 1e-3 else 1e-6, atol=1e-5)


def test_random_rotations_are_rotations():
    g = torch.Generator().manual_seed(0)
    m = R.random_rotations((1000,), generator=g, dtype=torch.float64)
    assert torch.allclose(torch.linalg.det(m), torch.ones(1000, dtype=torch.float64))
    assert torch.allclose(m.transpose(-1, -2) @ m, torch.eye(3, dtype=torch.float64).expand_as(m), atol=1e-12)


def test_nearest_rotation_recovers_a_rotation_and_never_returns_a_reflection():
    from probpose.rotations import geodesic_error_deg, nearest_rotation

    g = torch.Generator().manual_seed(3)
    aa = torch.randn(50, 3, generator=g, dtype=torch.float64)
    r = R.axis_angle_to_matrix(aa)
    noisy = 2.0 * r + 0.002 * torch.randn(50, 3, 3, generator=g, dtype=torch.float64)
    near = nearest_rotation(noisy)
    assert (torch.linalg.det(near) - 1).abs().max() < 1e-12
    assert (near.transpose(-1, -2) @ near - torch.eye(3, dtype=torch.float64)).abs().max() < 1e-12
    assert (near - r).abs().max() < 0.01
    flipped = nearest_rotation(-r)  # det -1: the nearest rotation, not the reflection itself
    assert (torch.linalg.det(flipped) - 1).abs().max() < 1e-12
    assert geodesic_error_deg(aa, aa).abs().max() < 1e-6
