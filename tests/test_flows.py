"""Normalizing-flow priors: exactness (invertibility, log-det against the autograd Jacobian,
normalisation, generating-path density), gradients, batching, persistence and use under Pyro SVI.

Flows are tested with randomly perturbed parameters: at initialisation every coupling is the
identity, which would make most of these checks trivial."""

import math

import pyro
import pytest
import torch
from helpers import perturb

from probpose.distributions import GlobalFlowPrior, parent_features
from probpose.flows import ActNorm, coupling_stack
from probpose.models import (
    GlobalFlowModel,
    GlobalFlowOptions,
    JointFlowModel,
    JointFlowOptions,
    build_model,
    load_model,
)
from probpose.skeleton import SMPLX, Skeleton
from probpose.training import Trainer

F64 = torch.float64
STACKS = [("affine", "permute"), ("affine", "lu"), ("spline", "permute"), ("spline", "lu")]
TINY = Skeleton("tiny", ("a", "b", "c"), (-1, 0, 1))  # a chain of three joints: D = 9
FORK = Skeleton("fork", ("r", "c1", "c2", "g"), (-1, 0, 0, 1))


def stack(kind, mixing, dim=6, context_dim=0, seed=0):
    s = coupling_stack(dim, 3, kind, context_dim=context_dim, hidden=16, layers=1, mixing=mixing, tail_bound=3.0)
    # a spline's bins come from unscaled logits: a smaller perturbation keeps them from the minimal width,
    # where inverting is ill-conditioned (a property of the random weights, not of the code)
    return perturb(s.double(), scale=0.15 if kind == "spline" else 0.3, seed=seed)


@pytest.mark.parametrize("kind, mixing", STACKS)
@pytest.mark.parametrize("context_dim", [0, 4])
def test_stack_invertible_and_logdet_matches_autograd_jacobian(kind, mixing, context_dim):
    s = stack(kind, mixing, context_dim=context_dim)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(16, 6, generator=g, dtype=F64)
    ctx = torch.randn(16, context_dim, generator=g, dtype=F64) if context_dim else None
    z, ld_inv = s.inverse_and_log_det(x, ctx)
    x2, ld_fwd = s.forward_and_log_det(z, ctx)
    assert (x2 - x).abs().max() < 1e-5 and (ld_inv + ld_fwd).abs().max() < 1e-8
    assert ld_inv.dtype == F64 and ld_inv.abs().max() > 1e-3  # not the identity
    for i in range(4):
        c = None if ctx is None else ctx[i : i + 1]
        jac = torch.autograd.functional.jacobian(lambda v, c=c: s.inverse_and_log_det(v[None], c)[0][0], x[i])
        assert abs(torch.linalg.slogdet(jac).logabsdet - ld_inv[i]) < 1e-8


def _earlier_levels(m):
    """``(3J, 3J)`` bool in level order: column of a strictly earlier level than the row (independently of
    the library's own helper)."""
    level = [k for k, lv in enumerate(m().transform.levels) for _ in lv for _ in range(3)]
    return torch.tensor([[a > b for b in level] for a in level])


def _joint_to_base(m, flat):
    """The whole bijection of a joint flow, x (3J) -> z (3J) in level order, written out: the
    Gaussian layer on the joints in level order, then each joint's flow given its parent and the
    Gaussian's prediction of it from earlier levels."""
    prior = m()
    order = list(prior.transform.order)
    xx = flat.reshape(1, -1, 3)
    u = xx[:, order]
    ctx = parent_features(xx, m.skeleton.parents)[:, order]
    if m.gaussian is not None:
        u = m.gaussian.inverse(u.reshape(1, -1))[0]
        prediction = m.gaussian.mean + u @ (m.gaussian.scale_tril * _earlier_levels(m)).T
        ctx = torch.cat([ctx, math.pi * torch.tanh(prediction.view(1, -1, 3) / math.pi)], -1)
        u = u.view(1, -1, 3)
    z, _ = m.flow.inverse_and_log_det(u.permute(1, 2, 0), torch.tensor(order), ctx.permute(1, 2, 0))
    return z.permute(2, 0, 1).reshape(-1)


@pytest.mark.parametrize("gaussian", [True, False])
@pytest.mark.parametrize("kind", ["affine", "spline"])
def test_joint_flow_logdet_matches_jacobian_of_the_whole_map(kind, gaussian):
    m = _joint(kind, FORK, gaussian_layer=gaussian)
    g = torch.Generator().manual_seed(2)
    x = 0.5 * torch.randn(3, 4, 3, generator=g, dtype=F64)
    for i in range(3):
        flat = x[i].reshape(-1)
        jac = torch.autograd.functional.jacobian(lambda v: _joint_to_base(m, v), flat)
        z = _joint_to_base(m, flat)
        base = -0.5 * (z * z).sum() - 6 * math.log(2 * math.pi)
        assert abs(m().log_prob(x[i]) - (base + torch.linalg.slogdet(jac).logabsdet)) < 1e-8


def _global(kind="affine", skel=TINY, **kw):
    opts = GlobalFlowOptions(coupling=kind, K=3, hidden=16, layers=1, tail_bound=3.0, **kw)
    return perturb(GlobalFlowModel(skel, opts).double(), scale=0.2)


def _joint(kind="spline", skel=TINY, **kw):
    m = JointFlowModel(skel, JointFlowOptions(transform=kind, K=2, hidden=16, **kw)).double()
    g = torch.Generator().manual_seed(7)
    m.initialize(0.4 * torch.randn(300, skel.num_joints, 3, generator=g, dtype=F64) + 0.1)
    return perturb(m, scale=0.1)


MODELS = [lambda: _global("affine"), lambda: _global("spline"), lambda: _joint("spline"), lambda: _joint("affine")]
IDS = ["global-affine", "global-spline", "joint-spline", "joint-affine"]


@pytest.mark.parametrize("make", MODELS, ids=IDS)
def test_samples_log_prob_matches_generating_path_and_round_trips(make):
    m = make()
    torch.manual_seed(0)
    x, lp_path = m().rsample_and_log_prob((64,))
    assert x.shape == (64, 3, 3) and x.dtype == F64
    assert (m.log_prob(x) - lp_path).abs().max() < 1e-6


@pytest.mark.parametrize("make", MODELS, ids=IDS)
def test_density_integrates_to_one(make):
    """Importance sampling with a wide Gaussian proposal on R^9: E_q[p/q] = 1."""
    m = make()
    torch.manual_seed(1)
    with torch.no_grad():
        ref = m().sample((4000,)).reshape(4000, -1)
        q = torch.distributions.MultivariateNormal(ref.mean(0), covariance_matrix=torch.cov(ref.T) * 2.25)
        y = q.sample((200_000,))
        w = torch.exp(m.log_prob(y.reshape(-1, 3, 3)) - q.log_prob(y))
    est, se = w.mean().item(), w.std().item() / math.sqrt(len(w))
    assert abs(est - 1) < max(4 * se, 0.02), (est, se)


@pytest.mark.parametrize("make", MODELS, ids=IDS)
def test_every_parameter_receives_a_gradient(make):
    m = make()
    x = m().sample((32,))
    (-m.log_prob(x).mean()).backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_joint_flow_batched_equals_explicit_loop_over_joints():
    m = _joint("spline", FORK)
    x = m().sample((20,))
    prior = m()
    from probpose.rotations import axis_angle_to_matrix, matrix_to_rotation_6d

    order = list(prior.transform.order)
    u = m.gaussian.inverse(x[:, order].reshape(20, -1))[0]
    prediction = (m.gaussian.mean + u @ (m.gaussian.scale_tril * _earlier_levels(m)).T).view(20, 4, 3)
    u = u.view(20, 4, 3)
    total = -m.gaussian.scale_tril.diagonal().log().sum().expand(20).clone()
    for k, j in enumerate(order):  # one flow call per joint, written out independently
        p = FORK.parents[j]
        if p < 0:
            feat = torch.zeros(20, 9, dtype=F64)
        else:
            parent = x[:, p]
            squashed = math.pi * torch.tanh(parent / math.pi)
            feat = torch.cat([matrix_to_rotation_6d(axis_angle_to_matrix(parent)), squashed], -1)
        feat = torch.cat([feat, math.pi * torch.tanh(prediction[:, k] / math.pi)], -1)
        total += m.flow.log_prob(u[:, k].T[None], torch.tensor([j]), feat.T[None])[0]
    assert (prior.log_prob(x) - total).abs().max() < 1e-10
    assert prior.transform.levels == ((0,), (1, 2), (3,))
    assert torch.allclose(prior.joint_log_prob(x).sum(-1), prior.log_prob(x))


def test_roots_are_unconditioned():
    m = _joint("spline", FORK)
    x = m().sample((10,))
    y = x.clone()
    y[:, 1:] = m().sample((10,))[:, 1:]  # change every non-root joint
    assert torch.allclose(m().joint_log_prob(x)[:, 0], m().joint_log_prob(y)[:, 0])
    assert not torch.allclose(m().joint_log_prob(x)[:, 3], m().joint_log_prob(y)[:, 3])


def test_distribution_shapes_expand_and_conditioning():
    m = _global("affine")
    d = m()
    assert d.event_shape == (3, 3) and d.batch_shape == ()
    e = d.expand((4,))
    assert e.sample((2,)).shape == (2, 4, 3, 3) and e.log_prob(e.sample((2,))).shape == (2, 4)
    x = d.sample((5,))
    assert torch.allclose(e.log_prob(x[:, None]), d.log_prob(x)[:, None].expand(5, 4))
    j = _joint()().expand((2, 3))
    assert j.sample().shape == (2, 3, 3, 3) and j.log_prob(j.sample((4,))).shape == (4, 2, 3)
    # conditional: model the hand given the wrist-to-body joints of the same pose
    skel = SMPLX.select(["left_elbow", "left_wrist", "left_index1", "left_index2"])
    c = perturb(
        GlobalFlowModel(
            skel, GlobalFlowOptions(K=2, hidden=16, use_conditioning=True, condition_on="left_elbow+left_wrist")
        ).double()
    )
    assert c.conditional and c.event_dim == 6 and c.flow.context_dim == 12
    poses = 0.3 * torch.randn(7, 4, 3, dtype=F64)
    ctx = c.context_of(poses)
    dist = c(ctx)
    assert dist.batch_shape == (7,) and dist.event_shape == (2, 3)
    assert c.log_prob(poses).shape == (7,) and c.sample(7, ctx).shape == (7, 2, 3)
    with pytest.raises(ValueError, match="context"):
        GlobalFlowPrior(c.flow, 2)


@pytest.mark.parametrize("gaussian", [True, False])
def test_data_dependent_layers_initialise_only_when_asked(gaussian):
    from probpose.flows import GaussianLayer

    m = GlobalFlowModel(TINY, GlobalFlowOptions(K=2, hidden=8, gaussian_layer=gaussian))
    acts = [layer for layer in m.flow.layers if isinstance(layer, ActNorm)]
    gauss = [layer for layer in m.flow.layers if isinstance(layer, GaussianLayer)]
    assert len(gauss) == int(gaussian)
    m.sample(10)  # sampling first must not initialise anything (a normflows pitfall)
    assert all(not a.initialized for a in acts + gauss) and all(a.log_scale.abs().sum() == 0 for a in acts)
    data = torch.randn(500, 3, 3) * torch.tensor([0.1, 0.5, 2.0]) + 1.0
    m.initialize(data)
    assert all(a.initialized for a in acts + gauss)
    if gaussian:  # the ActNorms stay the identity: the Gaussian layer already standardises
        assert all(a.log_scale.abs().sum() == 0 and a.shift.abs().sum() == 0 for a in acts)
    z, _ = m.flow.inverse_and_log_det(data.reshape(500, -1))
    assert z.mean(0).abs().max() < 1e-4 and (z.std(0, correction=0) - 1).abs().max() < 1e-3
    if gaussian:  # whitened: the flow starts as the data's full-covariance Gaussian
        assert (torch.cov(z.T, correction=0) - torch.eye(9)).abs().max() < 1e-3


@pytest.mark.parametrize("name", ["global_flow", "global_flow_spline", "joint_flow"])
def test_trains_and_checkpoint_round_trip_gives_identical_log_prob(tmp_path, name):
    from probpose.training.config import config_from_dict, config_to_dict

    skel = SMPLX.select("left_hand")
    g = torch.Generator().manual_seed(0)
    train = 0.3 * torch.randn(300, 15, 3, generator=g) + 0.2
    cfg = config_from_dict({"name": "f", "model": {"name": name, "K": 2, "hidden": 16},
                            "training": {"max_steps": 30, "eval_every": 10, "lr": 1e-3}})  # fmt: skip
    model = build_model(name, skel, cfg.model.options)
    before = -model.log_prob(train).mean().item() if name == "joint_flow" else None
    result = Trainer(model, cfg.training, tmp_path, config_to_dict(cfg), tensorboard=False).fit(train, train[:50])
    assert result.steps == 30
    if before is not None:  # initialised on the data and trained: better than the standardised start
        assert -model.log_prob(train).mean().item() < before
    back = load_model(tmp_path / "checkpoint.pt")
    x = train[:40]
    assert torch.equal(back.log_prob(x), model.log_prob(x))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    fresh = build_model(name, skel, cfg.model.options)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.log_prob(x), model.log_prob(x))


@pytest.mark.parametrize("make", [lambda: _global("affine"), lambda: _joint("spline")], ids=["global", "joint"])
def test_inside_a_pyro_plate_trains_under_svi(make):
    pyro.clear_param_store()
    teacher = make()
    data = teacher().sample((512,)).detach()
    m = make().float()
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(0.5)
    data = data.float()

    def model(x):
        pyro.module("prior", m)
        with pyro.plate("poses", len(x)):
            pyro.sample("pose", m(), obs=x)

    svi = pyro.infer.SVI(model, lambda x: None, pyro.optim.Adam({"lr": 3e-3}), pyro.infer.Trace_ELBO())
    losses = [svi.step(data) for _ in range(60)]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 50
    pyro.clear_param_store()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_float32_and_float64():
    for dtype in (torch.float32, torch.float64):
        for m in (_global("spline"), _joint("spline")):
            m = m.to("cuda", dtype)
            x, lp = m().rsample_and_log_prob((32,))
            assert x.device.type == "cuda" and lp.dtype == dtype
            assert (m.log_prob(x) - lp).abs().max() < (1e-3 if dtype == torch.float32 else 1e-8)


def test_the_flow_stack_has_normflows_sign_convention():
    """``FlowStack.forward_and_log_det`` and ``inverse_and_log_det`` return what normflows'
    ``NormalizingFlow`` methods of the same names return for the same layers (base -> data,
    ``log |det dx/dz|`` forward; ``log |det dz/dx|`` inverse): one convention, normflows' and torch's."""
    import normflows as nf

    stack = coupling_stack(6, 2, "spline", hidden=8, layers=1, mixing="lu")  # float32: normflows' sums are
    perturb(stack, 0.1)
    reference = nf.NormalizingFlow(nf.distributions.DiagGaussian(6, trainable=False), list(stack.layers))
    z = torch.randn(16, 6)
    x, ld = stack.forward_and_log_det(z)
    x_ref, ld_ref = reference.forward_and_log_det(z)
    assert torch.allclose(x, x_ref, atol=1e-6) and torch.allclose(ld, ld_ref, atol=1e-5)
    back, ld_inv = stack.inverse_and_log_det(x)
    back_ref, ld_inv_ref = reference.inverse_and_log_det(x)
    assert torch.allclose(back, back_ref, atol=1e-6) and torch.allclose(ld_inv, ld_inv_ref, atol=1e-5)
    assert torch.allclose(ld_inv, -ld, atol=1e-4) and ld.abs().max() > 1e-2  # the layers do change volume


@pytest.mark.parametrize("layers", [0, 1])
@pytest.mark.parametrize("kind", ["affine", "spline"])
def test_joint_flow_push_forward_inverts_for_every_conditioner_depth(kind, layers):
    """The push-forward's passes share the first layer's context part and compute only their own
    coordinate's outputs of the last layer; with no hidden layer the first layer is the last (this
    failed with a shape error before the passes handled it). Noise -> pose -> noise round-trips and
    both directions report the same log-determinant, float64."""
    skel = SMPLX.select("body")
    m = JointFlowModel(skel, JointFlowOptions(transform=kind, layers=layers, hidden=8)).double()
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in m.flow.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    prior = m()
    z = torch.randn(4, skel.num_joints, 3, generator=g, dtype=F64)
    x, ld_forward = prior.transform.forward_and_log_det(z)
    back, ld_inverse = prior.transform.inverse_and_log_det(x)
    assert torch.allclose(back, z, atol=1e-10)
    assert torch.allclose(ld_forward, ld_inverse, atol=1e-10)


@pytest.mark.parametrize("name", ["global_flow", "global_flow_spline", "joint_flow"])
def test_the_flow_transform_owns_its_layers_and_composes_like_any_torch_transform(name):
    """A flow prior is ``TransformedDistribution(N(0, I), [transform])`` and nothing else: the
    transform holds the model's parameters (an expanded prior shares it), torch's generic
    composition of the same base and transform gives the prior's ``log_prob``, the transform's
    ``log |det dx/dz|`` equals the autograd Jacobian's, and a ``FlowDistribution`` over the bare
    transform is the same prior (float64)."""
    from probpose.distributions import FlowDistribution, FlowTransform

    m = build_model(name, TINY, {"K": 2, "hidden": 8}).double()
    m.initialize(0.4 * torch.randn(300, 3, 3, generator=torch.Generator().manual_seed(0), dtype=F64))
    m = perturb(m, scale=0.1)
    d = m()
    t = d.transform
    assert isinstance(t, FlowTransform) and d.transforms == [t]
    assert {id(p) for p in t.parameters()} == {id(p) for p in m.parameters()}
    assert d.expand((4,)).transforms[0] is t
    cached = t.with_cache(1)
    assert cached is not t and cached == t and {id(p) for p in cached.parameters()} == {id(p) for p in m.parameters()}

    x = d.sample((6,))
    generic = torch.distributions.TransformedDistribution(
        torch.distributions.Independent(torch.distributions.Normal(torch.zeros(3, 3, dtype=F64), 1.0), 2), [t]
    )
    torch.testing.assert_close(generic.log_prob(x), d.log_prob(x), rtol=0, atol=1e-10)
    torch.testing.assert_close(FlowDistribution(t).log_prob(x), d.log_prob(x), rtol=0, atol=1e-10)
    generic.log_prob(x).sum().backward()
    assert all(p.grad is not None for p in m.parameters() if p.requires_grad)

    z = torch.randn(4, 3, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    y = t(z)
    log_det = t.log_abs_det_jacobian(z, y)
    for i in range(len(z)):
        jac = torch.autograd.functional.jacobian(lambda v: t(v.view(3, 3)).reshape(-1), z[i].reshape(-1))
        assert abs(torch.linalg.slogdet(jac).logabsdet - log_det[i]) < 1e-8
    torch.testing.assert_close(t.inv(y), z, rtol=0, atol=1e-8)
