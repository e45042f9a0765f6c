"""Contract tests (pyro's tests/distributions/conftest.py style).

``PRIORS`` is built from the registry: one row per registered model with an exact density (the
distribution its ``forward()`` returns, built on a tiny skeleton in float64, fitted to a little
data and perturbed so exactness checks are not trivial), expanded to a batch shape. ``EXTRA`` adds
the parameterisations no registered model produces with its defaults (parameters with a batch shape
of their own, a conditional flow, an options variant, the SO(3) Gaussian). Generic tests check the
distribution API of docs/architecture.md, "Distribution API" on each, and ``test_every_registered_model``
runs training, saving and loading over the registry. A new prior is covered once it is registered
(docs/architecture.md, "Adding a prior": two files)."""

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from helpers import perturb

from probpose.distributions import (
    FullGaussianPrior,
    GaussianMixturePrior,
    GlobalFlowPrior,
    PerJointGaussianPrior,
    TangentGaussianSO3,
)
from probpose.flows import coupling_stack
from probpose.models import MODELS, build_model, load_model, save_model
from probpose.rotations import random_rotations
from probpose.skeleton import Skeleton
from probpose.training import Trainer, TrainingConfig

F64 = torch.float64
TINY = Skeleton("tiny", ("a", "b", "c"), (-1, 0, 1))


def _gaussian(batch, diag=False, validate_args=None):
    g = torch.Generator().manual_seed(0)
    loc = (0.3 * torch.randn(*batch, 2, 3, generator=g, dtype=F64)).requires_grad_()
    tril = torch.randn(*batch, 2, 3, 3, generator=g, dtype=F64).tril(-1) * (0 if diag else 0.2)
    tril = (tril + torch.diag_embed(0.2 + torch.rand(*batch, 2, 3, generator=g, dtype=F64))).requires_grad_()
    return PerJointGaussianPrior(loc, tril, validate_args=validate_args), [loc, tril]


def _full_gaussian(batch, validate_args=None):
    g = torch.Generator().manual_seed(4)
    loc = (0.3 * torch.randn(*batch, 2, 3, generator=g, dtype=F64)).requires_grad_()
    tril = torch.randn(*batch, 6, 6, generator=g, dtype=F64).tril(-1) * 0.1
    tril = (tril + torch.diag_embed(0.2 + torch.rand(*batch, 6, generator=g, dtype=F64))).requires_grad_()
    return FullGaussianPrior(loc, tril, validate_args=validate_args), [loc, tril]


def _gmm(batch, validate_args=None):
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(*batch, 3, generator=g, dtype=F64)
    loc = 0.5 * torch.randn(*batch, 3, 2, 3, generator=g, dtype=F64)
    tril = torch.randn(*batch, 3, 6, 6, generator=g, dtype=F64).tril(-1) * 0.1
    tril = tril + torch.diag_embed(0.15 + torch.rand(*batch, 3, 6, generator=g, dtype=F64))
    return GaussianMixturePrior(logits, loc, tril, validate_args=validate_args), []


def _conditional_flow(batch, validate_args=None):
    """A global affine flow conditioned on a context of 4 numbers per batch element."""
    flow = coupling_stack(6, 2, "affine", context_dim=4, hidden=8, layers=1, tail_bound=3.0, gaussian=True).double()
    g = torch.Generator().manual_seed(6)
    data = 0.4 * torch.randn(200, 6, generator=g, dtype=F64) @ torch.randn(6, 6, generator=g, dtype=F64)
    flow.initialize(data, torch.randn(200, 4, generator=g, dtype=F64))
    flow = perturb(flow, scale=0.15)
    ctx = torch.randn(*batch, 4, generator=torch.Generator().manual_seed(1), dtype=F64)
    return GlobalFlowPrior(flow, 2, ctx, validate_args=validate_args), list(flow.parameters())


def _registered(name, options=None):
    """The distribution of registered model ``name`` on ``TINY`` (float64), initialised (and fitted
    where it has a closed form) on a little data, then perturbed."""

    def make(batch, validate_args=None):
        model = build_model(name, TINY, {**SMALL.get(name, {}), **(options or {})}).double()
        g = torch.Generator().manual_seed(3)
        data = 0.4 * torch.randn(2000, 3, 3, generator=g, dtype=F64) @ torch.randn(3, 3, generator=g, dtype=F64) + 0.1
        model.initialize(data)
        if MODELS[name].build.has_closed_form:
            model.fit_closed_form(data)
        model = perturb(model, scale=0.05)
        d = model()
        if validate_args is not None:
            d._validate_args = validate_args  # torch's per-instance switch
        return (d.expand(batch) if batch else d), [p for p in model.parameters() if p.requires_grad]

    return make


def _so3(batch, validate_args=None):
    g = torch.Generator().manual_seed(3)
    loc = random_rotations(batch, generator=g, dtype=F64)
    scale = 0.2 + torch.rand(batch, generator=g, dtype=F64)
    return TangentGaussianSO3(loc, scale, validate_args=validate_args), []


@dataclass(frozen=True)
class Prior:
    name: str
    make: Callable  # (batch_shape, validate_args=None) -> (distribution, parameters to differentiate)
    batch_shape: tuple = ()
    sample_shape: tuple = (5,)
    normalise: bool = True  # check normalisation by importance sampling (cheap in a few dimensions)


SMALL = {  # faster options for the contract run; a model not listed runs with its defaults
    "global_flow": {"K": 2, "hidden": 16},
    "global_flow_spline": {"K": 2, "hidden": 16},
    "joint_flow": {"K": 2, "hidden": 16},
    "vae": {"hidden": 16, "z_dim": 3, "iwae_k": 20},
    "vae_so3": {"hidden": 16, "z_dim": 3, "iwae_k": 20},
}
EXACT = [name for name, spec in MODELS.items() if spec.build.exact_log_prob]  # the VAEs give bounds
PRIORS = [Prior(name, _registered(name), (2,), (3,)) for name in EXACT]
EXTRA = [
    Prior("joint_gaussian_full", _gaussian, (4,), (3, 2)),
    Prior("joint_gaussian_diag", lambda b, validate_args=None: _gaussian(b, True, validate_args), (2, 3)),
    Prior("full_gaussian", _full_gaussian, (3,), (2, 2)),
    Prior("gaussian_mixture", _gmm, (2,), (4,)),
    Prior("global_flow_conditional", _conditional_flow, (4,), (3,)),
    Prior("joint_flow_affine", _registered("joint_flow", {"transform": "affine"}), ()),
    Prior("tangent_gaussian_so3", _so3, (3,), (4,), normalise=False),  # own tests: tests/test_so3.py
]
PRIORS += EXTRA
IDS = [p.name for p in PRIORS]


@pytest.mark.parametrize("prior", PRIORS, ids=IDS)
def test_sample_and_log_prob_shapes(prior):
    d, _ = prior.make(prior.batch_shape)
    assert d.batch_shape == torch.Size(prior.batch_shape)
    x = d.sample(prior.sample_shape)
    assert x.shape == torch.Size(prior.sample_shape) + d.batch_shape + d.event_shape
    lp = d.log_prob(x)
    assert lp.shape == torch.Size(prior.sample_shape) + d.batch_shape and torch.isfinite(lp).all()
    assert d.sample().shape == d.batch_shape + d.event_shape
    # a single value broadcasts against the batch
    assert d.log_prob(x.reshape(-1, *d.event_shape)[0]).shape == d.batch_shape


@pytest.mark.parametrize("prior", PRIORS, ids=IDS)
def test_expand_and_the_instance_path(prior):
    d, _ = prior.make(prior.batch_shape)
    new_shape = (2,) + tuple(prior.batch_shape)
    e = d.expand(new_shape)
    assert e.batch_shape == torch.Size(new_shape) and type(e) is type(d)
    x = d.sample((3,))
    assert torch.allclose(e.log_prob(x[:, None]), d.log_prob(x[:, None]).expand(3, *new_shape), atol=1e-12)
    assert e.sample((2,)).shape == torch.Size((2, *new_shape)) + d.event_shape

    class Sub(type(d)):  # a subclass reuses expand through the _instance argument
        pass

    inst = Sub.__new__(Sub)
    out = d.expand(new_shape, _instance=inst)
    assert out is inst and out.batch_shape == torch.Size(new_shape)
    assert torch.allclose(out.log_prob(x[:, None]), e.log_prob(x[:, None]), atol=1e-12)


@pytest.mark.parametrize("prior", PRIORS, ids=IDS)
def test_validation_is_gated_and_refuses_bad_values(prior):
    checked, _ = prior.make(prior.batch_shape, validate_args=True)
    unchecked, _ = prior.make(prior.batch_shape, validate_args=False)
    x = checked.sample((2,))
    event = checked.event_shape
    wrong = torch.zeros(2, *prior.batch_shape, *event[:-1], event[-1] + 1, dtype=F64)
    with pytest.raises(ValueError):
        checked.log_prob(wrong)
    bad = x.clone()
    bad.reshape(-1)[0] = math.nan
    with pytest.raises(ValueError):
        checked.log_prob(bad)
    bad.reshape(-1)[0] = math.inf
    with pytest.raises(ValueError):
        checked.log_prob(bad)
    assert unchecked.log_prob(bad).shape == (2, *prior.batch_shape)  # gated: no check without validate_args
    assert checked.support.check(checked.sample((50,))).all()


@pytest.mark.parametrize("prior", [p for p in PRIORS if p.make(p.batch_shape)[0].has_rsample], ids=lambda p: p.name)
def test_gradients_through_rsample(prior):
    d, params = prior.make(prior.batch_shape)
    x = d.rsample((4,))
    assert x.requires_grad
    (x.square().sum() + d.log_prob(x.detach()).sum()).backward()
    for p in params:
        assert p.grad is not None and p.grad.abs().sum() > 0


@pytest.mark.parametrize("prior", [p for p in PRIORS if p.normalise], ids=lambda p: p.name)
def test_normalised_by_importance_sampling(prior):
    """E_q[p / q] = 1 with a wide Gaussian proposal fitted to samples (first batch element)."""
    d, _ = prior.make(())
    if d.batch_shape:  # conditional priors: fix one context
        d = d.expand(d.batch_shape)
    torch.manual_seed(0)
    with torch.no_grad():
        ref = d.sample((4000,)).reshape(4000, *d.batch_shape, -1)
        ref = ref[:, 0] if d.batch_shape else ref
        q = torch.distributions.MultivariateNormal(ref.mean(0), covariance_matrix=torch.cov(ref.T) * 2.25)
        y = q.sample((100_000,))
        lp = d.log_prob(y.reshape(-1, *([1] * len(d.batch_shape)), *d.event_shape))
        lp = lp.reshape(len(y), -1)[:, 0]
        w = torch.exp(lp - q.log_prob(y))
    est, se = w.mean().item(), w.std().item() / math.sqrt(len(w))
    assert abs(est - 1) < max(4 * se, 0.02), (est, se)


# ---------------------------------------------------------------------- every registered model


@pytest.mark.parametrize("name", list(MODELS))
def test_every_registered_model(name, tmp_path):
    spec = MODELS[name]
    g = torch.Generator().manual_seed(0)
    train = 0.4 * torch.randn(300, 3, 3, generator=g) + 0.1
    val = 0.4 * torch.randn(60, 3, 3, generator=g) + 0.1
    model = build_model(name, TINY, SMALL.get(name, {}))
    assert model.registry_name == name and isinstance(model.options, spec.options)
    settings = {"max_steps": 5, "eval_every": 5, "patience": 0}
    if MODELS[name].build.has_closed_form:
        settings = {"fit": "closed_form"}
    result = Trainer(model, TrainingConfig(**settings)).fit(train, val)
    assert result.val is not None and math.isfinite(result.val.nll)
    model.eval()
    torch.manual_seed(1)
    lp = model.log_prob(val)
    assert lp.shape == (60,) and torch.isfinite(lp).all()
    s = model.sample(7)
    assert s.shape == (7, len(model.modelled), 3) and torch.isfinite(s).all()
    path = save_model(tmp_path / f"{name}.pt", model)
    back = load_model(path)
    assert type(back) is type(model) and back.registry_name == name
    assert dataclasses.asdict(back.options) == dataclasses.asdict(model.options)
    for (k, a), (k2, b) in zip(model.state_dict().items(), back.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b), k
    torch.manual_seed(2)
    a = model.log_prob(val)
    torch.manual_seed(2)
    assert torch.equal(back.log_prob(val), a)
    torch.manual_seed(3)
    a = model.sample(4)
    torch.manual_seed(3)
    assert torch.equal(back.sample(4), a)


@pytest.mark.parametrize("model_dtype", [torch.float32, F64])
@pytest.mark.parametrize("name", list(MODELS))
def test_one_dtype_rule(name, model_dtype):
    """The rule for every prior: ``log_prob`` computes in the prior's dtype (its parameters'):
    a value of the other floating dtype is converted first, and the result has the prior's dtype.
    So float32 and float64 values both work with float32 and float64 priors, and a float64 value
    with a float32 prior gives float32 -- the result's dtype says how it was computed."""
    g = torch.Generator().manual_seed(0)
    model = build_model(name, TINY, SMALL.get(name, {})).to(model_dtype)
    train = 0.4 * torch.randn(300, 3, 3, generator=g, dtype=model_dtype) + 0.1
    model.initialize(train)
    if MODELS[name].build.has_closed_form:
        model.fit_closed_form(train)
    model.eval()
    x = 0.3 * torch.randn(6, 3, 3, generator=g, dtype=F64)

    def log_prob(value):
        with torch.random.fork_rng():
            torch.manual_seed(0)  # the VAEs' bounds sample
            return model.log_prob(value) if name.startswith("vae") else model().log_prob(value)

    for value_dtype in (torch.float32, F64):
        lp = log_prob(x.to(value_dtype))
        assert lp.dtype == model_dtype and torch.isfinite(lp).all(), (value_dtype, lp.dtype)
        assert torch.equal(lp, log_prob(x.to(value_dtype).to(model_dtype)))  # converted, then computed


@pytest.mark.parametrize("prior", PRIORS, ids=IDS)
def test_expand_rejects_incompatible_shapes_like_torch(prior):
    d, _ = prior.make(prior.batch_shape)
    wide = d.expand((5, *d.batch_shape))
    assert wide.batch_shape == (5, *d.batch_shape)
    for bad in ((3,), (4, *(s + 1 for s in d.batch_shape))):  # fewer dimensions; a dimension that differs
        with pytest.raises((ValueError, RuntimeError)):
            wide.expand(bad)
    with pytest.raises((ValueError, RuntimeError)):
        d.expand((4, *d.batch_shape)).expand((3, *d.batch_shape))  # torch: (4,) never becomes (3,)


def test_closed_form_moments_where_they_exist():
    """The full Gaussian's variance is its covariance's diagonal; the mixture's mean and variance
    equal torch's MixtureSameFamily's (the law of total variance, computed independently); the
    mixture's entropy has no closed form and says so."""
    full, _ = _full_gaussian((3,))
    assert torch.allclose(full.variance.flatten(-2), full.covariance_matrix.diagonal(dim1=-2, dim2=-1))
    gmm, _ = _gmm((2,))
    mix = gmm._mixture
    assert torch.allclose(gmm.mean.flatten(-2), mix.mean, atol=1e-12)
    assert torch.allclose(gmm.variance.flatten(-2), mix.variance, atol=1e-12)
    with pytest.raises(NotImplementedError, match="no closed form"):
        gmm.entropy()


@pytest.mark.parametrize("prior", PRIORS, ids=IDS)
def test_torch_func_transforms_of_log_prob(prior):
    """``torch.func`` on ``log_prob``: ``vmap`` over values equals the batched call; ``grad`` and
    ``jacrev`` equal autograd's gradient; ``hessian`` (forward over reverse) equals autograd's
    double backward -- splines included, with no switch (docs/architecture.md, "Distribution API")."""
    d, _ = prior.make(prior.batch_shape)
    x = d.sample((3,)).detach()
    torch.testing.assert_close(torch.func.vmap(d.log_prob)(x), d.log_prob(x), rtol=1e-10, atol=1e-10)

    def total(v):
        return d.log_prob(v).sum()

    v = x[0]
    w = v.clone().requires_grad_()
    (g_auto,) = torch.autograd.grad(total(w), w)
    torch.testing.assert_close(torch.func.grad(total)(v), g_auto, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(torch.func.jacrev(total)(v), g_auto, rtol=1e-9, atol=1e-9)
    flat = v.reshape(-1)[: min(v.numel(), 12)]  # the Hessian in the first (up to) 12 coordinates

    def part(u):
        return total(torch.cat([u, v.reshape(-1)[len(u) :]]).reshape(v.shape))

    h_func = torch.func.hessian(part)(flat)
    h_auto = torch.autograd.functional.hessian(part, flat)
    torch.testing.assert_close(h_func, h_auto, rtol=1e-7, atol=1e-7 * (1 + h_auto.abs().max().item()))
    assert h_auto.abs().max() > 0


FLOWS = [p for p in PRIORS if p.name.startswith(("global_flow", "joint_flow"))]


@pytest.mark.parametrize("prior", FLOWS, ids=lambda p: p.name)
def test_transform_reparam_keeps_the_log_joint(prior):
    """A flow prior is a TransformedDistribution, so Pyro's TransformReparam moves a model to the
    flow's base space: the same model, whose log joint at ``x = t(z)`` is the pose-space one plus
    ``log |det dx/dz|`` (the base site's density is the pose's times the Jacobian)."""
    import pyro
    from pyro.infer.reparam import TransformReparam

    d, _ = prior.make(prior.batch_shape)
    assert isinstance(d, torch.distributions.TransformedDistribution)
    (t,) = d.transforms

    def model():
        return pyro.sample("pose", d)

    z = torch.randn(d.batch_shape + d.event_shape, dtype=F64)
    x = t(z)
    with torch.no_grad():
        pose_space = pyro.poutine.trace(pyro.poutine.condition(model, {"pose": x})).get_trace()
        reparam = pyro.poutine.reparam(model, config={"pose": TransformReparam()})
        base_space = pyro.poutine.trace(pyro.poutine.condition(reparam, {"pose_base": z})).get_trace()
        log_det = t.log_abs_det_jacobian(z, x).sum()
    assert torch.allclose(base_space.nodes["pose"]["value"], x, atol=1e-10)
    assert torch.allclose(base_space.log_prob_sum(), pose_space.log_prob_sum() + log_det, atol=1e-8)
    # and a sample drawn through the reparameterised model is a pose with the prior's batch shape
    draw = pyro.poutine.trace(reparam).get_trace()
    assert draw.nodes["pose"]["value"].shape == d.batch_shape + d.event_shape


@pytest.mark.parametrize("prior", PRIORS, ids=IDS)
def test_deepcopy_gives_an_equal_independent_prior(prior):
    """Built from fixed parameters (a loaded prior is frozen), a prior deep-copies like torch's own
    distributions (which, like these, refuse while their parameters carry a graph)."""
    import copy

    with torch.no_grad():
        d, _ = prior.make(prior.batch_shape)
    x = d.sample((3,)).detach()
    twin = copy.deepcopy(d)
    assert torch.allclose(twin.log_prob(x), d.log_prob(x), atol=1e-12)
    assert twin.batch_shape == d.batch_shape and twin.event_shape == d.event_shape


@pytest.mark.parametrize("prior", [p for p in PRIORS if not p.batch_shape or p.name in EXACT], ids=lambda p: p.name)
def test_a_traced_log_prob_works_at_any_batch_size(prior):
    """``torch.jit.trace`` of ``log_prob`` at 5 values, then called on 7 and 2: no batch size is
    baked in (priors with no batch shape of their own)."""
    with torch.no_grad():  # a frozen prior, as load_model gives (tracing refuses weights that need gradients)
        d, params = prior.make(())
    for p in params:
        p.requires_grad_(False)
    x = d.sample((7,)).detach()
    with torch.no_grad():
        traced = torch.jit.trace(d.log_prob, (x[:5],), check_trace=False)
        for n in (7, 2):
            assert torch.allclose(traced(x[:n]), d.log_prob(x[:n]), atol=1e-10), n


VARIANTS = [  # options that change what a checkpoint's state dict holds (and its first entry)
    ("global_flow", {"K": 2, "hidden": 8, "use_actnorm": False}),
    ("global_flow", {"K": 2, "hidden": 8, "gaussian_layer": True}),
    ("global_flow", {"K": 2, "hidden": 8, "mixing": "lu"}),
    ("global_flow_spline", {"K": 2, "hidden": 8, "use_actnorm": False, "gaussian_layer": False}),
    ("joint_flow", {"K": 1, "hidden": 8, "gaussian_layer": False}),
    ("joint_flow", {"K": 1, "hidden": 8, "use_actnorm": False, "gaussian_layer": False}),
    ("gaussian", {"covariance": "diag"}),
    ("vae", {"hidden": 8, "z_dim": 2, "type": "so3", "iwae_k": 4, "gaussian_layer": False, "covariance": "diagonal"}),
    ("vae", {"hidden": 8, "z_dim": 2, "iwae_k": 4, "gaussian_layer": False, "covariance": "diagonal"}),
    ("vae", {"hidden": 8, "z_dim": 2, "iwae_k": 4, "gaussian_layer": False}),
]


@pytest.mark.parametrize(("name", "options"), VARIANTS, ids=lambda v: str(v))
def test_save_and_load_round_trip_for_every_state_layout(name, options, tmp_path):
    model = build_model(name, TINY, options).double()
    model.initialize(0.4 * torch.randn(200, 3, 3, generator=torch.Generator().manual_seed(0), dtype=F64))
    model = perturb(model, scale=0.05)
    back = load_model(save_model(tmp_path / "m.pt", model))
    assert next(iter(back.parameters())).dtype == F64  # the dtype of the floating weights, not of a mask
    x = 0.3 * torch.randn(4, 3, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        a = model.log_prob(x)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        assert torch.equal(back.log_prob(x), a)
