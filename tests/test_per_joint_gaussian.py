"""PerJointGaussianPrior: exact log_prob, Pyro distribution API, closed-form and SVI fits.

Synthetic data here is drawn from a Gaussian whose parameters (hence exact density) are known."""

import math

import pyro
import pytest
import torch

from probpose.distributions import PerJointGaussianPrior
from probpose.models import PerJointGaussianModel, PerJointGaussianOptions
from probpose.skeleton import SMPLX
from probpose.training import Trainer, TrainingConfig


def random_params(batch_shape=(), j=4, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    loc = torch.randn(*batch_shape, j, 3, generator=g, dtype=dtype) * 0.3
    a = torch.randn(*batch_shape, j, 3, 3, generator=g, dtype=dtype) * 0.2
    cov = a @ a.transpose(-1, -2) + 0.05 * torch.eye(3, dtype=dtype)
    return loc, torch.linalg.cholesky(cov)


def block_diag_mvn(loc, tril):
    """The same density as one MultivariateNormal over the flattened (3J) vector."""
    j = loc.shape[-2]
    big = torch.zeros(loc.shape[:-2] + (3 * j, 3 * j), dtype=loc.dtype)
    for k in range(j):
        big[..., 3 * k : 3 * k + 3, 3 * k : 3 * k + 3] = tril[..., k, :, :]
    return torch.distributions.MultivariateNormal(loc.reshape(loc.shape[:-2] + (3 * j,)), scale_tril=big)


CASES = [((), ()), ((), (5,)), ((2,), ()), ((2,), (7,)), ((3, 2), (4, 1))]


@pytest.mark.parametrize("batch_shape, sample_shape", CASES)
def test_log_prob_equals_block_diagonal_mvn(batch_shape, sample_shape):
    loc, tril = random_params(batch_shape)
    d = PerJointGaussianPrior(loc, tril, validate_args=True)
    x = d.sample(sample_shape)
    assert x.shape == sample_shape + batch_shape + (4, 3)
    assert d.batch_shape == batch_shape and d.event_shape == (4, 3)
    ref = block_diag_mvn(loc, tril).log_prob(x.reshape(x.shape[:-2] + (12,)))
    lp = d.log_prob(x)
    assert lp.shape == sample_shape + batch_shape
    torch.testing.assert_close(lp, ref, rtol=1e-12, atol=1e-10)
    torch.testing.assert_close(d.entropy(), block_diag_mvn(loc, tril).entropy(), rtol=1e-12, atol=1e-10)


def test_expand_and_broadcasting():
    loc, tril = random_params()
    d = PerJointGaussianPrior(loc, tril)
    e = d.expand((3, 2))
    assert e.batch_shape == (3, 2) and e.sample().shape == (3, 2, 4, 3)
    x = d.sample((5,))
    torch.testing.assert_close(e.log_prob(x[:, None, None]), d.log_prob(x)[:, None, None].expand(5, 3, 2))
    # loc with a batch shape, shared Cholesky factors
    loc2 = torch.stack([loc, loc + 1])
    d2 = PerJointGaussianPrior(loc2, tril)
    assert d2.batch_shape == (2,) and d2.scale_tril.shape == (2, 4, 3, 3)


def test_validation_is_gated_on_validate_args():
    loc, tril = random_params()
    bad = tril.clone()
    bad[0, 0, 0] = -1.0
    with pytest.raises(ValueError):
        PerJointGaussianPrior(loc, bad, validate_args=True)
    PerJointGaussianPrior(loc, bad, validate_args=False)  # not checked when off
    d = PerJointGaussianPrior(loc, tril, validate_args=True)
    with pytest.raises(ValueError):
        d.log_prob(torch.full((4, 3), float("nan")))
    with pytest.raises(ValueError, match="scale_tril must have shape"):
        PerJointGaussianPrior(loc, tril[:2])
    assert d.support.check(d.sample()).all()


def test_sample_statistics_match_parameters():
    loc, tril = random_params(j=3, seed=1)
    d = PerJointGaussianPrior(loc, tril)
    torch.manual_seed(0)
    x = d.sample((200_000,))
    n = x.shape[0]
    # mean within 5 standard errors, covariance within 3%
    se = d.variance.sqrt() / math.sqrt(n)
    assert ((x.mean(0) - loc).abs() < 5 * se).all()
    cov = torch.einsum("nja,njb->jab", x - loc, x - loc) / n
    torch.testing.assert_close(cov, d.covariance_matrix, rtol=0.03, atol=3e-4)
    # the mean log_prob of samples is minus the entropy
    lp = d.log_prob(x)
    assert abs(lp.mean() + d.entropy()) < 5 * lp.std() / math.sqrt(n)


def test_rsample_is_reparameterised():
    loc, tril = random_params()
    loc.requires_grad_(True)
    tril.requires_grad_(True)
    PerJointGaussianPrior(loc, tril).rsample((10,)).pow(2).sum().backward()
    assert loc.grad.abs().sum() > 0 and tril.grad.abs().sum() > 0


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_gradients_reach_every_parameter(covariance):
    m = PerJointGaussianModel(SMPLX.select("left_hand"), PerJointGaussianOptions(covariance=covariance))
    x = torch.randn(64, 15, 3) * 0.3
    (-m.log_prob(x).mean()).backward()
    names = {n for n, _ in m.named_parameters()}
    assert names == ({"loc", "log_diag", "offdiag"} if covariance == "full" else {"loc", "log_diag"})
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def synthetic(j=3, n=50_000, seed=2):
    loc, tril = random_params(j=j, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    eps = torch.randn(n, j, 3, 1, generator=g, dtype=torch.float64)
    return loc, tril, loc + (tril @ eps).squeeze(-1)


def test_closed_form_recovers_known_parameters():
    loc, tril, x = synthetic()
    skel = SMPLX.select(["left_hip", "left_knee", "left_ankle"])
    m = PerJointGaussianModel(skel).double()
    m.fit_closed_form(x)
    cov = tril @ tril.transpose(-1, -2)
    se_loc = cov.diagonal(dim1=-2, dim2=-1).sqrt() / math.sqrt(len(x))
    assert ((m.loc - loc).abs() < 5 * se_loc).all()
    fitted = m.scale_tril() @ m.scale_tril().transpose(-1, -2)
    # standard error of a sample covariance entry: sqrt((C_aa C_bb + C_ab^2) / n)
    var = cov.diagonal(dim1=-2, dim2=-1)
    se_cov = ((var[..., :, None] * var[..., None, :] + cov**2) / len(x)).sqrt()
    assert ((fitted - cov).abs() < 5 * se_cov).all()
    diag = PerJointGaussianModel(skel, PerJointGaussianOptions(covariance="diag")).double()
    diag.fit_closed_form(x)
    torch.testing.assert_close(diag.log_diag.exp() ** 2, x.var(0, unbiased=False))


def test_svi_fit_matches_closed_form():
    """Tolerance: the SVI fit's training NLL within 0.01 nats/pose of the exact optimum."""
    _, _, x = synthetic(n=5000)
    skel = SMPLX.select(["left_hip", "left_knee", "left_ankle"])
    exact = PerJointGaussianModel(skel).double()
    exact.fit_closed_form(x)
    nll_exact = -exact.log_prob(x).mean().item()
    svi = PerJointGaussianModel(skel)
    cfg = TrainingConfig(
        lr=0.02,
        batch_size=5000,
        max_steps=1500,
        eval_every=100,
        patience=0,
        dtype="float64",
        schedule="cosine",
        clip_norm=None,
    )
    result = Trainer(svi, cfg).fit(x, x[:1000])
    nll_svi = -svi.log_prob(x).mean().item()
    assert result.steps == 1500
    assert nll_exact <= nll_svi + 1e-9  # the closed form is the maximum
    assert nll_svi - nll_exact < 0.01, (nll_svi, nll_exact)
    # means agree to a Mahalanobis distance of 0.15 under the exact covariance (0.5 d^2 <= the gap)
    delta = (svi.loc.detach().double() - exact.loc).unsqueeze(-1)
    z = torch.linalg.solve_triangular(exact.scale_tril(), delta, upper=False)
    assert (z.square().sum((-2, -1)).sqrt() < 0.15).all()


def test_usable_inside_a_user_pyro_model_with_standard_svi():
    """pyro.module + pyro.sample(..., obs=) inside a plate trains with pyro.infer.SVI."""
    pyro.clear_param_store()
    _, _, x = synthetic(n=2000)
    x = x.float()
    m = PerJointGaussianModel(SMPLX.select(["left_hip", "left_knee", "left_ankle"]))
    before = m.loc.detach().clone()

    def model(data):
        pyro.module("prior", m)
        with pyro.plate("poses", len(data)):
            pyro.sample("pose", m(), obs=data)

    svi = pyro.infer.SVI(model, lambda data: None, pyro.optim.Adam({"lr": 0.05}), pyro.infer.Trace_ELBO())
    losses = [svi.step(x) for _ in range(300)]
    assert losses[-1] < losses[0] - 1000
    assert not torch.allclose(m.loc, before)
    # the model's own model/guide pair is a valid Pyro program too
    trace = pyro.poutine.trace(m.model).get_trace(x)
    assert trace.nodes["pose"]["is_observed"]
    assert isinstance(trace.nodes["pose"]["fn"], PerJointGaussianPrior)  # the plate expanded it, keeping its class
    pyro.clear_param_store()
