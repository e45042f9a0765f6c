"""VAEs: bounds against an exactly known marginal, the normalised SO(3) likelihood, training on
real data, loss weights, smooth sequences, checkpoints and the sample command."""

import math

import numpy as np
import pyro
import pytest
import torch

from probpose.cli import main
from probpose.data import bundled, import_recording, load_pasyn, split_poses
from probpose.models import PoseVAE, VAEOptions, load_model
from probpose.rotations import axis_angle_to_matrix, geodesic_distance
from probpose.skeleton import Skeleton
from probpose.training import Trainer, TrainingConfig

F64 = torch.float64
PAIR = Skeleton("pair", ("a", "b"), (-1, 0))


# ---------------------------------------------------------------------- bounds vs exact marginal
def test_linear_gaussian_vae_bounds_against_exact_marginal():
    """Linear decoder x = W z + b + N(0, diag s^2): p(x) = N(b, W W^T + diag s^2) exactly."""
    torch.manual_seed(0)
    m = PoseVAE(PAIR, VAEOptions(z_dim=3, layers=0, init_scale=0.3)).double()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.3 * torch.randn_like(p))
    lin = m.decoder[0]
    cov = lin.weight @ lin.weight.T + torch.diag(m.log_scale.exp() ** 2)
    marginal = torch.distributions.MultivariateNormal(lin.bias, covariance_matrix=cov)
    x = marginal.sample((200,)).reshape(200, 2, 3)
    exact = marginal.log_prob(x.reshape(200, 6)).mean().item()
    with torch.no_grad():
        elbo = m.elbo(x, samples=2000).mean().item()
        iwae = {k: m.iwae(x, k).mean().item() for k in (10, 100, 1000)}
    # as NLL upper bounds: exact NLL <= IWAE NLL <= ELBO NLL, and IWAE tightens with K
    assert elbo <= iwae[10] + 0.02 <= iwae[100] + 0.04 <= iwae[1000] + 0.06
    assert iwae[1000] <= exact + 0.02
    assert exact - iwae[1000] < 0.25 * (exact - elbo)
    assert exact - elbo > 0.1  # the bounds are not trivially tight here


# ---------------------------------------------------------------------- training on real data
@pytest.fixture(scope="module")
def zebra_split():
    poses, _ = import_recording(bundled("zebra"))
    sp = split_poses(poses)
    return (
        poses.skeleton,
        torch.from_numpy(poses.poses[sp.indices["train"]]),
        torch.from_numpy(poses.poses[sp.indices["test"]]),
    )


@pytest.mark.parametrize("kind", ["standard", "so3"])
def test_elbo_improves_on_real_zebra_legs(zebra_split, kind):
    skel, train, test = zebra_split
    m = PoseVAE(skel, VAEOptions(type=kind, hidden=64, val_iwae_k=4))
    torch.manual_seed(0)
    with torch.no_grad():
        before = m.elbo(test, 10).mean().item()
    Trainer(m, TrainingConfig(lr=2e-3, max_steps=150, eval_every=50, patience=0)).fit(train, test[:64])
    with torch.no_grad():
        after = m.elbo(test, 10).mean().item()
    assert after > before + 100


def test_loss_weights_act_as_named_and_anneal(zebra_split):
    skel, train, _ = zebra_split
    m = PoseVAE(skel, VAEOptions(kl_weight=0.25, rec_weight=4.0, kl_anneal_steps=100))
    m.set_step(49)
    tr = pyro.poutine.trace(m.model).get_trace(train[:8])
    assert math.isclose(tr.nodes["z"]["scale"], 0.25 * 0.5) and tr.nodes["pose"]["scale"] == 4.0
    m.set_step(1000)
    tg = pyro.poutine.trace(m.guide).get_trace(train[:8])
    assert tg.nodes["z"]["scale"] == 0.25


def test_mirroring_preserves_densities():
    torch.manual_seed(0)
    a = PoseVAE(PAIR, VAEOptions(z_dim=2, hidden=16))
    b = PoseVAE(PAIR, VAEOptions(z_dim=2, hidden=16, mirror=True))
    b.load_state_dict(a.state_dict())
    x = 0.3 * torch.randn(5, 2, 3)
    torch.manual_seed(1)
    la = a.iwae(x, 50)
    torch.manual_seed(1)
    lb = b.iwae(x * torch.tensor([1.0, -1.0, -1.0]), 50)
    assert torch.allclose(la, lb, atol=1e-5)


def test_sequences_are_smooth_and_checkpoints_round_trip(tmp_path, zebra_split):
    skel, train, test = zebra_split
    from probpose.training.config import config_from_dict, config_to_dict

    cfg = config_from_dict({"name": "leg", "model": {"name": "vae", "hidden": 64, "val_iwae_k": 4},
                            "training": {"max_steps": 200, "eval_every": 100, "lr": 2e-3}})  # fmt: skip
    m = PoseVAE(skel, cfg.model.options)
    Trainer(m, cfg.training, tmp_path, config_to_dict(cfg), tensorboard=False).fit(train, test[:64])
    back = load_model(tmp_path / "checkpoint.pt")
    z = torch.randn(7, 24)
    assert torch.equal(back.decode_mean(z), m.decode_mean(z))
    torch.manual_seed(3)
    a = m.log_prob(test[:20])
    torch.manual_seed(3)
    assert torch.equal(back.log_prob(test[:20]), a)
    seq = m.sequence(200, step=0.05, generator=torch.Generator().manual_seed(0))
    rots = axis_angle_to_matrix(seq.double())
    step = geodesic_distance(rots[1:], rots[:-1]).mean()
    rand = m.sample(400).double()
    r = axis_angle_to_matrix(rand)
    pair = geodesic_distance(r[:200], r[200:]).mean()
    assert step < 0.2 * pair, (step.item(), pair.item())
    slerp = m.sequence(100, step=0.05, mode="slerp", generator=torch.Generator().manual_seed(0))
    rs = axis_angle_to_matrix(slerp.double())
    assert geodesic_distance(rs[1:], rs[:-1]).mean() < 0.2 * pair


def test_sample_command_with_sequence_and_pasyn(tmp_path, zebra_split, capsys):
    skel, train, test = zebra_split
    from probpose.training.config import config_from_dict, config_to_dict

    cfg = config_from_dict({"name": "leg", "model": {"name": "vae", "hidden": 32, "val_iwae_k": 2},
                            "training": {"max_steps": 20, "eval_every": 10}})  # fmt: skip
    Trainer(PoseVAE(skel, cfg.model.options), cfg.training, tmp_path, config_to_dict(cfg), tensorboard=False).fit(
        train, test[:32]
    )
    out = tmp_path / "legs.npy"
    ck = str(tmp_path / "checkpoint.pt")
    assert main(["sample", "--model", ck, "--n", "50", "--sequence", "--pasyn", "--out", str(out)]) == 0
    poses = np.load(out)
    assert poses.shape == (50, 12, 3) and poses.dtype == np.float32
    pasyn = np.load(tmp_path / "legs_pasyn.npy")
    assert pasyn.shape == (50, 36)
    # the PASyn file reads back (degrees, R = Rz Ry Rx) as the same rotations
    np.savez(tmp_path / "back.npz", poses=pasyn)
    back = load_pasyn(tmp_path / "back.npz").poses
    diff = geodesic_distance(
        axis_angle_to_matrix(torch.from_numpy(back).double()), axis_angle_to_matrix(torch.from_numpy(poses).double())
    )
    assert diff.max() < 1e-4
    assert main(["sample", "--model", ck, "--n", "10", "--out", str(tmp_path / "p.npy")]) == 0
    assert np.load(tmp_path / "p.npy").shape == (10, 12, 3)


@pytest.mark.parametrize("config, kind", [("hand_vae", "standard"), ("hand_vae", "so3"), ("leg_vae", "standard")])
def test_shipped_vae_configs_train_end_to_end(tmp_path, config, kind):
    from probpose.training.config import load_config
    from probpose.training.run import run_experiment

    cfg = load_config(
        config,
        [
            f"output.dir={tmp_path}",
            "training.max_steps=30",
            "training.eval_every=10",
            f"model.type={kind}",
            "model.iwae_k=20",
            "model.hidden=32",
        ],
    )
    s = run_experiment(cfg)
    assert s.test is not None and not s.test.exact and math.isfinite(s.test.nll)
    assert s.test.dim == (45 if config == "hand_vae" else 36)
    assert (tmp_path / cfg.name / "checkpoint.pt").is_file()
