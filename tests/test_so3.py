"""TangentGaussianSO3: a normalised density on SO(3) (over Haar and over the axis-angle ball), its
small-sigma limit, its exact sampler, and its support and arguments."""

import math

import pytest
import torch

from probpose.distributions.so3 import TangentGaussianSO3, log_normaliser
from probpose.rotations import axis_angle_to_matrix, geodesic_distance, log_haar_correction, random_rotations

F64 = torch.float64


@pytest.mark.parametrize("sigma", [0.3, 1.0, 3.0])
def test_so3_likelihood_integrates_to_one_over_haar(sigma):
    g = torch.Generator().manual_seed(0)
    mean = random_rotations((), generator=g, dtype=F64)
    d = TangentGaussianSO3(mean, torch.tensor(sigma, dtype=F64))
    w = d.log_prob_haar(random_rotations((400_000,), generator=g, dtype=F64)).exp()
    assert abs(w.mean().item() - 1) < 4 * w.std().item() / math.sqrt(len(w))


def test_so3_likelihood_integrates_to_one_over_axis_angle():
    """The axis-angle form: uniform proposal on the pi-ball (Lebesgue)."""
    g = torch.Generator().manual_seed(1)
    mean = axis_angle_to_matrix(torch.tensor([0.4, -0.2, 0.9], dtype=F64))
    d = TangentGaussianSO3(mean, torch.tensor(0.7, dtype=F64))
    n = 400_000
    u = torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=F64), dim=-1)
    v = u * math.pi * torch.rand(n, 1, generator=g, dtype=F64) ** (1 / 3)
    w = d.log_prob(v).exp() * (4 / 3 * math.pi**4)
    assert abs(w.mean().item() - 1) < 4 * w.std().item() / math.sqrt(n)
    haar = d.log_prob_haar(axis_angle_to_matrix(v[:10]))
    assert torch.allclose(d.log_prob(v[:10]) - log_haar_correction(v[:10]), haar)


def test_so3_normaliser_small_sigma_limit_and_sampler():
    s = torch.tensor(0.01, dtype=F64)  # Z ~ sigma^3 sqrt(pi/2) / (2 pi) for small sigma
    assert abs(log_normaliser(s).item() - math.log(0.01**3 * math.sqrt(math.pi / 2) / (2 * math.pi))) < 1e-3
    mean = axis_angle_to_matrix(torch.tensor([1.0, 2.0, 0.5], dtype=F64))
    for sigma in (0.05, 0.8):
        torch.manual_seed(2)
        x = TangentGaussianSO3(mean, torch.tensor(sigma, dtype=F64)).sample((100_000,))
        phi = geodesic_distance(mean.expand(len(x), 3, 3), axis_angle_to_matrix(x))
        grid = torch.linspace(0, math.pi, 200_001, dtype=F64)
        f = torch.exp(-(grid**2) / (2 * sigma**2)) * (1 - torch.cos(grid))
        expected = (grid * f).sum() / f.sum()
        assert abs(phi.mean() - expected) < 4 * phi.std() / math.sqrt(len(phi))


def test_so3_support_is_the_pi_ball():
    g = torch.Generator().manual_seed(3)
    d = TangentGaussianSO3(
        random_rotations((), generator=g, dtype=F64), torch.tensor(0.4, dtype=F64), validate_args=True
    )
    assert d.support.check(torch.tensor([0.0, 0.0, math.pi], dtype=F64))
    assert not d.support.check(torch.tensor([0.0, 0.0, math.pi + 0.01], dtype=F64))
    with pytest.raises(ValueError):
        d.log_prob(torch.tensor([4.0, 0.0, 0.0], dtype=F64))
    assert set(TangentGaussianSO3.arg_constraints) == {"loc", "scale"}
    assert d.loc.shape == (3, 3) and d.scale.shape == ()  # constructor arguments are the attributes
    with pytest.raises(ValueError):  # a non-rotation loc is refused when validating
        TangentGaussianSO3(2 * torch.eye(3, dtype=F64), 0.5, validate_args=True)
    ok = TangentGaussianSO3(axis_angle_to_matrix(torch.tensor([0.1, 0.2, 0.3], dtype=F64)), 0.5, validate_args=True)
    assert ok.support.check(ok.sample((100,))).all()


# ---------------------------------------------------------------------- correlated residuals
def _correlated(j: int, spread: float, seed: int):
    from probpose.distributions import CorrelatedTangentGaussianSO3

    g = torch.Generator().manual_seed(seed)
    a = torch.randn(3 * j, 3 * j, generator=g, dtype=F64)
    cov = spread**2 * (0.5 * torch.eye(3 * j, dtype=F64) + 0.5 * a @ a.T / (3 * j))
    loc = random_rotations((j,), generator=g, dtype=F64)
    return CorrelatedTangentGaussianSO3(loc, torch.linalg.cholesky(cov), validate_args=True), g


@pytest.mark.parametrize("spread", [0.3, 1.5])
def test_correlated_so3_integrates_to_its_truncated_mass(spread):
    """One joint, uniform proposal on the pi-ball: log_prob integrates to P (the Gaussian's mass inside
    the ball, by Monte Carlo on the Gaussian itself), which the certified bound covers; P < 1 is
    visible at a spread of 1.5 rad."""
    d, g = _correlated(1, spread, 4)
    n = 400_000
    u = torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=F64), dim=-1)
    v = u * math.pi * torch.rand(n, 1, generator=g, dtype=F64) ** (1 / 3)
    w = d.log_prob(v[:, None]).exp() * (4 / 3 * math.pi**4)
    inside = ((torch.randn(n, 3, generator=g, dtype=F64) @ d.scale_tril.T).norm(dim=-1) < math.pi).double()
    mass = inside.mean().item()
    se = math.hypot(w.std().item(), inside.std().item()) / math.sqrt(n)
    assert abs(w.mean().item() - mass) < 4 * se
    assert -math.log(mass) <= d.log_mass_gap_bound().item() + 4 * se / mass
    if spread > 1:
        assert mass < 0.9
    else:
        assert d.log_mass_gap_bound().item() < 1e-6


def test_correlated_so3_samples_match_log_prob_and_residuals_are_gaussian():
    """Three joints: the residuals of exact samples have the Gaussian's covariance, and log_prob's
    Jacobian term makes it the density of the samples (mean log-density against the Gaussian's
    entropy plus the Jacobian's mean)."""
    d, _ = _correlated(3, 0.25, 5)
    torch.manual_seed(6)
    x = d.sample((100_000,))
    assert x.shape == (100_000, 3, 3) and bool((x.norm(dim=-1) <= math.pi + 1e-9).all())
    v = d.residuals(x).reshape(len(x), 9)
    cov = d.scale_tril @ d.scale_tril.T
    assert torch.allclose(torch.cov(v.T), cov, atol=5 * 0.25**2 * math.sqrt(2 / len(x)) * 3)
    gauss = torch.distributions.MultivariateNormal(torch.zeros(9, dtype=F64), scale_tril=d.scale_tril)
    jac = (log_haar_correction(x) - log_haar_correction(d.residuals(x))).sum(-1)
    assert torch.allclose(d.log_prob(x), gauss.log_prob(v) + jac, atol=1e-9)
    # the residual map is a bijection: the change of variables gives the same mass on a box
    assert abs(jac.mean().item()) > 1e-3  # the Jacobian term is not trivially zero here
    with pytest.raises(ValueError):
        d.log_prob(torch.full((3, 3), 2.0, dtype=F64))  # outside the pi-balls
