"""The axis-angle <-> Haar change of measure (docs/architecture.md, "Event space and metrics"), checked by Monte Carlo.

Uniform random rotations are generated independently of the formula under test (normalised
Gaussian quaternions) and mapped to canonical axis-angle. Their empirical density there must equal
exp(log_haar_correction), i.e. their log-density with respect to normalised Haar is 0."""

import math

import torch

from probpose import rotations as R

N = 400_000


def uniform_axis_angle(n=N, seed=0):
    g = torch.Generator().manual_seed(seed)
    return R.matrix_to_axis_angle(R.random_rotations((n,), generator=g, dtype=torch.float64))


def test_correction_value_at_zero_and_closed_form():
    assert math.isclose(R.log_haar_correction(torch.zeros(3)).item(), -math.log(8 * math.pi**2), rel_tol=1e-6)
    phi = torch.tensor([1e-4, 0.5, 2.0, math.pi], dtype=torch.float64)
    v = torch.stack([phi, torch.zeros_like(phi), torch.zeros_like(phi)], -1)
    expected = torch.log(2 * (1 - torch.cos(phi)) / phi**2) - math.log(8 * math.pi**2)
    assert torch.allclose(R.log_haar_correction(v), expected, atol=1e-10)


def test_density_integrates_to_one_over_the_pi_ball():
    # importance sampling with a uniform proposal on the ball of radius pi
    g = torch.Generator().manual_seed(1)
    u = torch.randn(N, 3, generator=g, dtype=torch.float64)
    r = math.pi * torch.rand(N, 1, generator=g, dtype=torch.float64) ** (1 / 3)
    v = torch.nn.functional.normalize(u, dim=-1) * r
    w = torch.exp(R.log_haar_correction(v)) * (4 / 3 * math.pi**4)
    est, se = w.mean().item(), w.std().item() / math.sqrt(N)
    assert abs(est - 1) < 4 * se, (est, se)


def test_uniform_rotations_have_haar_log_density_zero():
    v = uniform_axis_angle()
    # empirical density in small balls around a few centres, against exp(correction)
    centres = torch.tensor(
        [[0.0, 0, 0], [0.5, -0.3, 0.2], [1.2, 0.4, -0.9], [0.1, 2.2, 0.5], [-1.0, -1.6, 1.5]], dtype=torch.float64
    )
    radius = 0.25
    vol = 4 / 3 * math.pi * radius**3
    for c in centres:
        inside = ((v - c).norm(dim=-1) < radius).double()
        k = inside.sum().item()
        density = k / (N * vol)
        # exact mean of exp(correction) over the ball, by fine quadrature in the same ball
        g = torch.Generator().manual_seed(2)
        u = torch.nn.functional.normalize(torch.randn(200_000, 3, generator=g, dtype=torch.float64), dim=-1)
        pts = c + u * radius * torch.rand(200_000, 1, generator=g, dtype=torch.float64) ** (1 / 3)
        model = torch.exp(R.log_haar_correction(pts)).mean().item()
        log_haar = math.log(density) - math.log(model)  # empirical log p_Haar
        tol = 4 / math.sqrt(k)  # Poisson relative error of the count
        assert abs(log_haar) < tol, (c.tolist(), log_haar, tol)


def test_angle_distribution_of_uniform_rotations():
    # P(angle <= t) = (t - sin t) / pi follows from the correction; Kolmogorov-Smirnov at 1%
    angle = uniform_axis_angle(n=100_000, seed=3).norm(dim=-1).sort().values
    cdf = (angle - torch.sin(angle)) / math.pi
    emp = torch.arange(1, len(angle) + 1, dtype=torch.float64) / len(angle)
    ks = (cdf - emp).abs().max().item()
    assert ks < 1.63 / math.sqrt(len(angle)), ks


def test_expectations_agree_between_haar_and_axis_angle_density():
    # E_uniform[f(v)] from rotations == integral of f(v) exp(correction) over the ball
    v = uniform_axis_angle(seed=4)
    g = torch.Generator().manual_seed(5)
    u = torch.nn.functional.normalize(torch.randn(N, 3, generator=g, dtype=torch.float64), dim=-1)
    b = u * math.pi * torch.rand(N, 1, generator=g, dtype=torch.float64) ** (1 / 3)
    w = torch.exp(R.log_haar_correction(b)) * (4 / 3 * math.pi**4)
    for f in (lambda x: x[:, 0] ** 2, lambda x: (x[:, 2] > 1.0).double(), lambda x: x.norm(dim=-1)):
        a_vals, b_vals = f(v), f(b) * w
        diff = a_vals.mean() - b_vals.mean()
        se = math.sqrt(a_vals.var().item() / N + b_vals.var().item() / N)
        assert abs(diff.item()) < 4 * se, (diff.item(), se)
