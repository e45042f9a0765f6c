"""Every registered model through every command that takes a model (evaluate, sample, fit), one
table; the bench's progress lines in a captured log; the pictures the commands draw."""

import logging
import re

import numpy as np
import pytest
import torch
from PIL import Image

from probpose.cli import main
from probpose.fitting import make_body
from probpose.models import MODELS, load_model
from probpose.progress import Progress
from probpose.skeleton import ZEBRA_LEGS


def _drawn_fraction(path) -> float:
    """Share of pixels that are not the white page: 0 when nothing was drawn."""
    img = np.asarray(Image.open(path).convert("L"), dtype=np.float64)
    return float((img < 200).mean())


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """All registered models, each fitted for a few steps on the PASyn legs (D = 36) by the bench."""
    root = tmp_path_factory.mktemp("bench")
    store = root / "zebra.h5"
    assert main(["import", "--bundled", "zebra", "--out", str(store)]) == 0
    out = root / "bench"
    assert main(["bench", "--data", str(store), "--max-steps", "3", "--batch", "64", "--out", str(out)]) == 0
    from probpose.data import read_split

    poses = torch.as_tensor(read_split(store, "test")[0][:6])
    body = make_body("zebra_legs", ZEBRA_LEGS.joint_names)
    zeros = torch.zeros(len(poses), 3, dtype=torch.float64)
    points = body.points(poses.double(), zeros, zeros).float().numpy()
    mask = np.ones(points.shape[:2], bool)
    mask[:, :4] = False  # four keypoints hidden
    obs = root / "obs.npz"
    np.savez(obs, joints=points, mask=mask)
    return {"store": store, "out": out, "obs": obs}


COMMANDS = ["evaluate", "sample", "fit"]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_goes_through_every_command(bench, name, command, tmp_path, capsys):
    ckpt = bench["out"] / "models" / f"{name}.pt"
    assert ckpt.is_file()
    if command == "evaluate":
        assert main(["evaluate", "--model", str(ckpt), str(bench["store"]), "--out", str(tmp_path / "ev")]) == 0
        text = capsys.readouterr().out
        assert "NLL" in text and (tmp_path / "ev" / "evaluation.json").is_file()
    elif command == "sample":
        out, sheet = tmp_path / "s.npy", tmp_path / "s.png"
        assert main(["sample", "--model", str(ckpt), "--n", "12", "--out", str(out), "--sheet", str(sheet)]) == 0
        x = np.load(out)
        assert x.shape == (12, 12, 3) and np.isfinite(x).all()
        assert Image.open(sheet).size[0] > 200 and _drawn_fraction(sheet) > 0.005
    else:
        out, sheet = tmp_path / "fit.npz", tmp_path / "fit.png"
        argv = [
            "fit",
            "--observations",
            str(bench["obs"]),
            "--prior",
            str(ckpt),
            "--out",
            str(out),
            "--steps",
            "5",
            "--sheet",
            str(sheet),
        ]
        assert main(argv) == 0
        res = np.load(out)
        assert res["pose"].shape == (6, 12, 3) and np.isfinite(res["pose"]).all()
        assert _drawn_fraction(sheet) > 0.005


def test_the_bench_draws_nll_against_time_and_evaluate_a_per_joint_chart(bench, tmp_path):
    plot = bench["out"] / "bench_nll_time.png"
    assert plot.is_file() and _drawn_fraction(plot) > 0.01
    ckpt = bench["out"] / "models" / "gaussian.pt"  # per-joint Gaussians factorise over joints
    assert main(["evaluate", "--model", str(ckpt), str(bench["store"]), "--out", str(tmp_path / "ev")]) == 0
    chart = tmp_path / "ev" / "per_joint_nll.png"
    assert chart.is_file() and _drawn_fraction(chart) > 0.01
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(bench["out"] / "models" / "vae.pt"),
                str(bench["store"]),
                "--out",
                str(tmp_path / "ev2"),
            ]
        )
        == 0
    )
    assert not (tmp_path / "ev2" / "per_joint_nll.png").exists()  # a VAE does not factorise: no chart


def test_the_picture_statistic_can_fail(tmp_path):
    """An empty page measures 0, one stick figure more: the picture checks above can fail."""
    from probpose.plots import StickFigure, stick_sheet

    blank = tmp_path / "blank.png"
    Image.new("RGB", (200, 200), "white").save(blank)
    assert _drawn_fraction(blank) == 0.0
    sheet = stick_sheet([StickFigure(np.array([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), [(0, 1)])], tmp_path / "one.png")
    assert _drawn_fraction(sheet) > 0.001


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def test_progress_lines_in_a_log_are_few_a_minute():
    """Not a terminal: 100,000 updates over a simulated minute give at most 7 lines (one each 10 s
    and the last), each with the step, the elapsed time, an estimate and the latest note."""
    now, seen = [0.0], _Lines()
    log = logging.getLogger("probpose.progress")
    level = log.level
    log.addHandler(seen)
    log.setLevel(logging.INFO)
    try:
        bar = Progress(100_000, "train demo", interval=10.0, clock=lambda: now[0], terminal=False)
        for k in range(100_000):
            now[0] = 60.0 * k / 100_000
            bar.update(1)
            if k == 50_000:
                bar.note(val_NLL="-1.234")
        bar.close()
    finally:
        log.removeHandler(seen)
        log.setLevel(level)
    lines = seen.lines
    assert 5 <= len(lines) <= 7
    assert re.search(r"train demo: step [\d,]+/100,000 \(\d+%\), \d+ s, about \d+ s left", lines[1])
    assert "val NLL -1.234" in lines[-1]


def test_bench_and_train_write_progress_lines_to_a_log(bench, tmp_path):
    """A real command with its output to a file (not a terminal): which model, its step, its
    validation NLL; at most a line per 2 s with -v, plus one per model boundary."""
    import subprocess
    import sys

    log = tmp_path / "bench.log"
    with open(log, "w") as fh:
        rc = subprocess.run(
            [
                sys.executable,
                "-m",
                "probpose",
                "-v",
                "bench",
                "--data",
                str(bench["store"]),
                "--models",
                "gaussian",
                "joint_flow",
                "--max-steps",
                "40",
                "--batch",
                "64",
                "--out",
                str(tmp_path / "b"),
            ],
            stdout=fh,
            stderr=subprocess.STDOUT,
            timeout=600,
        ).returncode
    text = log.read_text()
    assert rc == 0, text
    assert "bench: model 1/2: fitting gaussian (closed form)" in text
    assert "bench: model 2/2: fitting joint_flow (up to" in text
    assert re.search(r"train joint_flow: step 40/40 \(100%\), \d+ s; loss [-\d.]+, val NLL [-\d.]+", text)
    assert "bench: joint_flow done: 40 steps" in text
    assert "\r" not in text  # no bar redraws in a log
    import json

    fit_s = next(
        r["fit_seconds"]
        for r in json.loads((tmp_path / "b" / "bench.json").read_text())["rows"]
        if r["model"] == "joint_flow"
    )
    progress_lines = [ln for ln in text.splitlines() if "train joint_flow: step" in ln]
    assert 1 <= len(progress_lines) <= 2 + fit_s / 2  # one per 2 s at most with -v, and the last
    quiet = subprocess.run(
        [
            sys.executable,
            "-m",
            "probpose",
            "-q",
            "bench",
            "--data",
            str(bench["store"]),
            "--models",
            "gaussian",
            "--max-steps",
            "3",
            "--out",
            str(tmp_path / "q"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert quiet.returncode == 0 and "bench: model" not in quiet.stderr


def test_loaded_checkpoints_are_the_benchs_models(bench):
    for name in MODELS:
        assert load_model(bench["out"] / "models" / f"{name}.pt").registry_name == name


def test_assemble_fit_is_the_library_call_behind_probpose_fit(tmp_path):
    """What `probpose fit` builds, from Python: the joints a fit without a prior moves, the body of
    a prior's skeleton, and a clear error for settings that only apply without a prior."""
    from probpose.errors import ProbposeError
    from probpose.fitting import Joints3D, assemble_fit, write_fit
    from probpose.fitting.map import fit_map
    from probpose.skeleton import SMPLX

    def obs(n_points: int) -> Joints3D:
        g = torch.Generator().manual_seed(0)
        return Joints3D(
            0.1 * torch.randn(2, n_points, 3, generator=g, dtype=torch.float64),
            torch.ones(2, n_points, dtype=torch.bool),
        )

    body_hands = SMPLX.select("body+hands").joint_names
    fit = assemble_fit(obs(len(make_body("smplx", body_hands).point_names)))
    assert fit.prior is None and tuple(fit.joint_names) == tuple(body_hands)
    zebra = assemble_fit(obs(19), skeleton="zebra_legs")
    assert tuple(zebra.joint_names) == tuple(ZEBRA_LEGS.joint_names)
    res = fit_map(zebra, steps=5)
    summary = write_fit(tmp_path / "fit.npz", zebra, res, "none", "made in the test")
    saved = np.load(tmp_path / "fit.npz")
    assert saved["pose"].shape == (2, 12, 3) and summary["residual_unit"] == "mm"
    assert (tmp_path / "fit.md").read_text().startswith("# probpose fit: 2 frames")
    with pytest.raises(ProbposeError, match="`skeleton` and `joints` are for fits without a prior"):
        assemble_fit(obs(19), "cmu/joint_flow", skeleton="smplx")
