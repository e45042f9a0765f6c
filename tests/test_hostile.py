"""Hostile inputs, one row a case (issue 22, round 2): the input is built in the test, the command
runs as a user would run it, and the expected outcome is one line naming the problem (no
traceback), with the named files unchanged or absent. Rows cover the classes fixed so far:
devices, non-finite or wrongly typed weights, strict JSON reports."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from probpose.files import json_text
from probpose.models import build_model, save_model
from probpose.skeleton import ZEBRA_LEGS


def _run(args, cwd):
    return subprocess.run([sys.executable, "-m", "probpose", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def _checkpoint(path: Path, edit=None) -> Path:
    model = build_model("gaussian_full", ZEBRA_LEGS)
    model.fit_closed_form(0.3 * torch.randn(200, 12, 3, generator=torch.Generator().manual_seed(0)))
    state = model.state_dict()
    if edit is not None:
        edit(state)
    save_model(path, model)
    ck = torch.load(path, weights_only=True)
    ck["model"] = state
    torch.save(ck, path)
    return path


def _observations(path: Path, kind: str) -> None:
    """An observations file that is a FIFO, holds complex joints, or names its points with one string."""
    if kind == "fifo":
        os.mkfifo(path)
        return
    joints = np.zeros((2, 19, 3))
    if kind == "complex":
        np.savez(path, joints=joints + 1j)
    else:
        np.savez(path, joints=joints, names=np.array("pelvis"))


def _nan(state):
    state["loc"][0, 0] = math.nan


def _int64(state):
    state["loc"] = state["loc"].long()


def _half(state):
    state["loc"] = state["loc"].half()


CASES = [  # (id, files made before, command, message fragment, files that must stay absent)
    ("synth --device foo", {"legs.npy": None}, ["synth", "--poses", "legs.npy", "--n-frames", "2", "--out", "frames",
                                                "--device", "foo"],
     "'foo' is not a device; cpu, cuda or cuda:N", ["frames"]),
    ("bench --device cuda without a GPU", {}, ["bench", "--device", "cuda:99" if torch.cuda.is_available() else "cuda",
     "--out", "b"], "CUDA device", ["b"]),
    ("train --override training.device=tpu", {}, ["train", "--config", "gaussian_prior", "--override",
     "training.device=tpu"], "training.device: 'tpu' is not a device", ["runs"]),
    ("synth --width 20000 --height 20000", {"legs.npy": None}, ["synth", "--poses", "legs.npy", "--width", "20000",
     "--height", "20000", "--out", "frames"], "exceeds 16,777,216 pixels a frame", ["frames"]),
    ("sample --n 10^12", {"m.pt": None}, ["sample", "--model", "m.pt", "--n", "1000000000000", "--out", "s.npy"],
     "at most 10,000,000 per run", ["s.npy"]),
    ("evaluate --worst -5", {"m.pt": None}, ["evaluate", "--model", "m.pt", "legs.npy", "--worst", "-5"],
     "expected an integer >= 0", ["evaluation"]),
    ("import --split 1e308/1e308/1e308", {}, ["import", "--bundled", "zebra", "--split", "1e308/1e308/1e308",
     "--out", "s.h5"], "too large to add up", ["s.h5"]),
    ("fit reading a FIFO", {"obs.npz": "fifo"}, ["fit", "--prior", "cmu/gaussian_full", "--observations", "obs.npz",
     "--out", "fit.npz"], "obs.npz: not a regular file", ["fit.npz"]),
    ("fit on complex joints", {"obs.npz": "complex"}, ["fit", "--prior", "cmu/gaussian_full", "--observations",
     "obs.npz", "--out", "fit.npz"], "joints: holds complex numbers", ["fit.npz"]),
    ("fit with names as one string", {"obs.npz": "one-name"}, ["fit", "--prior", "cmu/gaussian_full",
     "--observations", "obs.npz", "--out", "fit.npz"], "names: must be a list of point names", ["fit.npz"]),
    ("evaluate --out naming a file", {"m.pt": None, "legs.npy": None}, ["evaluate", "--model", "m.pt", "legs.npy",
     "--out", "m.pt"], "m.pt: is a file; give a folder", []),
    ("sample from a checkpoint with NaN weights", {"nan.pt": _nan}, ["sample", "--model", "nan.pt", "--n", "5",
     "--out", "s.npy"], "model.loc: holds NaN or infinite weights", ["s.npy"]),
    ("sample from int64 weights", {"int.pt": _int64}, ["sample", "--model", "int.pt", "--n", "5", "--out", "s.npy"],
     "weights of dtype torch.int64", ["s.npy"]),
    ("sample from float16 weights", {"half.pt": _half}, ["sample", "--model", "half.pt", "--n", "5", "--out",
     "s.npy"], "weights of dtype torch.float16", ["s.npy"]),
]


@pytest.mark.parametrize(("made", "command", "message", "absent"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_input_is_one_line_and_leaves_nothing(tmp_path, made, command, message, absent):
    for name, edit in made.items():
        if name == "obs.npz":
            _observations(tmp_path / name, edit)
        elif name.endswith(".npy"):
            np.save(tmp_path / name, np.zeros((2, 12, 3), np.float32))  # two zebra leg poses, radians
        else:
            _checkpoint(tmp_path / name, edit)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}  # (a FIFO is not read)
    res = _run(command, tmp_path)
    assert res.returncode in (1, 2), res.stderr  # 2: argparse's usage error (its usage lines, then one error line)
    assert message in res.stderr and "Traceback" not in res.stderr, res.stderr
    errors = [line for line in res.stderr.strip().splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0], res.stderr
    if res.returncode == 1:
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    for name in absent:
        assert not (tmp_path / name).exists(), name
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file() and p.name in before} == before


def test_reports_are_strict_json_with_non_finite_values_named():
    text = json_text({"nll": math.nan, "rows": [{"bpd": math.inf}, {"bpd": 1.5}], "n": 3})
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in JSON"))
    assert data["nll"] is None and data["rows"][0]["bpd"] is None and data["rows"][1]["bpd"] == 1.5
    assert data["non_finite"] == ["nll", "rows[0].bpd"]
    assert json.loads(json_text({"a": 1.0})) == {"a": 1.0}  # nothing added when all is finite
    assert json.loads(json_text([float(np.float64(2.0))])) == [2.0]
