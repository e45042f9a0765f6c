"""The pretrained priors shipped in the package (trained on the bundled CMU body data by
experiments/train_pretrained.py): safe loading, their model cards, and the held-out NLL the cards state."""

import json
from pathlib import Path

import numpy as np
import pyro
import pytest
import torch

from probpose.cli import main
from probpose.data import prepare_data
from probpose.data.dofs import principal_spread_degrees
from probpose.evaluation import evaluate
from probpose.models import LatentPoseModel, load_model, pretrained

SHIPPED = pretrained()
ROOT = Path(__file__).resolve().parents[1]
CHANGELOG = (ROOT / "CHANGELOG.md").read_text()
EXPECTED = {"cmu/gaussian_full", "cmu/gmm", "cmu/global_flow_spline", "cmu/joint_flow", "cmu/vae"}


def test_the_five_cmu_priors_are_shipped_with_cards():
    assert EXPECTED <= set(SHIPPED)
    for name, path in SHIPPED.items():
        card = json.loads(path.with_suffix(".json").read_text())
        assert card["name"] == name and "mocap.cs.cmu.edu" in card["acknowledgement"]
        assert card["split"]["rule"].startswith("test: whole subjects") and card["split"]["test"] > 0
        assert len(card["joint_names"]) == 21 and card["dim"] == 63  # the whole SMPL-X body, collars included
        assert card["training"]["seconds"] > 0 and card["machine"]["cpu"]
        # the package version it was made with: one the changelog lists, and the one its data line names
        version = card["probpose_version"]
        assert f"## {version}" in CHANGELOG and f"(probpose {version})" in card["data"]


def test_the_docs_list_every_shipped_card_with_its_version_and_numbers():
    page = (ROOT / "docs" / "data.md").read_text()
    for name, path in SHIPPED.items():
        card = json.loads(path.with_suffix(".json").read_text())
        row = f"| `{name}` | {card['probpose_version']} | {card['split']['train']:,} | {card['held_out']['nll']:.2f} |"
        assert row in page, f"docs/data.md lacks the row {row}"


@pytest.fixture(scope="module")
def cmu_test(tmp_path_factory):
    data = prepare_data(bundled="cmu", workdir=tmp_path_factory.mktemp("cmu"))
    return data


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_shipped_checkpoint_loads_safely_and_reproduces_its_cards_nll(name, cmu_test):
    path = SHIPPED[name]
    ck = torch.load(path, weights_only=True)  # tensors and plain containers only
    card = ck["card"]
    assert card == json.loads(path.with_suffix(".json").read_text())
    model = load_model(name)
    assert model.registry_name == card["model"] and model.modelled_names == card["joint_names"]
    assert cmu_test.joints == card["joints"] and len(cmu_test.test) == card["split"]["test"]
    model.eval()
    with torch.random.fork_rng():
        torch.manual_seed(card["held_out"]["seed"])
        ev = evaluate(model, cmu_test.test)
    assert ev.nll == pytest.approx(card["held_out"]["nll"], abs=1e-6)
    assert ev.exact == card["held_out"]["exact"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_shipped_prior_spreads_every_dof_of_every_joint(name):
    """A prior for SMPL-X puts density on all three dofs of every joint it models: the smallest
    principal standard deviation of 10,000 samples at each joint is at least 2 degrees (the raw
    CMU retarget gave knees 0.01 and feet 0.05: a density on a curve). A VAE's density is its
    marginal ``p(x) = E_z p(x | z)``: its samples are drawn from ``p(x | z)`` (``generate``), not
    the decoder means ``sample`` returns."""
    model = load_model(name)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        if isinstance(model, LatentPoseModel):
            with pyro.plate("poses", 10_000):
                x = model.generate().detach().double().numpy()  # (10000, 21, 3) radians
        else:
            x = model.sample(10_000).double().numpy()
    spread = principal_spread_degrees(x)  # (21, 3), largest first
    smallest = dict(zip(model.modelled_names, spread[:, 2].round(2), strict=True))
    assert spread[:, 2].min() >= 2.0, smallest


def test_commands_take_a_shipped_priors_name(tmp_path, capsys):
    out = tmp_path / "s.npy"
    assert main(["sample", "--model", "cmu/joint_flow", "--n", "5", "--out", str(out)]) == 0
    assert np.load(out).shape == (5, 21, 3)
    with pytest.raises(Exception, match="no such file"):
        load_model("cmu/no_such_prior")


def test_a_loaded_model_is_frozen_in_eval_mode_unless_asked(tmp_path):
    """A prior inside a user's SVI costs no gradients: eval mode, no parameter requiring grad;
    ``trainable=True`` gives the trainable module. A global flow without ActNorm (its state dict
    starts with a bool mask) loads in its floating-point dtype."""
    from probpose.models import build_model, save_model
    from probpose.skeleton import ZEBRA_LEGS

    frozen = load_model("cmu/joint_flow")
    assert not frozen.training and not any(p.requires_grad for p in frozen.parameters())
    assert (
        frozen.num_parameters() == json.loads(SHIPPED["cmu/joint_flow"].with_suffix(".json").read_text())["parameters"]
    )
    live = load_model("cmu/joint_flow", trainable=True)
    assert live.training and all(p.requires_grad for p in live.parameters())
    for dtype in (torch.float32, torch.float64):
        model = build_model("global_flow", ZEBRA_LEGS, {"use_actnorm": False}).to(dtype)
        assert not next(iter(model.state_dict().values())).is_floating_point()
        back = load_model(save_model(tmp_path / "g.pt", model))
        assert next(back.parameters()).dtype == dtype
