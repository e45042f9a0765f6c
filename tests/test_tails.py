"""Bounded tails: every flow's negative log-density grows at most quadratically as a pose moves away
from the data, like a Gaussian's, so a fit that leaves the training poses still gets useful
gradients (an affine flow with unbounded conditioners scored unseen recordings at 1e12-1e18
nats/pose).

The check: from training poses, along random directions, every coordinate moved by k training
standard deviations (RMS over coordinates): the excess NLL at k = 10 is at most about 4.5 times the
excess at k = 5 (exactly 4 for a Gaussian far from its mean) -- over all rays (mean excesses) and
on a typical ray (median); no single ray beyond 20 (an exploding density gives orders of magnitude)."""

import pytest
import torch

from probpose.data import prepare_data
from probpose.models import build_model
from probpose.training import Trainer, TrainingConfig

FLOWS = {
    "global_flow": {"K": 4, "hidden": 64},
    "global_flow_spline": {"K": 3, "hidden": 32},
    "joint_flow": {"K": 2, "hidden": 32},
}


@pytest.fixture(scope="module")
def zebra(tmp_path_factory):
    data = prepare_data(bundled="zebra", workdir=tmp_path_factory.mktemp("zebra"))
    return data


def excesses(model, poses, n_poses=24, n_dirs=4, seed=0):
    """Excess NLL at k = 5 and k = 10 along ``n_dirs`` random rays from each of ``n_poses`` poses."""
    g = torch.Generator().manual_seed(seed)
    x0 = poses[torch.randperm(len(poses), generator=g)[:n_poses]]
    sigma = poses.flatten(1).std(0)
    d = sigma.numel()
    out = {5: [], 10: []}
    with torch.no_grad():
        base = -model.log_prob(x0)
        for _ in range(n_dirs):
            u = torch.randn(n_poses, d, generator=g)
            u = u / u.norm(dim=1, keepdim=True) * d**0.5
            for k in out:
                out[k].append(-model.log_prob(x0 + (k * sigma * u).view_as(x0)) - base)
    e5, e10 = torch.cat(out[5]), torch.cat(out[10])
    assert (e5 > 0).all()  # far from the data the density is lower
    return e5, e10


def check_quadratic(e5, e10):
    r = e10 / e5
    assert e10.mean() / e5.mean() <= 4.5 and r.median() <= 4.5 and r.max() <= 20, (
        (e10.mean() / e5.mean()).item(),
        r.median().item(),
        r.max().item(),
    )


@pytest.mark.parametrize("name", list(FLOWS))
def test_negative_log_density_grows_at_most_quadratically(zebra, name):
    model = build_model(name, zebra.skeleton, FLOWS[name])
    cfg = TrainingConfig(lr=3e-3, max_steps=300, eval_every=100, patience=0, seed=0)
    Trainer(model, cfg).fit(zebra.train, zebra.val)
    model.eval()
    check_quadratic(*excesses(model, zebra.train))


def test_a_gaussian_gives_four(zebra):
    model = build_model("gaussian_full", zebra.skeleton)
    Trainer(model, TrainingConfig(fit="closed_form")).fit(zebra.train)
    e5, e10 = excesses(model, zebra.train)
    assert ((e10 / e5) - 4).abs().max() < 0.25


def test_the_check_catches_an_exploding_density():
    """A density whose negative log grows like |x|^4 fails the check (the test can fail)."""
    x = torch.randn(500, 3, 3) * 0.3

    class Quartic(torch.nn.Module):
        def log_prob(self, v):
            return -((v.flatten(1) ** 2).sum(-1) ** 2)

    with pytest.raises(AssertionError):
        check_quadratic(*excesses(Quartic(), x))
