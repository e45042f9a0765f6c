"""The known-density teacher: its log_prob is normalised and its sampler draws from it."""

import math

import torch

from probpose.evaluation.synthetic import TreeMixtureTeacher
from probpose.skeleton import Skeleton

CHAIN = Skeleton("chain", ("a", "b"), (-1, 0))  # D = 6: small enough for importance sampling


def _proposal_samples(teacher, n=300_000, seed=0):
    g = torch.Generator().manual_seed(seed)
    ref = teacher.sample(20_000, g).reshape(20_000, -1)
    q = torch.distributions.MultivariateNormal(ref.mean(0), covariance_matrix=torch.cov(ref.T) * 2.25)
    y = q.sample((n,))
    w = torch.exp(teacher.log_prob(y.reshape(n, 2, 3)) - q.log_prob(y))
    return y, w


def test_teacher_density_integrates_to_one():
    t = TreeMixtureTeacher(CHAIN, seed=3)
    _, w = _proposal_samples(t)
    se = w.std().item() / math.sqrt(len(w))
    assert abs(w.mean().item() - 1) < 4 * se


def test_teacher_samples_follow_its_density():
    t = TreeMixtureTeacher(CHAIN, seed=3)
    y, w = _proposal_samples(t)
    x = t.sample(300_000, torch.Generator().manual_seed(5)).reshape(-1, 6)
    for f in (lambda v: v[:, 0], lambda v: v[:, 4] ** 2, lambda v: torch.tanh(3 * v[:, 1]) * v[:, 5]):
        a, b = f(x), f(y) * w / w.mean()
        se = math.sqrt(a.var().item() / len(a) + b.var().item() / len(b))
        assert abs(a.mean().item() - b.mean().item()) < 4 * se


def test_teacher_is_tree_dependent_and_non_gaussian():
    t = TreeMixtureTeacher(CHAIN, seed=3)
    x = t.sample(200_000, torch.Generator().manual_seed(1))
    # the child's mean moves with the parent: correlation through tanh coupling
    corr = torch.corrcoef(torch.stack([torch.tanh(2 * x[:, 0, 0]), x[:, 1, 0]]))[0, 1]
    assert abs(corr) > 0.05
    # the joint log-density differs from the best Gaussian's by a clear margin (non-Gaussian)
    flat = x.reshape(len(x), -1)
    gauss = torch.distributions.MultivariateNormal(flat.mean(0), covariance_matrix=torch.cov(flat.T))
    assert (t.log_prob(x) - gauss.log_prob(flat)).mean() > 0.1
