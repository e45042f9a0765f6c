"""The trainer, configs and overrides, checkpoints, the constant-dimension refusal, and bench."""

import json
import math
from pathlib import Path

import pytest
import torch
import yaml

import probpose
from probpose.cli import main
from probpose.data import check_not_constant
from probpose.errors import ConstantDimensionError
from probpose.models import PerJointGaussianModel, load_model
from probpose.models.io import read_checkpoint
from probpose.skeleton import SMPLX
from probpose.training import ConfigError, Trainer, TrainingConfig, TrainingError
from probpose.training.config import apply_overrides, config_from_dict, config_to_dict, load_config, parse_override
from probpose.training.run import run_experiment

SKEL = SMPLX.select(["left_hip", "left_knee", "left_ankle"])


def poses(n=600, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 3, generator=g) * torch.tensor([0.2, 0.3, 0.1]) + 0.1


# ---------------------------------------------------------------------- config and overrides
def test_override_parsing_types_and_nesting():
    assert parse_override("training.lr=5e-3") == (["training", "lr"], 0.005)
    assert parse_override("training.max_steps=100") == (["training", "max_steps"], 100)
    assert parse_override("training.clip_norm=null") == (["training", "clip_norm"], None)
    assert parse_override("output.tensorboard=false") == (["output", "tensorboard"], False)
    assert parse_override("data.joints=body+hands") == (["data", "joints"], "body+hands")
    cfg = config_from_dict(
        apply_overrides(
            {"model": {"name": "gaussian"}},
            [
                "training.lr=5e-3",
                "training.max_steps=7",
                "model.covariance=diag",
                "data.split=70/20/10",
                "training.clip_norm=null",
            ],
        )
    )
    assert cfg.training.lr == 0.005 and isinstance(cfg.training.lr, float)
    assert cfg.training.max_steps == 7 and cfg.model.options.covariance == "diag"
    assert cfg.data.split == "70/20/10" and cfg.training.clip_norm is None
    # an int where a float is expected is converted; the reverse is an error
    assert config_from_dict({"training": {"lr": 1}}).training.lr == 1.0
    with pytest.raises(ConfigError, match="expected an integer"):
        config_from_dict({"training": {"max_steps": 1.5}})
    with pytest.raises(ConfigError, match="expected a number"):
        config_from_dict({"training": {"lr": "fast"}})
    with pytest.raises(ConfigError, match="not one of 'adam', 'clipped_adam'"):
        config_from_dict({"training": {"optimizer": "sgd"}})
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_override("training.lr")


def test_unknown_keys_list_the_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown key 'training.lrr'.*valid keys: fit, optimizer, lr"):
        config_from_dict(apply_overrides({}, ["training.lrr=1"]))
    with pytest.raises(ConfigError, match=r"unknown key 'model.width'.*valid keys: name, covariance, init_scale"):
        config_from_dict({"model": {"name": "gaussian", "width": 3}})
    with pytest.raises(ConfigError, match=r"unknown key 'trainin'.*valid keys: name, data, model"):
        config_from_dict({"trainin": {}})
    with pytest.raises(ConfigError, match="unknown model 'flowz'; registered: gaussian, gaussian_diag, gaussian_full"):
        config_from_dict({"model": {"name": "flowz"}})


def test_shipped_config_loads_and_round_trips():
    cfg = load_config("gaussian_prior", ["training.lr=5e-3"])
    assert cfg.name == "gaussian_prior" and cfg.training.lr == 0.005
    assert config_from_dict(config_to_dict(cfg)) == cfg
    with pytest.raises(ConfigError, match="no config 'nope'"):
        load_config("nope")


# ---------------------------------------------------------------------- constant dimensions
def test_constant_dimensions_are_refused_naming_the_joint():
    x = poses()
    x[:, 1, 2] = 0.0  # left_knee z constant
    with pytest.raises(ConstantDimensionError, match=r"left_knee \(z\)"):
        check_not_constant(x, SKEL.joint_names)
    with pytest.raises(ConstantDimensionError, match="left_knee"):
        Trainer(PerJointGaussianModel(SKEL), TrainingConfig(fit="closed_form")).fit(x)
    x[:, 1, 2] = 1e-9 * torch.randn(len(x))  # nearly constant is refused too
    with pytest.raises(ConstantDimensionError):
        check_not_constant(x, SKEL.joint_names)


# ---------------------------------------------------------------------- trainer
def test_trainer_writes_events_and_checkpoint_that_reloads(tmp_path):
    cfg = config_from_dict(
        {"name": "t", "model": {"name": "gaussian"}, "training": {"max_steps": 60, "eval_every": 20, "lr": 0.05}}
    )
    model = PerJointGaussianModel(SKEL)
    trainer = Trainer(model, cfg.training, tmp_path, config_to_dict(cfg), checkpoint_every=20)
    result = trainer.fit(poses(), poses(100, seed=1))
    assert result.steps == 60 and result.checkpoint == tmp_path / "checkpoint.pt"
    events = list(tmp_path.rglob("events.out.tfevents.*"))
    assert events
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"train/loss", "val/nll", "val/bpd"} <= set(tags)
    assert len(acc.Scalars("train/loss")) == 60 and len(acc.Scalars("val/nll")) == 3
    ck = read_checkpoint(tmp_path / "checkpoint.pt")  # weights_only=True
    assert {"model", "optimiser", "step", "config"} <= set(ck) and ck["step"] == 60
    reloaded = load_model(tmp_path / "checkpoint.pt")
    x = poses(50, seed=3)
    assert torch.equal(reloaded.log_prob(x), model.log_prob(x))


def test_early_stopping_keeps_best_weights_and_resume_continues(tmp_path):
    train, val = poses(), poses(100, seed=1) + 1.0  # val is shifted: it gets worse as train fits
    cfg = TrainingConfig(lr=0.05, max_steps=2000, eval_every=10, patience=3, seed=1)
    model = PerJointGaussianModel(SKEL)
    result = Trainer(model, cfg).fit(train, val)
    assert result.steps < 2000 and "early stop" in result.stopped
    assert math.isclose(result.val.nll, min(h["val_nll"] for h in result.history), rel_tol=1e-6)
    # resume: 30 steps, then continue to 60 from the checkpoint
    cfg = TrainingConfig(lr=0.05, max_steps=30, eval_every=10, patience=0)
    Trainer(PerJointGaussianModel(SKEL), cfg, tmp_path, tensorboard=False, checkpoint_every=10).fit(train, val)
    cfg60 = TrainingConfig(lr=0.05, max_steps=60, eval_every=10, patience=0)
    t = Trainer(PerJointGaussianModel(SKEL), cfg60, tmp_path, tensorboard=False, checkpoint_every=10)
    r = t.fit(train, val, resume=tmp_path / "checkpoint.pt")
    assert r.steps == 60 and len(r.history) == 3  # only the steps after 30 were run


@pytest.mark.parametrize("schedule", ["step", "cosine", "plateau"])
@pytest.mark.parametrize("optimizer", ["adam", "clipped_adam"])
def test_optimisers_and_schedules_reduce_the_loss(schedule, optimizer):
    cfg = TrainingConfig(
        lr=0.05, max_steps=200, eval_every=20, patience=0, schedule=schedule, optimizer=optimizer, step_size=50
    )
    model = PerJointGaussianModel(SKEL)
    x = poses()
    before = -model.log_prob(x).mean().item()
    Trainer(model, cfg).fit(x, x[:100])
    assert -model.log_prob(x).mean().item() < before - 1.0


def test_nan_loss_stops_with_a_clear_message():
    x = poses()
    x[0, 0, 0] = 1e30  # overflows float32: the loss of a batch holding it is inf
    cfg = TrainingConfig(lr=0.05, max_steps=50, batch_size=600, eval_every=10, patience=0)
    with pytest.raises(TrainingError, match=r"loss is (inf|nan) at step 0.*training.lr"):
        Trainer(PerJointGaussianModel(SKEL), cfg).fit(x)


def test_bad_training_settings_are_errors():
    with pytest.raises(ConfigError, match=r"`lr`: 0.0 is outside the valid range \(0, inf\)"):
        TrainingConfig(lr=0.0)  # checked when built, before any trainer
    config = TrainingConfig()
    config.lr = 0.0  # changed after it was built: the trainer checks again
    with pytest.raises(ConfigError, match=r"training.lr: 0.0 is outside the valid range \(0, inf\)"):
        Trainer(PerJointGaussianModel(SKEL), config)
    with pytest.raises(TrainingError, match="no closed-form"):
        from probpose.models import PriorModel

        class NoClosedForm(PriorModel):
            def forward(self, context=None):
                raise NotImplementedError

        Trainer(NoClosedForm(SKEL), TrainingConfig(fit="closed_form"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on machines without CUDA")
@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_request_without_cuda_is_an_error():
    with pytest.raises(ConfigError, match="training.device: cuda asked for, but this machine has no usable CUDA"):
        Trainer(PerJointGaussianModel(SKEL), TrainingConfig(device="cuda"))


def test_train_cli_and_script_agree(tmp_path, capsys):
    overrides = [
        "--override",
        f"output.dir={tmp_path}",
        "--override",
        "training.max_steps=40",
        "--override",
        "training.eval_every=20",
    ]
    assert main(["train", "--config", "gaussian_prior", *overrides, "--override", "name=a"]) == 0
    out = capsys.readouterr().out
    assert "test: NLL" in out and "D = 147" in out
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "experiments/train.py", "--config", "gaussian_prior", *overrides, "--override", "name=b"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    ma = json.loads((tmp_path / "a" / "metrics.json").read_text())
    mb = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert ma["test"] == mb["test"]  # same config, same seed: the same result
    saved = yaml.safe_load((tmp_path / "a" / "config.yaml").read_text())
    assert saved["training"]["max_steps"] == 40
    assert main(["train", "--config", "gaussian_prior", "--override", "training.bogus=1"]) == 1
    assert "valid keys" in capsys.readouterr().err


def test_run_experiment_closed_form(tmp_path):
    cfg = config_from_dict(
        {
            "name": "cf",
            "data": {"joints": "body+hands-feet"},
            "training": {"fit": "closed_form"},
            "output": {"dir": str(tmp_path), "tensorboard": False},
        }
    )
    s = run_experiment(cfg)
    assert s.test is not None and s.test.dim == 147 and math.isfinite(s.test.nll)
    assert s.test.nll_haar < s.test.nll  # the Haar correction is negative everywhere
    assert any("aistpp" in n for n in s.data.notes)


# ---------------------------------------------------------------------- bench
def test_bench_end_to_end_on_a_small_store(tmp_path, zebra_files, capsys):
    store = tmp_path / "z.h5"
    assert main(["import", str(zebra_files["test_poses_refine.npz"]), "--out", str(store)]) == 0
    out = tmp_path / "bench"
    models = ["gaussian", "gaussian_full", "joint_flow"]
    args = ["--data", str(store), "--out", str(out), "--batch", "256", "--max-steps", "30", "--models", *models]
    assert main(["bench", *args]) == 0
    text = capsys.readouterr().out
    assert "| gaussian |" in text and "| gaussian_full |" in text and "| joint_flow |" in text
    assert "torch thread(s)" in text
    res = json.loads((out / "bench.json").read_text())
    cols = {"model", "parameters", "steps", "fit_seconds", "test_nll", "bpd", "nll_haar", "logprob_per_s",
            "logprob_backward_per_s", "sample_per_s", "device", "n_test", "checkpoint"}  # fmt: skip
    assert [r["model"] for r in res["rows"]] == models
    assert res["rows"][2]["steps"] <= 30 and res["threads"] >= 1  # the step cap holds
    for row in res["rows"]:
        assert cols <= set(row)
        assert row["dim"] == 36 and row["n_test"] == 25 and row["logprob_per_s"] > 0
        assert math.isclose(row["bpd"], row["test_nll"] / (36 * math.log(2)), rel_tol=1e-9)
        back = load_model(row["checkpoint"])  # every fitted model is saved and reloads
        assert back.registry_name == row["model"]
    assert res["machine"]["cpu_count"] and res["machine"]["torch"] == torch.__version__
    assert (out / "bench.md").read_text().startswith("# probpose bench")


def test_bench_with_the_same_seed_gives_identical_numbers(tmp_path, zebra_files):
    """Identical NLLs and steps run after run, whatever --threads (the speed columns' thread count)
    says: fits and scores run on --fit-threads (default 1), so a machine's core count and load do
    not move the numbers. A different fit thread count changes the float reductions: it may move
    SVI rows (by as much as another CPU would) but not closed-form ones beyond float noise."""
    store = tmp_path / "z.h5"
    assert main(["import", str(zebra_files["test_poses_refine.npz"]), "--out", str(store)]) == 0
    runs = []
    for k, extra in enumerate((["--threads", "1"], ["--threads", "2"], ["--threads", "1", "--fit-threads", "2"])):
        out = tmp_path / f"b{k}"
        args = [
            "--data",
            str(store),
            "--out",
            str(out),
            "--max-steps",
            "25",
            "--batch",
            "64",
            "--models",
            "gmm",
            "global_flow",
            "joint_flow",
            "vae",
            *extra,
        ]
        assert main(["bench", *args]) == 0
        res = json.loads((out / "bench.json").read_text())
        runs.append({r["model"]: (r["test_nll"], r["steps"]) for r in res["rows"]})
        assert res["fit_threads"] == (2 if "--fit-threads" in extra else 1)
    assert runs[0] == runs[1]
    assert math.isclose(runs[2]["gmm"][0], runs[0]["gmm"][0], rel_tol=1e-6)
    args = [
        "--data",
        str(store),
        "--out",
        str(tmp_path / "b2"),
        "--max-steps",
        "25",
        "--batch",
        "64",
        "--models",
        "global_flow",
        "--threads",
        "1",
        "--seed",
        "1",
    ]
    assert main(["bench", *args]) == 0
    other = json.loads((tmp_path / "b2" / "bench.json").read_text())["rows"][0]["test_nll"]
    assert other != runs[0]["global_flow"][0]  # the seed matters


def test_sample_command_for_a_prior(tmp_path, capsys):
    import numpy as np

    cfg = config_from_dict(
        {
            "name": "s",
            "data": {"joints": "body+hands-feet"},
            "training": {"fit": "closed_form"},
            "output": {"dir": str(tmp_path), "tensorboard": False},
        }
    )
    run_experiment(cfg)
    out = tmp_path / "poses.npy"
    assert main(["sample", "--model", str(tmp_path / "s" / "checkpoint.pt"), "--n", "25", "--out", str(out)]) == 0
    assert np.load(out).shape == (25, 49, 3)
    assert main(["sample", "--model", str(tmp_path / "s" / "checkpoint.pt"), "--sequence", "--out", str(out)]) == 1
    assert "needs a VAE" in capsys.readouterr().err


def test_configs_are_found_by_name_from_any_folder_and_a_projects_own_wins(tmp_path, monkeypatch):
    """The configs ship inside the package (a wheel has them); experiments/configs/ under the
    current folder overrides a name."""
    from probpose.training.config import CONFIGS, find_config

    monkeypatch.chdir(tmp_path)
    found = find_config("joint_flow")
    assert found == CONFIGS / "joint_flow.yaml" and found.is_file()
    assert found.is_relative_to(Path(probpose.__file__).parent)
    own = tmp_path / "experiments" / "configs" / "joint_flow.yaml"
    own.parent.mkdir(parents=True)
    own.write_text(found.read_text())
    assert find_config("joint_flow") == tmp_path / "experiments" / "configs" / "joint_flow.yaml"
    with pytest.raises(ConfigError, match="shipped name .*gmm.*joint_flow"):
        find_config("no_such_config")
