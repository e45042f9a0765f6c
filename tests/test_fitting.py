"""Fitting: priors composed inside Pyro models with 3D and 2D observations (MAP, posteriors, NUTS),
on real held-out poses (bundled SMPL-X body+hands test split, PASyn zebra legs)."""

import copy
import json

import numpy as np
import pyro
import pytest
import torch
from helpers import perturb

from probpose.cli import main
from probpose.data import bundled, import_recording, split_poses
from probpose.errors import DataError
from probpose.fitting import (
    SMPLX_REST_JOINTS,
    Joints3D,
    Keypoints2D,
    PoseFit,
    RigBody,
    SkeletonBody,
    fit_map,
    fit_nuts,
    fit_posterior,
    geodesic_error_deg,
    laplace,
    load_observations,
)
from probpose.fitting.values import frame_log_joint
from probpose.kinematics import ZEBRA_RIG
from probpose.models import PoseVAE, VAEOptions, build_model, save_model
from probpose.skeleton import SMPLX
from probpose.synthesis import SceneOptions, animate
from probpose.training import Trainer, TrainingConfig


@pytest.fixture(scope="module")
def human():
    poses, _ = import_recording(bundled("smplx"), joints="body+hands")
    sp = split_poses(poses, segment_seconds=0.25)
    skel = poses.skeleton
    train = torch.from_numpy(poses.poses[sp.indices["train"]]).float()
    test = torch.from_numpy(poses.poses[sp.indices["test"]]).float()
    gauss = build_model("gaussian_full", skel)
    gauss.fit_closed_form(train)
    flow = build_model("joint_flow", skel)
    flow.initialize(train)
    torch.manual_seed(0)
    Trainer(flow, TrainingConfig(max_steps=60, eval_every=30, patience=0)).fit(train, test)
    body = SkeletonBody(SMPLX, SMPLX_REST_JOINTS, skel.joint_names)
    return skel, train, test, {"gaussian_full": gauss, "joint_flow": flow}, body


def _observe(body, truth, seed=0, noise=0.0):
    g = torch.Generator().manual_seed(seed)
    orient = 0.4 * torch.randn(len(truth), 3, generator=g, dtype=torch.float64)
    transl = torch.randn(len(truth), 3, generator=g, dtype=torch.float64)
    pts = body.points(truth.double(), orient, transl)
    return pts + noise * torch.randn(pts.shape, generator=g, dtype=torch.float64), pts


LEFT_ARM = [
    n
    for n in SMPLX.joint_names
    if n.startswith("left_") and not any(s in n for s in ("hip", "knee", "ankle", "foot", "eye", "collar", "shoulder"))
]


def test_a_flow_prior_is_its_base_pushed_through_its_transform():
    """The flow priors are TransformedDistributions: torch's generic log-density (invert, then the
    transform's log-determinant, plus the base's) equals the prior's fused ``log_prob``; the
    transform's log-determinant equals autograd's ``slogdet`` of its Jacobian; forward and inverse
    invert each other; pushing noise forward is differentiable in the noise."""
    from torch.distributions import TransformedDistribution

    from probpose.skeleton import ZEBRA_LEGS

    for name in ("global_flow", "global_flow_spline", "joint_flow"):
        model = build_model(name, ZEBRA_LEGS).double()
        model.initialize(0.3 * torch.randn(256, 12, 3, dtype=torch.float64))
        perturb(model, 0.05)
        d = model()
        assert isinstance(d, TransformedDistribution) and len(d.transforms) == 1
        (t,) = d.transforms
        z = torch.randn(5, 12, 3, dtype=torch.float64)
        x = t(z)
        generic = TransformedDistribution.log_prob(d, x)
        assert torch.allclose(d.log_prob(x), generic, atol=1e-8), name
        assert torch.allclose(t.inv(x), z, atol=1e-7), name
        jac = torch.autograd.functional.jacobian(lambda v, t=t: t(v.view(12, 3)).reshape(-1), z[0].reshape(-1))
        assert torch.allclose(torch.linalg.slogdet(jac)[1], t.log_abs_det_jacobian(z[:1], t(z[:1]))[0], atol=1e-8)
        x_path, lp_path = d.rsample_and_log_prob((4,))
        assert torch.allclose(d.log_prob(x_path), lp_path, atol=1e-8), name
        z.requires_grad_(True)
        t(z).sum().backward()
        assert z.grad.abs().sum() > 0


def test_base_space_fits_are_pyros_transform_reparam(human):
    """``space="base"`` is the pose-space model under ``poutine.reparam(TransformReparam())``: its
    latent is ``pose_base``, and at matching values (pose = flow(pose_base)) the log joint differs
    from the pose-space one by exactly the flow's log-determinant (the change of variables)."""
    skel, train, test, priors, body = human
    prior = priors["joint_flow"]
    pts, _ = _observe(body, test[:2])
    obs = Joints3D(pts, torch.ones(pts.shape[:2], dtype=torch.bool), sigma=0.05)
    pose_fit = PoseFit(prior, body, obs)
    base_fit = PoseFit(prior, body, obs, space="base")
    assert base_fit.latent == "pose_base" and pose_fit.latent == "pose"
    (t,) = prior().transforms
    z = 0.3 * torch.randn(2, *base_fit.latent_shape(), dtype=pose_fit.dtype)
    root = {"orient": torch.zeros(2, 3, dtype=pose_fit.dtype), "transl": torch.zeros(2, 3, dtype=pose_fit.dtype)}
    with pose_fit.frozen_prior():
        pose = t(z)
        lj_base = pyro.poutine.trace(pyro.poutine.condition(base_fit.model, {"pose_base": z, **root})).get_trace()
        lj_pose = pyro.poutine.trace(pyro.poutine.condition(pose_fit.model, {"pose": pose, **root})).get_trace()
        log_det = t.log_abs_det_jacobian(z, t(z)).sum()
    assert "pose_base" in lj_base.nodes and lj_base.nodes["pose"]["is_observed"]
    torch.testing.assert_close(lj_base.log_prob_sum(), lj_pose.log_prob_sum() + log_det, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("guide", ["normal", "lowrank"])
def test_base_space_autoguides_give_every_frame_its_own_latent(human, guide):
    """Pyro's autoguides on a base-space fit: the reparameterisation is entered outside the frames
    plate, so ``pose_base`` is batched over frames (entered inside, AutoNormal's site had no frame
    dimension and the fit failed with a shape error)."""
    skel, train, test, priors, body = human
    pts, _ = _observe(body, test[:3])
    fit = PoseFit(priors["joint_flow"], body, Joints3D(pts, torch.ones(pts.shape[:2], dtype=torch.bool), sigma=0.02),
                  space="base")  # fmt: skip
    res = fit_posterior(fit, guide=guide, steps=3, map_steps=5, samples=4)
    assert res.posterior is not None and res.posterior.samples.shape == (4, 3, fit.num_joints, 3)
    spread = res.posterior.samples.std(0).mean((-1, -2))  # (3,): every frame has its own draws
    assert (spread > 0).all() and res.pose.shape == (3, fit.num_joints, 3)


@pytest.mark.parametrize(
    "prior, space", [(None, "pose"), ("gaussian_full", "pose"), ("joint_flow", "pose"), ("joint_flow", "base")]
)
def test_noise_free_complete_3d_recovers_the_pose(human, prior, space):
    skel, train, test, priors, body = human
    truth = test[:2] if space == "base" else test[:4]  # base space: a level-by-level pass per step (slow)
    pts, _ = _observe(body, truth)
    obs = Joints3D(pts, torch.ones(pts.shape[:2], dtype=torch.bool), sigma=0.002)
    fit = PoseFit(None if prior is None else priors[prior], body, obs, space=space, joint_names=skel.joint_names)
    # base space: 150 iterations reach 2.3 mm (400: 2.0 mm, four times as long; measured)
    res = fit_map(fit, steps=150 if space == "base" else 400)
    mpjpe_mm = 1000 * (res.points.double() - pts).norm(dim=-1).mean()
    assert mpjpe_mm < 5.0, (prior, space, mpjpe_mm)


def test_base_space_map_in_pose_coordinates_is_the_base_space_map(human):
    """``fit_map(coordinates="pose")`` in a flow's base space runs its L-BFGS over the pose with the
    base-space objective (the flow's inverse instead of its push-forward): its losses are the
    base-space log joint, its pose is the flow of its noise, and it reaches the log joint of the
    default L-BFGS over the noise, frame by frame, along another path (every joint observed;
    float64, 150 iterations: 0.1-0.2 nats apart on this briefly trained flow;
    benchmarks/fit_speed.py compares the two on 1,000 held-out frames with the shipped flow)."""
    skel, train, test, priors, body = human
    pts, _ = _observe(body, test[:2], seed=3, noise=0.01)
    prior = copy.deepcopy(priors["joint_flow"]).double()
    fit = PoseFit(prior, body, Joints3D(pts, torch.ones(pts.shape[:2], dtype=torch.bool), sigma=0.01), space="base")
    res = fit_map(fit, steps=150, coordinates="pose")
    by_noise = fit_map(fit, steps=150, coordinates="latent")  # over the noise
    assert torch.allclose(fit.pose_of(res.latent), res.pose, atol=1e-8)

    def log_joint(r):
        with torch.no_grad():
            return frame_log_joint(fit, {"pose_base": r.latent, "orient": r.orient, "transl": r.transl})

    lj, lj_noise = log_joint(res), log_joint(by_noise)
    assert ((lj - lj_noise).abs() < 0.5).all(), (lj, lj_noise)
    assert -res.losses[-1] == pytest.approx(float(lj.sum()), rel=1e-9)  # the objective is the base space's
    with pytest.raises(ValueError, match="coordinates"):
        fit_map(fit, steps=1, coordinates="noise")


def test_base_space_map_takes_the_pose_coordinates_for_fully_observed_frames_only(human):
    """``coordinates="auto"`` (the default) fits the frames that see every point over the pose and
    the others over the noise, in two batches: each frame's result is the one its own coordinates
    give when its group is fitted alone."""
    from probpose.fitting.map import fully_observed

    skel, train, test, priors, body = human
    pts, _ = _observe(body, test[:3], seed=4, noise=0.01)
    mask = torch.ones(pts.shape[:2], dtype=torch.bool)
    mask[1, :5] = False  # frame 1 misses five points
    prior = copy.deepcopy(priors["joint_flow"]).double()
    fit = PoseFit(prior, body, Joints3D(pts, mask, sigma=0.01), space="base")
    assert fully_observed(fit).tolist() == [True, False, True]
    auto = fit_map(fit, steps=40)
    full, part = torch.tensor([0, 2]), torch.tensor([1])
    by_pose = fit_map(fit.select(full), steps=40, coordinates="pose")
    by_noise = fit_map(fit.select(part), steps=40, coordinates="latent")
    other = fit_map(fit.select(full), steps=40, coordinates="latent")
    # the start values are computed in another batch (rounding apart): equal to 1e-6 rad, while the
    # other coordinates' path ends visibly elsewhere after 40 iterations
    for name in ("latent", "pose", "orient", "transl"):
        torch.testing.assert_close(getattr(auto, name)[full], getattr(by_pose, name), rtol=0, atol=1e-6)
        torch.testing.assert_close(getattr(auto, name)[part], getattr(by_noise, name), rtol=0, atol=1e-6)
    assert (by_pose.latent - other.latent).abs().max() > 1e-3


def test_body_points_move_only_the_joints_that_can_move():
    """A body runs forward kinematics on its moving joints (the root, the driven ones and their
    ancestors) and carries the others rigidly: the same points as the whole tree's kinematics, in
    float64, for priors over the body, over a hand's joint, and over a single leaf."""
    from probpose.kinematics import forward_kinematics
    from probpose.rotations import axis_angle_to_matrix

    g = torch.Generator().manual_seed(0)
    for names in (SMPLX.joint_names[1:22], ["left_wrist", "right_index2"], ["head"]):
        body = SkeletonBody(SMPLX, SMPLX_REST_JOINTS, names)
        pose = torch.randn(5, len(names), 3, generator=g, dtype=torch.float64)
        orient, transl = torch.randn(2, 5, 3, generator=g, dtype=torch.float64)
        rot = body._rotations(pose)
        rot[:, body.root] = axis_angle_to_matrix(orient)
        whole = forward_kinematics(SMPLX, rot, body.offsets, None, None, transl).positions
        assert torch.allclose(body.points(pose, orient, transl), whole, atol=1e-12)
        assert len(body._moving) < SMPLX.num_joints


def test_flow_prior_beats_no_prior_on_an_occluded_arm(human):
    skel, train, test, priors, body = human
    truth = test
    pts, clean = _observe(body, truth, seed=1, noise=0.01)
    mask = torch.ones(pts.shape[:2], dtype=torch.bool)
    hidden = [SMPLX.index(n) for n in LEFT_ARM]
    mask[:, hidden] = False
    obs = Joints3D(pts, mask, sigma=0.01)
    err = {}
    for name, prior in (("none", None), ("joint_flow", priors["joint_flow"])):
        res = fit_map(PoseFit(prior, body, obs, joint_names=skel.joint_names), steps=300)
        err[name] = 1000 * (res.points.double() - clean)[:, hidden].norm(dim=-1).mean().item()
    # measured: none about 600 mm (the arm goes anywhere), joint_flow about 10 mm
    assert err["joint_flow"] < 50 and err["none"] - err["joint_flow"] > 200, err


def test_autonormal_is_calibrated_on_an_occluded_arm_where_nuts_is(human):
    """Real held-out poses, 1 cm noise, the left elbow, wrist and hand unseen, the full-covariance
    Gaussian prior: the rotations of the joints that move unseen points (the arm's) must fall
    inside the 90% balls 90% +- 15 points of the time, for NUTS (Laplace-whitened) on a few
    frames and for AutoNormal on every frame. (On the zebra case below, where the truth is drawn
    from a Gaussian prior with strongly correlated leg joints, AutoNormal under-covers.)"""
    skel, train, test, priors, body = human
    prior = copy.deepcopy(priors["gaussian_full"]).double()
    truth = test[:12].double()
    pts, _ = _observe(body, truth, seed=1, noise=0.01)
    mask = torch.ones(pts.shape[:2], dtype=torch.bool)
    hidden = [SMPLX.index(n) for n in LEFT_ARM]
    mask[:, hidden] = False
    obs = Joints3D(pts, mask, sigma=0.01)
    parents = {SMPLX.joint_names[SMPLX.parents[i]] for i in hidden}
    moving = [i for i, n in enumerate(skel.joint_names) if n in parents]
    normal = fit_posterior(
        PoseFit(prior, body, obs), guide="normal", steps=200, particles=4, samples=100, map_steps=300
    )
    cover_normal = normal.posterior.covers(truth)[:, moving].double().mean().item()
    nuts = fit_nuts(PoseFit(prior, body, obs.select(slice(0, 3))), samples=80, warmup=80, max_tree_depth=4)
    cover_nuts = nuts.posterior.covers(truth[:3])[:, moving].double().mean().item()
    assert abs(cover_nuts - 0.9) <= 0.15, cover_nuts
    assert abs(cover_normal - 0.9) <= 0.15, cover_normal


def test_plate_batch_equals_fitting_each_frame_alone(human):
    skel, train, test, priors, body = human
    pts, _ = _observe(body, test[:3], seed=2, noise=0.01)
    mask = torch.ones(pts.shape[:2], dtype=torch.bool)
    mask[:, 20:30] = False
    obs = Joints3D(pts, mask, sigma=0.01)
    prior = priors["gaussian_full"]
    batch = fit_map(PoseFit(prior, body, obs), steps=60, optimizer="adam")
    for i in range(3):
        one = fit_map(PoseFit(prior, body, obs.select(slice(i, i + 1))), steps=60, optimizer="adam")
        assert torch.allclose(one.pose[0], batch.pose[i], atol=1e-5)
        assert torch.allclose(one.transl[0], batch.transl[i], atol=1e-5)


@pytest.fixture(scope="module")
def zebra():
    poses, _ = import_recording(bundled("zebra"))
    sp = split_poses(poses)
    train = torch.from_numpy(poses.poses[sp.indices["train"]]).double()
    test = torch.from_numpy(poses.poses[sp.indices["test"]]).double()
    prior = build_model("gaussian_full", poses.skeleton).double()
    prior.fit_closed_form(train)
    return poses.skeleton, train, test, prior


def _film(legs, size=256, seed=0):
    anim = animate(
        ZEBRA_RIG,
        legs,
        size,
        size,
        SceneOptions(motion_scale=0.0, sequence_frames=4),
        torch.Generator().manual_seed(seed),
    )
    return anim


def test_2d_fit_reprojects_to_the_noise_level(zebra):
    skel, train, test, prior = zebra
    legs = test[:8]
    anim = _film(legs)
    body = RigBody(ZEBRA_RIG)
    # with motion_scale 0 the non-leg bones rest: the body reproduces the animation's keypoints
    kp3 = body.points(anim.legs, _aa(anim.root_rotation), anim.root_position)
    assert torch.allclose(kp3, ZEBRA_RIG.keypoints_of(anim.posed), atol=1e-9)
    cam = anim.camera
    g = torch.Generator().manual_seed(3)
    pix = cam.project(kp3)[0]
    noisy = pix + 1.0 * torch.randn(pix.shape, generator=g, dtype=torch.float64)
    conf = torch.ones(pix.shape[:2], dtype=torch.float64)
    conf[:, [11, 12]] = 0.0  # a hind leg's lower keypoints dropped
    init_o = _aa(anim.root_rotation) + 0.1 * torch.randn(8, 3, generator=g, dtype=torch.float64)
    init_t = anim.root_position + 0.1 * torch.randn(8, 3, generator=g, dtype=torch.float64)
    obs = Keypoints2D(noisy, conf, cam.K, cam.R, cam.t, sigma=1.0, init_orient=init_o, init_transl=init_t)
    rel = {}
    for name, p in (("none", None), ("gaussian_full", prior)):
        res = fit_map(PoseFit(p, body, obs, joint_names=skel.joint_names), steps=400)
        # the mean norm of 2D N(0, 1 px^2) noise is sqrt(pi / 2) = 1.25 px; a fit explains part of it
        assert res.residual.mean() < 1.6, (name, res.residual)
        centred = (res.points - res.points.mean(1, keepdim=True)) - (kp3 - kp3.mean(1, keepdim=True))
        rel[name] = 1000 * centred.norm(dim=-1).mean().item()
    # 2D leaves depth and bone twist ambiguous: the prior picks plausible 3D legs (measured: none
    # about 390 mm, gaussian_full about 135 mm of centred 3D keypoint error)
    assert rel["gaussian_full"] < 200 and rel["none"] - rel["gaussian_full"] > 150, rel


def _aa(rot):
    from probpose.rotations import matrix_to_axis_angle

    return matrix_to_axis_angle(rot)


def _zebra_case(prior, n, seed=4):
    """Truth drawn from the prior, 3D keypoints with 3 cm noise, one hind leg's lower keypoints unseen."""
    torch.manual_seed(0)
    truth = prior.sample(n).double()
    body = RigBody(ZEBRA_RIG)
    g = torch.Generator().manual_seed(seed)
    zero = torch.zeros(n, 3, dtype=torch.float64)
    pts = body.points(truth, zero, zero)
    sigma = 0.03
    noisy = pts + sigma * torch.randn(pts.shape, generator=g, dtype=torch.float64)
    mask = torch.ones(pts.shape[:2], dtype=torch.bool)
    mask[:, [14, 15]] = False  # the left hind leg's lower keypoints unseen
    return truth, body, Joints3D(noisy, mask, sigma=sigma, init_orient=zero, init_transl=zero)


def test_frame_lbfgs_equals_each_frame_alone_and_the_joint_optimum(zebra):
    """The default MAP optimiser (an L-BFGS per frame, batched) gives each frame the result it gets
    alone, and the same optimum as torch's L-BFGS over all frames (AutoDelta's parameters)."""
    prior = zebra[3]
    truth, body, obs = _zebra_case(prior, 3)
    batch = fit_map(PoseFit(prior, body, obs), steps=1500)
    assert "per frame" in batch.inference and len(batch.losses) < 1500  # every frame stopped on its own
    for i in range(3):
        one = fit_map(PoseFit(prior, body, obs.select(slice(i, i + 1))), steps=1500)
        # the same optimum; the paths differ by rounding, along directions the data barely fix
        assert geodesic_error_deg(one.pose[0], batch.pose[i]).max() < 0.05
        assert torch.allclose(one.transl[0], batch.transl[i], atol=1e-4)
    joint = fit_map(PoseFit(prior, body, obs), steps=600, optimizer="joint-lbfgs")
    assert "AutoDelta" in joint.inference
    assert abs(joint.losses[-1] - batch.losses[-1]) < 1e-3, (joint.losses[-1], batch.losses[-1])
    assert geodesic_error_deg(joint.pose, batch.pose).max() < 0.05


def test_frame_lbfgs_is_as_good_as_torchs_lbfgs_on_each_frame_at_the_same_budget(zebra):
    """At the same budget (100 iterations), the batched L-BFGS leaves no frame less probable than
    torch's L-BFGS (strong Wolfe, history 50) run on that frame alone: the curvature history has to
    be long enough (with 10 pairs every frame is 0.05-0.5 nats behind)."""
    prior = zebra[3]
    _, body, obs = _zebra_case(prior, 6)
    fit = PoseFit(prior, body, obs)

    def log_joint(f, r):
        with torch.no_grad():
            return frame_log_joint(f, {f.latent: r.latent, "orient": r.orient, "transl": r.transl})

    batch = log_joint(fit, fit_map(fit, steps=100))
    alone = torch.cat(
        [
            log_joint(one, fit_map(one, steps=100, optimizer="joint-lbfgs"))
            for one in (fit.select(slice(i, i + 1)) for i in range(6))
        ]
    )
    assert (batch >= alone - 0.01).all(), batch - alone


def test_many_frames_are_fitted_chunk_after_chunk_with_the_same_result(zebra, monkeypatch):
    """Beyond ``FRAME_CHUNK`` frames the batched L-BFGS runs chunk after chunk (its curvature history
    grows with the frames): the same fit as one batch, the total objective summed over chunks."""
    import probpose.fitting.map as map_module

    prior = zebra[3]
    _, body, obs = _zebra_case(prior, 5)
    whole = fit_map(PoseFit(prior, body, obs), steps=200)
    monkeypatch.setattr(map_module, "FRAME_CHUNK", 2)
    chunked = fit_map(PoseFit(prior, body, obs), steps=200)
    assert torch.allclose(chunked.pose, whole.pose, atol=1e-6)
    assert torch.allclose(chunked.transl, whole.transl, atol=1e-6)
    assert chunked.losses[0] == pytest.approx(whole.losses[0], rel=1e-12)
    assert chunked.losses[-1] == pytest.approx(whole.losses[-1], rel=1e-9)


def test_laplace_hessian_equals_autograd_per_frame(zebra):
    """The batched Hessian blocks (autograd, and central differences of gradients) equal autograd's
    Hessian of each frame alone (float64), and the Cholesky factor is that of the inverse."""
    prior = zebra[3]
    truth, body, obs = _zebra_case(prior, 3)
    fit = PoseFit(prior, body, obs, known_root=False)
    res = fit_map(fit, steps=200)
    values = {"pose": res.latent, "orient": res.orient, "transl": res.transl}
    hess, tril = laplace(fit, values)
    assert hess.shape == tril.shape == (3, 42, 42)
    differences = laplace(fit, values, method="differences")[0]
    assert torch.allclose(differences, hess, rtol=1e-5, atol=1e-5 * hess.abs().max().item())
    for i in range(3):
        one = PoseFit(prior, body, obs.select(slice(i, i + 1)))

        def nlp(x, one=one):
            data = {"pose": x[:36].reshape(1, 12, 3), "orient": x[36:39].reshape(1, 3), "transl": x[39:].reshape(1, 3)}
            tr = pyro.poutine.trace(pyro.poutine.condition(one.model, data=data)).get_trace()
            return -tr.log_prob_sum()

        x = torch.cat([values["pose"][i].reshape(-1), values["orient"][i], values["transl"][i]])
        ref = torch.autograd.functional.hessian(nlp, x)
        assert torch.allclose(hess[i], ref, rtol=1e-5, atol=1e-4 * ref.abs().max().item()), (hess[i] - ref).abs().max()
        cov = tril[i] @ tril[i].T
        assert torch.allclose(cov @ ref, torch.eye(42, dtype=torch.float64), atol=1e-4)


def test_the_per_frame_guide_is_an_autoguide_that_composes_with_autoguidelist(zebra):
    """AutoFrameMVN over the pose and an AutoDelta over the root, in one AutoGuideList, run by SVI:
    the sites come from the right parts, the median is the per-frame Gaussian's mean, and the loss
    falls."""
    from pyro.infer import SVI, Trace_ELBO
    from pyro.infer.autoguide import AutoDelta, AutoGuideList, init_to_value
    from pyro.infer.autoguide.initialization import InitMessenger

    from probpose.fitting import AutoFrameMVN

    prior = zebra[3]
    _, body, obs = _zebra_case(prior, 3)
    fit = PoseFit(prior, body, obs)
    res = fit_map(fit, steps=100)
    start = {"orient": res.orient, "transl": res.transl}
    # the root's flat priors cannot be sampled: AutoGuideList traces the model at start values
    model = InitMessenger(init_to_value(values={"pose": res.latent, **start}))(fit.model)
    pyro.clear_param_store()
    with fit.frozen_prior():
        guide = AutoGuideList(model)
        part = AutoFrameMVN(pyro.poutine.block(model, expose=["pose"]), {"pose": res.latent}, 0.01)
        guide.append(part)
        guide.append(AutoDelta(pyro.poutine.block(model, hide=["pose"]), init_loc_fn=init_to_value(values=start)))
        assert isinstance(part, pyro.infer.autoguide.AutoGuide)
        draw = guide()
        assert set(draw) == {"pose", "orient", "transl"} and draw["pose"].shape == res.latent.shape
        assert torch.allclose(part.median()["pose"], res.latent)
        svi = SVI(fit.model, guide, pyro.optim.Adam({"lr": 0.01}), Trace_ELBO(num_particles=4))
        torch.manual_seed(0)
        losses = [svi.step() for _ in range(60)]
    assert sum(losses[-10:]) < sum(losses[:10])
    pyro.clear_param_store()


def test_laplace_through_a_spline_flow_has_the_exact_second_derivative(zebra):
    """The Laplace Hessian through a spline flow equals autograd's Hessian of the same log joint, and
    the prior's Hessian through the fused spline backward (which re-derives itself with autograd
    when differentiated twice) equals torch.func's, which computes the splines with plain tensor
    operations: no term is missed."""
    prior = build_model("global_flow_spline", zebra[0]).double()
    prior.initialize(zebra[1])
    perturb(prior, 0.05)
    truth, body, obs = _zebra_case(zebra[3], 1)
    fit = PoseFit(prior, body, obs, known_root=True)
    res = fit_map(fit, steps=100)
    hess, tril = laplace(fit, {"pose": res.latent})

    def nlp(x):
        tr = pyro.poutine.trace(pyro.poutine.condition(fit.model, data={"pose": x.reshape(1, 12, 3)})).get_trace()
        return -tr.log_prob_sum()

    def prior_lp(x):
        return prior().log_prob(x.reshape(1, 12, 3)).sum()

    x0 = res.latent.reshape(-1)
    with fit.frozen_prior():
        ref = torch.autograd.functional.hessian(nlp, x0)
        fused = torch.autograd.functional.hessian(prior_lp, x0)
        plain = torch.func.hessian(prior_lp)(x0)  # splines as plain tensor operations
    assert torch.allclose(hess[0], ref, atol=1e-6 * ref.abs().max().item())
    assert torch.allclose(fused, plain, atol=1e-8 * plain.abs().max().item())
    assert (torch.diagonal(tril, dim1=-2, dim2=-1) > 0).all()


def test_fits_never_change_or_alias_the_callers_tensors(zebra):
    """One tensor given as both init_orient and init_transl (a natural zero start) must neither be
    changed by the fit nor tie the two sites together: the fit equals the one from separate
    copies, and reaches a stationary point (found when LBFGS stalled with both sites sharing storage)."""
    prior = zebra[3]
    truth, body, obs = _zebra_case(prior, 3)
    shared = torch.zeros(3, 3, dtype=torch.float64)
    for optimizer in ("frame-lbfgs", "adam"):
        fit_map(
            PoseFit(prior, body, Joints3D(obs.points, obs.mask, sigma=0.03, init_orient=shared, init_transl=shared)),
            steps=20,
            optimizer=optimizer,
        )
        assert (shared == 0).all()
    # AutoDelta's parameters (joint L-BFGS): where the shared storage tied the two sites together
    a = fit_map(
        PoseFit(prior, body, Joints3D(obs.points, obs.mask, sigma=0.03, init_orient=shared, init_transl=shared)),
        steps=300,
        optimizer="joint-lbfgs",
    )
    assert (shared == 0).all()
    separate = Joints3D(obs.points, obs.mask, sigma=0.03, init_orient=shared.clone(), init_transl=shared.clone())
    b = fit_map(PoseFit(prior, body, separate), steps=300, optimizer="joint-lbfgs")
    assert torch.allclose(a.pose, b.pose) and torch.allclose(a.transl, b.transl)
    fit = PoseFit(prior, body, obs)
    x = torch.cat([a.latent.reshape(3, -1), a.orient, a.transl], -1).requires_grad_(True)
    data = {"pose": x[:, :36].reshape(3, 12, 3), "orient": x[:, 36:39], "transl": x[:, 39:]}
    nlp = -pyro.poutine.trace(pyro.poutine.condition(fit.model, data=data)).get_trace().log_prob_sum()
    (grad,) = torch.autograd.grad(nlp, x)
    assert grad.norm(dim=-1).max() < 2.0, grad.norm(dim=-1)  # was 270-1100 (from ~1000 at the start)


def test_posterior_is_calibrated_where_nuts_is(zebra):
    """Truth drawn from the prior itself, observed through the likelihood: the exact posterior is
    then calibrated by construction. NUTS's 90% balls, the Laplace approximation's and the per-frame
    full-covariance guide's (started from Laplace, 200 SVI steps) must cover 90% +- 15 points of the
    true joint rotations. (Measured: mean-field AutoNormal covers only about 34% here: it
    underestimates the spread of the correlated joint chain.)"""
    skel, train, test, prior = zebra
    truth, body, obs = _zebra_case(prior, 24)
    post = fit_posterior(PoseFit(prior, body, obs, known_root=True), guide="mvn", steps=200, samples=300, map_steps=200)
    lap = fit_posterior(PoseFit(prior, body, obs, known_root=True), guide="laplace", samples=300, map_steps=200)
    cover_lap = lap.posterior.covers(truth).double().mean().item()
    cover_svi = post.posterior.covers(truth).double().mean().item()
    nuts = fit_nuts(
        PoseFit(prior, body, obs.select(slice(0, 2)), known_root=True), samples=80, warmup=80, max_tree_depth=5
    )
    cover_nuts = nuts.posterior.covers(truth[:2]).double().mean().item()
    assert abs(cover_nuts - 0.9) <= 0.15, cover_nuts
    assert abs(cover_svi - 0.9) <= 0.15, cover_svi
    assert abs(cover_lap - 0.9) <= 0.15, cover_lap
    assert (post.posterior.std_deg > 0).all()


def test_vae_prior_composes_through_its_latent(human):
    skel, train, test, priors, body = human
    vae = PoseVAE(skel, VAEOptions(hidden=32, z_dim=8))
    pts, _ = _observe(body, test[:3], seed=5, noise=0.01)
    obs = Joints3D(pts, torch.ones(pts.shape[:2], dtype=torch.bool), sigma=0.01)
    fit = PoseFit(vae, body, obs)
    assert fit.latent == "z"
    res = fit_map(fit, steps=100)
    assert res.latent.shape == (3, 8) and res.pose.shape == (3, 51, 3)
    assert torch.allclose(res.pose, vae.decode_mean(res.latent), atol=1e-6)
    assert res.losses[-1] < res.losses[0]


def test_bad_fits_are_clear_errors(human, zebra, tmp_path):
    skel, train, test, priors, body = human
    with pytest.raises(DataError, match=r"\(N >= 1, K, 3\)"):
        Joints3D(torch.zeros(2, 55, 2), torch.ones(2, 55, dtype=torch.bool))
    np.savez(tmp_path / "kp.npz", keypoints=np.zeros((2, 19, 2)))
    with pytest.raises(DataError, match="need a camera"):
        load_observations(tmp_path / "kp.npz")
    zebra_prior = zebra[3]
    obs = Joints3D(torch.zeros(2, 55, 3), torch.ones(2, 55, dtype=torch.bool))
    with pytest.raises(DataError, match="not joints of this body"):
        PoseFit(zebra_prior, SkeletonBody(SMPLX, SMPLX_REST_JOINTS, zebra_prior.modelled_names), obs)
    with pytest.raises(DataError, match="19 points"):
        PoseFit(zebra_prior, RigBody(ZEBRA_RIG), obs)
    with pytest.raises(DataError, match="base"):
        PoseFit(priors["gaussian_full"], body, obs, space="base")


def test_fit_command_smooths_sequences_by_default_and_on_request(human, tmp_path, capsys):
    """``probpose fit``: observations with ``sequence`` ids get the measured default weight, without
    ids frames stay independent unless ``--smooth`` (alone: the default weight; with a value: that
    value) asks; the report states the weight and the number of sequences."""
    from probpose.fitting.model import DEFAULT_SMOOTH

    skel, train, test, priors, body = human
    pts, _ = _observe(body, test[:6], seed=6, noise=0.01)
    np.savez(tmp_path / "seq.npz", joints=pts.numpy(), sequence=np.array([4, 4, 4, 7, 7, 7]))
    np.savez(tmp_path / "plain.npz", joints=pts.numpy())
    np.savez(tmp_path / "bad.npz", joints=pts.numpy(), sequence=np.array([0.5] * 6))
    ck = save_model(tmp_path / "prior.pt", priors["gaussian_full"])
    cases = [
        ("seq.npz", [], DEFAULT_SMOOTH, 2),
        ("plain.npz", [], 0.0, 1),
        ("plain.npz", ["--smooth"], DEFAULT_SMOOTH, 1),
        ("seq.npz", ["--smooth", "0"], 0.0, 2),
        ("seq.npz", ["--smooth", "0.05"], 0.05, 2),
    ]
    for i, (name, extra, weight, sequences) in enumerate(cases):
        out = tmp_path / f"f{i}.npz"
        args = ["fit", "--observations", str(tmp_path / name), "--prior", str(ck), "--out", str(out), "--steps", "40"]
        assert main(args + extra) == 0
        report = json.loads(out.with_suffix(".json").read_text())
        assert (report["smooth"], report["sequences"]) == (weight, sequences), (name, extra)
        assert f"temporal smoothness {weight:g}" in out.with_suffix(".md").read_text()
    args = ["fit", "--observations", str(tmp_path / "bad.npz"), "--prior", str(ck), "--out", str(tmp_path / "b.npz")]
    capsys.readouterr()
    assert main(args) == 1  # a data error: one line, no traceback, nothing written
    err = capsys.readouterr().err
    assert "sequence" in err and "integer" in err and "Traceback" not in err
    assert not (tmp_path / "b.npz").exists()


def test_fit_command(human, tmp_path, capsys):
    skel, train, test, priors, body = human
    pts, _ = _observe(body, test[:3], seed=6, noise=0.005)
    mask = np.ones(pts.shape[:2], dtype=bool)
    mask[:, 18] = False
    np.savez(tmp_path / "obs.npz", joints=pts.numpy(), mask=mask)
    ck = save_model(tmp_path / "prior.pt", priors["gaussian_full"])
    out = tmp_path / "fit.npz"
    assert (
        main(
            [
                "fit",
                "--observations",
                str(tmp_path / "obs.npz"),
                "--prior",
                str(ck),
                "--out",
                str(out),
                "--steps",
                "200",
            ]
        )
        == 0
    )
    got = np.load(out)
    assert got["pose"].shape == (3, 51, 3) and got["residual"].shape == (3,)
    assert got["residual"].mean() < 0.02
    report = json.loads((tmp_path / "fit.json").read_text())
    assert report["kind"] == "3d" and len(report["residual"]) == 3
    none = str(tmp_path / "none.npz")
    assert (
        main(
            [
                "fit",
                "--observations",
                str(tmp_path / "obs.npz"),
                "--prior",
                "none",
                "--out",
                none,
                "--inference",
                "posterior",
                "--steps",
                "60",
                "--samples",
                "50",
            ]
        )
        == 0
    )
    assert np.load(tmp_path / "none.npz")["std_deg"].shape == (3, 51)
    capsys.readouterr()
    np.savez(tmp_path / "bad.npz", joints=np.zeros((3, 19, 3)))
    assert (
        main(["fit", "--observations", str(tmp_path / "bad.npz"), "--prior", str(ck), "--out", str(tmp_path / "x.npz")])
        == 1
    )
    err = capsys.readouterr().err
    assert "19 points" in err and "Traceback" not in err
    assert not (tmp_path / "x.npz").exists()
    truth_err = geodesic_error_deg(torch.from_numpy(got["pose"]), test[:3])
    assert truth_err.shape == (3, 51)


def test_one_parameterisation_object_per_kind_of_prior(zebra):
    """pose_latent is the one place that looks at the prior's kind; each object's pose_of inverts
    nothing it should not (the identity in pose space, the flow in base space, the decoder for z)."""
    from probpose.errors import DataError
    from probpose.fitting.latents import BasePose, FlatPose, PriorPose, VAELatent, pose_latent

    skel, train, _, gaussian = zebra
    flow = build_model("global_flow", skel).double()
    vae = PoseVAE(skel, VAEOptions(z_dim=4)).double()
    assert isinstance(pose_latent(None, "pose", 12, torch.float64), FlatPose)
    assert isinstance(pose_latent(gaussian, "pose", 12, torch.float64), PriorPose)
    base = pose_latent(flow, "base", 12, torch.float64)
    assert isinstance(base, BasePose) and base.name == "pose_base" and base.shape == (12, 3)
    z = pose_latent(vae, "pose", 12, torch.float64)
    assert isinstance(z, VAELatent) and z.name == "z" and z.shape == (4,) and z.start(3).shape == (3, 4)
    with torch.no_grad():
        noise = torch.randn(5, 12, 3, dtype=torch.float64)
        assert torch.allclose(base.pose_of(noise), flow().transforms[0](noise))
        assert torch.equal(pose_latent(gaussian, "pose", 12, torch.float64).pose_of(noise), noise)
    for prior in (gaussian, vae):
        with pytest.raises(DataError, match="'base' needs a flow prior"):
            pose_latent(prior, "base", 12, torch.float64)


def test_a_laplace_posterior_spends_the_steps_it_is_given_on_its_map(human, tmp_path, monkeypatch):
    """Issue 37: ``--inference posterior --guide laplace --steps 5`` ran 300 MAP iterations (the
    Laplace guide has no SVI, so its steps are the MAP's)."""
    import probpose.fitting.guides as guides

    skel, train, test, priors, body = human
    pts, _ = _observe(body, test[:2], seed=6, noise=0.005)
    np.savez(tmp_path / "obs.npz", joints=pts.numpy())
    ck = save_model(tmp_path / "prior.pt", priors["gaussian_full"])
    asked: list[int] = []
    real = guides.fit_map

    def counting(fit, steps, **kw):
        asked.append(steps)
        return real(fit, steps=steps, **kw)

    monkeypatch.setattr(guides, "fit_map", counting)
    args = ["fit", "--observations", str(tmp_path / "obs.npz"), "--prior", str(ck), "--out", str(tmp_path / "f.npz"),
            "--inference", "posterior", "--guide", "laplace", "--steps", "5", "--samples", "10"]  # fmt: skip
    assert main(args) == 0
    assert asked == [5]


def _acceleration_factor(body, pose, orient, transl, sequence, weight):
    """The smoothness factor written out: -w/2 sum |p(t+1) - 2 p(t) + p(t-1)|^2 (mm) within sequences."""
    p = 1000 * body.points(pose, orient, transl)
    total = 0.0
    for t in range(1, len(p) - 1):
        if sequence[t - 1] == sequence[t] == sequence[t + 1]:
            total = total - 0.5 * weight * (p[t + 1] - 2 * p[t] + p[t - 1]).square().sum()
    return total


def _smooth_site(fit, values):
    tr = pyro.poutine.trace(pyro.poutine.condition(fit.model, values)).get_trace()
    tr.compute_log_prob()
    return tr.nodes["smooth"]["log_prob"].item()


def test_smoothness_factor_is_the_points_acceleration_within_sequences(human):
    """The model's ``smooth`` site is ``-w/2 sum |acceleration|^2`` of every body point (mm/frame^2),
    over consecutive frames of one sequence only: a change of ``sequence`` id drops the triples
    that straddle it."""
    skel, train, test, priors, body = human
    truth = test[:7].double()
    g = torch.Generator().manual_seed(4)
    orient = 0.1 * torch.randn(7, 3, generator=g, dtype=torch.float64)
    transl = 0.01 * torch.randn(7, 3, generator=g, dtype=torch.float64)
    pts = body.points(truth, orient, transl)
    values = {"pose": truth.float(), "orient": orient.float(), "transl": transl.float()}
    for sequence in (None, torch.tensor([0, 0, 0, 0, 1, 1, 1]), torch.tensor([3, 3, 5, 5, 5, 5, 9])):
        obs = Joints3D(pts, torch.ones(pts.shape[:2], dtype=torch.bool), sequence=sequence)
        fit = PoseFit(priors["gaussian_full"], body, obs, smooth=0.2)
        ids = sequence if sequence is not None else torch.zeros(7, dtype=torch.long)
        want = _acceleration_factor(body, truth, orient, transl, ids, 0.2)
        assert _smooth_site(fit, values) == pytest.approx(float(want), rel=1e-4)
    alone = Joints3D(pts, torch.ones(pts.shape[:2], dtype=torch.bool), sequence=torch.arange(7))
    assert _smooth_site(PoseFit(priors["gaussian_full"], body, alone, smooth=0.2), values) == 0.0  # no triple
    for bad in (torch.zeros(6, dtype=torch.long), torch.tensor([0.5] * 7), torch.ones(7, dtype=torch.bool)):
        with pytest.raises(DataError, match="sequence"):
            Joints3D(pts, torch.ones(pts.shape[:2], dtype=torch.bool), sequence=bad)


def test_smoothness_lowers_error_and_jitter_on_a_noisy_held_out_sequence(human):
    """Real held-out motion (the bundled SMPL-X test split's first two segments, 6 consecutive
    frames each) seen through 3 cm of noise: the smoothed MAP (default weight) is nearer the truth
    and jitters less than each frame alone, and its jitter is nearer the truth's (the two segments
    are two sequences; the factor's boundary is tested above). benchmarks/smoothness.py measures
    it on CMU trials."""
    from probpose.fitting.model import DEFAULT_SMOOTH

    skel, train, test, priors, body = human
    truth = test[:12].double()  # frames 252-257 and 402-407 of the bundled recordings
    g = torch.Generator().manual_seed(5)
    orient = (0.2 * torch.randn(1, 3, generator=g, dtype=torch.float64)).expand(12, 3)
    transl = torch.randn(1, 3, generator=g, dtype=torch.float64).expand(12, 3)
    pts = body.points(truth, orient, transl)
    noisy = pts + 0.03 * torch.randn(pts.shape, generator=g, dtype=torch.float64)
    seq = torch.tensor([0] * 6 + [1] * 6)
    mask = torch.ones(pts.shape[:2], dtype=torch.bool)

    def acc(p):
        a = 1000 * (p[2:] - 2 * p[1:-1] + p[:-2]).norm(dim=-1)
        return a[(seq[2:] == seq[:-2])].mean()

    res = {}
    for w in (0.0, DEFAULT_SMOOTH):
        r = fit_map(PoseFit(priors["gaussian_full"], body, Joints3D(noisy, mask, sigma=0.03, sequence=seq), smooth=w),
                    steps=200)  # fmt: skip
        res[w] = (1000 * (r.points.double() - pts).norm(dim=-1).mean(), acc(r.points.double()), r)
    (e0, j0, _), (e1, j1, _) = res[0.0], res[DEFAULT_SMOOTH]
    assert e1 < 0.9 * e0 and j1 < 0.5 * j0, (e0, e1, j0, j1)
    assert abs(j1 - acc(pts)) < abs(j0 - acc(pts))
