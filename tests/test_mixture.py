"""The field's baselines: the full-covariance Gaussian and the GMM (EM from k-means++, eigenvalue
floor, monotone log-likelihood), checked against closed forms and independent computations."""

import math

import numpy as np
import pytest
import torch

from probpose.distributions import FullGaussianPrior, GaussianMixturePrior
from probpose.errors import ConfigError, TrainingError
from probpose.models import FullGaussianModel, GMMModel, build_model
from probpose.skeleton import Skeleton

F64 = torch.float64
PAIR = Skeleton("pair", ("a", "b"), (-1, 0))


def _clusters(n=3000, seed=0):
    """Three well-separated correlated clusters in R^6 (two joints)."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.tensor([[0.5] * 6, [-0.5] * 6, [0.5, -0.5] * 3], dtype=F64)
    a = torch.randn(3, 6, 6, generator=g, dtype=F64) * 0.05
    label = torch.randint(3, (n,), generator=g)
    x = centers[label] + torch.einsum("nab,nb->na", a[label], torch.randn(n, 6, generator=g, dtype=F64))
    return x.view(n, 2, 3)


def test_full_gaussian_closed_form_is_the_sample_mean_and_covariance():
    x = _clusters()
    m = build_model("gaussian_full", PAIR).double()
    m.fit_closed_form(x)
    flat = x.flatten(1)
    cov = torch.from_numpy(np.cov(flat.numpy(), rowvar=False, bias=True))
    assert torch.allclose(m.loc.flatten(), flat.mean(0), atol=1e-12)
    assert torch.allclose(m().covariance_matrix, cov, atol=1e-10)
    ref = torch.distributions.MultivariateNormal(flat.mean(0), covariance_matrix=cov)
    assert torch.allclose(m.log_prob(x), ref.log_prob(flat), atol=1e-8)


def test_full_gaussian_floor_and_chunks():
    x = _clusters(500)
    x[:, 1, 2] = 0.3 + 1e-5 * x[:, 0, 0]  # a nearly constant dimension: variance far below the floor
    m = FullGaussianModel(PAIR).double()
    m.fit_closed_form(x)
    assert torch.linalg.eigvalsh(m().covariance_matrix).min() >= 1e-6 * (1 - 1e-9)
    chunked = FullGaussianModel(PAIR).double()
    chunked.fit_closed_form(lambda: iter(x.split(77)))  # sufficient statistics, chunk by chunk
    assert torch.allclose(chunked().covariance_matrix, m().covariance_matrix, atol=1e-12)


def test_em_never_decreases_the_training_log_likelihood():
    x = _clusters()
    m = GMMModel(PAIR, build_model("gmm", PAIR, {"components": 5, "tol": 0.0, "max_iter": 60}).options).double()
    m.fit_closed_form(x)
    h = np.array(m.em_history)
    assert len(h) == 61 and np.all(np.diff(h) >= -1e-9), np.diff(h).min()
    assert h[-1] > h[0]
    assert abs(m.log_prob(x).mean().item() - h[-1]) < 1e-6  # the history is the model's own likelihood


def test_float32_em_equals_float64_em_far_from_the_origin():
    """A float32 model's EM computes its passes in float32 and its second moments about the current
    means: on clusters 3 rad from the origin with 0.05 rad spread (raw second moments ~9, variances
    ~2.5e-3: raw float32 sums would cancel away the last digits) it gives the float64 fit to float32
    rounding."""
    x = _clusters() + 3.0
    opts = {"components": 3, "select": False}
    fits = []
    for dtype in (torch.float64, torch.float32):
        m = build_model("gmm", PAIR, opts).to(dtype)
        m.fit_closed_form(x.to(dtype))
        fits.append(m.double())
    a, b = fits
    assert torch.allclose(b.loc, a.loc, atol=1e-5)
    ca, cb = (m().scale_tril @ m().scale_tril.transpose(-1, -2) for m in (a, b))
    assert torch.allclose(cb, ca, rtol=1e-3, atol=1e-7), (cb - ca).abs().max()
    assert np.allclose(b.em_history, a.em_history, rtol=1e-6)


def test_em_recovers_separated_clusters():
    x = _clusters(6000)
    m = build_model("gmm", PAIR, {"components": 3}).double()
    m.fit_closed_form(x)
    w = torch.softmax(m.logits, 0).sort().values
    assert torch.allclose(w, torch.full((3,), 1 / 3, dtype=F64), atol=0.03)
    found = sorted(m.loc.flatten(1)[:, 0].tolist())
    assert np.allclose(found, [-0.5, 0.5, 0.5], atol=0.02)


def test_gmm_with_one_component_equals_gaussian_full():
    x = _clusters()
    g = build_model("gmm", PAIR, {"components": 1}).double()
    f = build_model("gaussian_full", PAIR).double()
    g.fit_closed_form(x)
    f.fit_closed_form(x)
    assert torch.allclose(g.loc[0], f.loc, atol=1e-12)
    assert torch.allclose(g.cov.scale_tril()[0], f.cov.scale_tril()[0], atol=1e-10)
    assert torch.allclose(g.log_prob(x), f.log_prob(x), atol=1e-9)


def test_mixture_density_against_an_explicit_sum():
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(3, dtype=F64, generator=g)
    loc = torch.randn(3, 2, 3, dtype=F64, generator=g)
    tril = torch.randn(3, 6, 6, dtype=F64, generator=g).tril(-1) * 0.1 + torch.diag_embed(
        0.2 + torch.rand(3, 6, dtype=F64, generator=g)
    )
    d = GaussianMixturePrior(logits, loc, tril)
    x = torch.randn(50, 2, 3, dtype=F64, generator=g)
    w = torch.softmax(logits, 0)
    comps = [torch.distributions.MultivariateNormal(loc[k].flatten(), scale_tril=tril[k]) for k in range(3)]
    ref = torch.log(sum(w[k] * comps[k].log_prob(x.flatten(1)).exp() for k in range(3)))
    assert torch.allclose(d.log_prob(x), ref, atol=1e-10)
    # samples follow the mixture: component frequencies and means
    s = d.sample((40000,))
    assert torch.allclose(s.mean(0), d.mean, atol=0.02)
    assert s.shape == (40000, 2, 3)


def test_full_gaussian_distribution_sample_statistics():
    g = torch.Generator().manual_seed(5)
    loc = torch.randn(2, 3, dtype=F64, generator=g)
    tril = torch.randn(6, 6, dtype=F64, generator=g).tril(-1) * 0.2 + torch.diag_embed(
        0.3 + torch.rand(6, dtype=F64, generator=g)
    )
    d = FullGaussianPrior(loc, tril)
    n = 100000
    with torch.random.fork_rng():  # a fixed draw, each statistic within 5 of its standard errors
        torch.manual_seed(0)
        s = d.sample((n,))
    cov = tril @ tril.T
    var = cov.diagonal()
    assert ((s.mean(0).flatten() - loc.flatten()).abs() < 5 * (var / n).sqrt()).all()
    se_cov = ((var[:, None] * var[None, :] + cov**2) / n).sqrt()  # of a Gaussian sample covariance
    assert ((torch.cov(s.flatten(1).T) - cov).abs() < 5 * se_cov).all()
    se_entropy = math.sqrt(6 / 2 / n)  # -log p of a Gaussian: half a chi-square with 6 dofs, plus a constant
    assert abs(-d.log_prob(s).mean().item() - d.entropy().item()) < 5 * se_entropy


def test_gmm_trains_by_svi_too():
    from probpose.training import Trainer, TrainingConfig

    x = _clusters(2000).float()
    m = build_model("gmm", PAIR, {"components": 3})
    before = -m.log_prob(x).mean().item()
    Trainer(m, TrainingConfig(lr=0.02, max_steps=150, eval_every=50, patience=0)).fit(x, x[:200])
    assert -m.log_prob(x).mean().item() < before - 3 and math.isfinite(before)


def test_too_few_poses_for_the_components_is_an_error():
    from probpose.errors import TrainingError

    with pytest.raises(TrainingError, match="needs at least 8 poses"):
        build_model("gmm", PAIR, {"folds": 0}).fit_closed_form(torch.randn(5, 2, 3))
    with pytest.raises(TrainingError, match="5 training poses are too few for 5 cross-validation blocks"):
        build_model("gmm", PAIR).fit_closed_form(torch.randn(5, 2, 3))  # the registered gmm: 5 blocks


def _one_gaussian(n, seed):
    """SYNTHETIC: one correlated Gaussian in R^6 (exact density known; the same for every seed)."""
    a = torch.randn(6, 6, generator=torch.Generator().manual_seed(123), dtype=F64) * 0.2
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 6, generator=g, dtype=F64) @ a.T).view(n, 2, 3)


def test_the_number_of_components_is_chosen_on_validation_data():
    """With validation poses the GMM fits K = 1, 2, 4, 8 and keeps the best on validation (issue
    35): on three separated clusters it needs at least 4 (the candidates bracketing 3) and beats
    one Gaussian by far on held-out poses; on one Gaussian it is never worse than the single
    full-covariance Gaussian beyond noise. The chosen K fills the 8 slots with copies: the density
    is the chosen mixture's own."""
    train, val, test = _clusters(7000, 0).split([4000, 1000, 2000])  # one distribution, three samples
    m = build_model("gmm", PAIR, {"folds": 0}).double()
    m.fit_closed_form(train, val_poses=val)
    assert sorted(m.selection) == [1, 2, 4, 8] and m.chosen_components >= 4
    assert m.selection[m.chosen_components] == max(m.selection.values())
    full = build_model("gaussian_full", PAIR).double()
    full.fit_closed_form(train)
    assert m.log_prob(test).mean() > full.log_prob(test).mean() + 3
    k = m.chosen_components
    compact = build_model("gmm", PAIR, {"components": k, "select": False}).double()
    compact.fit_closed_form(train)
    assert torch.allclose(m.log_prob(test), compact.log_prob(test), atol=1e-9)  # copies change nothing

    train, val, test = _one_gaussian(4000, 0), _one_gaussian(1000, 1), _one_gaussian(20000, 2)
    m = build_model("gmm", PAIR, {"folds": 0}).double()
    m.fit_closed_form(train, val_poses=val)
    full = build_model("gaussian_full", PAIR).double()
    full.fit_closed_form(train)
    gap = (full.log_prob(test) - m.log_prob(test)).mean().item()
    sem = (full.log_prob(test) - m.log_prob(test)).std().item() / math.sqrt(len(test))
    assert gap < 3 * sem + 0.01, (m.chosen_components, gap, sem)
    without = build_model("gmm", PAIR, {"folds": 0}).double()
    without.fit_closed_form(train)  # no validation poses: all 8 components, as before
    assert without.chosen_components == 8 and not without.selection


def _performers(n, per, seed):
    """SYNTHETIC: ``n`` performers of ``per`` poses each, one after the other (as a store keeps a
    performer's trials together): each a tight Gaussian around its own offset, the offsets drawn
    from a broad Gaussian, so a new performer is new motion."""
    a = torch.randn(6, 6, generator=torch.Generator().manual_seed(7), dtype=F64) * 0.05
    g = torch.Generator().manual_seed(seed)
    offsets = 0.4 * torch.randn(n, 1, 6, generator=g, dtype=F64)
    own = offsets + torch.randn(n, per, 6, generator=g, dtype=F64) @ a.T
    more = offsets + torch.randn(n, per // 4, 6, generator=g, dtype=F64) @ a.T  # other trials, same performers
    return own.reshape(-1, 2, 3), more.reshape(-1, 2, 3)


def test_blocked_cross_validation_chooses_components_for_unseen_performers():
    """Validation poses from the training performers reward one component per performer: on new
    performers that mixture is far worse than one Gaussian. Blocked cross-validation (``folds``)
    holds out whole performers and keeps one component there, while on separated clusters (in
    random order) it still finds them; ``folds = 1`` and too few poses are refused."""
    train, val = _performers(8, 500, 0)
    test, _ = _performers(50, 100, 1)
    full = build_model("gaussian_full", PAIR).double()
    full.fit_closed_form(train)
    by_val = build_model("gmm", PAIR, {"folds": 0}).double()
    by_val.fit_closed_form(train, val_poses=val)
    by_blocks = build_model("gmm", PAIR, {"folds": 4}).double()
    by_blocks.fit_closed_form(train, val_poses=val)  # validation poses are not used
    assert by_val.chosen_components == 8 and (full.log_prob(test) - by_val.log_prob(test)).mean() > 10
    assert by_blocks.chosen_components == 1 and sorted(by_blocks.selection) == [1, 2]  # 2 scored worse: stop
    assert torch.allclose(by_blocks.log_prob(test), full.log_prob(test), atol=1e-6)

    train, test = _clusters(6000, 0).split([4000, 2000])
    m = build_model("gmm", PAIR, {"folds": 4}).double()
    m.fit_closed_form(train)
    assert m.chosen_components >= 4 and m.selection[m.chosen_components] == max(m.selection.values())
    assert m.log_prob(test).mean() > full.log_prob(test).mean() + 3

    registered = build_model("gmm", PAIR).double()  # the registry's gmm: 5 blocks, validation poses unused
    assert registered.options.folds == 5
    registered.fit_closed_form(train, val_poses=_clusters(50, 9))
    assert registered.chosen_components >= 4 and registered.log_prob(test).mean() > full.log_prob(test).mean() + 3

    with pytest.raises(ConfigError, match="folds"):
        build_model("gmm", PAIR, {"folds": 1})
    with pytest.raises(TrainingError, match="too few"):
        build_model("gmm", PAIR, {"folds": 4}).double().fit_closed_form(train[:7])
