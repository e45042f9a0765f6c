"""``probpose evaluate`` and its Python API; training streamed from disk."""

import json
import math

import numpy as np
import pytest
import torch

from probpose.cli import main
from probpose.data import StoreSplit, prepare_data, read_split
from probpose.evaluation import evaluate, evaluate_files, evaluate_store
from probpose.models import build_model, load_model
from probpose.training import Trainer, TrainingConfig, load_config, run_experiment


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A per-joint flow and a full Gaussian on the bundled body+hands data (no feet)."""
    out = tmp_path_factory.mktemp("runs")
    runs = {}
    for config, name, extra in (
        ("joint_flow", "jf", ["training.max_steps=40", "training.eval_every=20"]),
        ("gaussian_prior", "g", ["model.name=gaussian_full", "training.fit=closed_form"]),
    ):
        overrides = [f"output.dir={out}", f"name={name}", "output.tensorboard=false", *extra]
        assert main(["train", "--config", config, *(a for o in overrides for a in ("--override", o))]) == 0
        runs[name] = out / name / "checkpoint.pt"
    return runs


def test_raw_file_equals_its_store_and_the_python_api(trained, tmp_path, smplx_files, capsys):
    clip = smplx_files["smplcodec_apose_to_handsFront_smplx.npz"]
    store = tmp_path / "clip.h5"
    assert (
        main(
            [
                "import",
                str(clip),
                "--joints",
                "body+hands-feet",
                "--split",
                "100/0/0",
                "--guard-seconds",
                "0",
                "--out",
                str(store),
            ]
        )
        == 0
    )
    for ckpt in trained.values():
        out = tmp_path / ckpt.parent.name
        assert (
            main(["evaluate", "--model", str(ckpt), str(store), str(clip), "--split", "train", "--out", str(out)]) == 0
        )
        reports = json.loads((out / "evaluation.json").read_text())["reports"]
        from_store, from_file = (r["evaluation"] for r in reports)
        assert from_store["n"] == from_file["n"] == 34
        assert math.isclose(from_store["nll"], from_file["nll"], rel_tol=1e-9, abs_tol=1e-9)
        model = load_model(ckpt)
        api = evaluate_files(model, [clip]).evaluation
        assert math.isclose(api.nll, from_file["nll"], rel_tol=1e-9, abs_tol=1e-9)
        poses, _ = read_split(store, "train")
        assert math.isclose(evaluate(model, torch.from_numpy(poses)).nll, api.nll, rel_tol=1e-6)
    text = capsys.readouterr().out
    assert "NLL per joint (worst first)" in text and "worst poses (index, NLL)" in text


def test_per_joint_breakdown_sums_to_the_nll(trained, tmp_path):
    model = load_model(trained["jf"])
    data = prepare_data(joints="body+hands-feet", segment_seconds=0.25, guard_seconds=0.05, workdir=tmp_path)
    report = evaluate_store(model, data.store, "test")[0]
    assert set(report.per_joint_nll) == set(model.modelled_names)
    assert math.isclose(sum(report.per_joint_nll.values()), report.evaluation.nll, rel_tol=1e-5)
    worst_index, worst_nll = report.worst[0]
    poses, _ = read_split(data.store, "test")
    assert math.isclose(-model.log_prob(torch.from_numpy(poses[[worst_index]])).item(), worst_nll, rel_tol=1e-5)
    gaussian_full = evaluate_store(load_model(trained["g"]), data.store, "test")[0]
    assert gaussian_full.per_joint_nll is None  # does not factorise over joints


def test_missing_joints_are_named_and_constant_joints_are_scored(trained, tmp_path, smplx_files, capsys):
    aist = smplx_files["aistpp_style_sample.pkl"]  # body only: the model needs hands
    assert main(["evaluate", "--model", str(trained["g"]), str(aist), "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "does not record joints the model needs: left_index1" in err and "aistpp_style_sample.pkl" in err
    body = tmp_path / "body.h5"
    assert main(["import", str(aist), "--joints", "body", "--out", str(body)]) == 0
    assert main(["evaluate", "--model", str(trained["g"]), str(body), "--out", str(tmp_path)]) == 1
    assert "does not record joints the model needs" in capsys.readouterr().err
    # the bundled avatar holds its feet at zero; a body model trained elsewhere still scores it
    model = build_model("gaussian", __import__("probpose.skeleton", fromlist=["SMPLX"]).SMPLX.select("body"))
    g = torch.Generator().manual_seed(0)
    Trainer(model, TrainingConfig(fit="closed_form")).fit(0.2 * torch.randn(300, 21, 3, generator=g))
    report = evaluate_files(model, [smplx_files["smplcodec_avatar.smpl"]])
    assert report.evaluation.n == 601 and math.isfinite(report.evaluation.nll)


def test_streamed_training_matches_in_memory(tmp_path, zebra_files):
    store = tmp_path / "z.h5"
    assert main(["import", "--bundled", "zebra", "--out", str(store)]) == 0
    streamed = prepare_data(store, streaming=True)
    loaded = prepare_data(store, streaming=False)
    assert isinstance(streamed.train, StoreSplit) and isinstance(loaded.train, torch.Tensor)
    for name in ("gaussian", "gaussian_full", "gmm"):  # closed forms from chunked statistics
        a = build_model(name, streamed.skeleton)
        b = build_model(name, loaded.skeleton)
        Trainer(a, TrainingConfig(fit="closed_form")).fit(streamed.train)
        Trainer(b, TrainingConfig(fit="closed_form")).fit(loaded.train)
        assert abs(evaluate(a, streamed.test).nll - evaluate(b, loaded.test).nll) < 1e-3, name
    # SVI from the shuffled block stream: every pose once per pass, fixed by the seed
    split = streamed.train
    seen = torch.cat([b for b, _ in zip(split.batches(128, seed=3), range(len(split) // 128), strict=False)])
    assert len(seen) == (len(split) // 128) * 128
    assert len(torch.unique(seen.flatten(1), dim=0)) >= 0.97 * len(seen)  # (nearly) no repeats within a pass
    again = torch.cat([b for b, _ in zip(split.batches(128, seed=3), range(5), strict=False)])
    assert torch.equal(again, seen[: len(again)])
    overrides = [
        f"data.path={store}",
        "data.streaming=true",
        f"output.dir={tmp_path}",
        "training.max_steps=60",
        "training.eval_every=30",
        "output.tensorboard=false",
    ]
    cfg = load_config("joint_flow", overrides)
    summary = run_experiment(cfg)
    assert summary.data.streaming and summary.train.steps == 60 and math.isfinite(summary.test.nll)
    np.testing.assert_equal(summary.test.n, len(loaded.test))
