"""Settings are checked in one place: every command's typed request (and every options class)
checks its values when it is built, with the same messages from Python and from the command line
(where `name` becomes --name). And a new prior is two files: its distribution and a model module
that registers it, found without editing any other file (docs/architecture.md, "Adding a prior")."""

import math
import sys

import pytest
import torch

from probpose.bench import BenchRequest, bench_budget
from probpose.cli import main
from probpose.data import ImportRequest
from probpose.errors import ConfigError, ProbposeError
from probpose.evaluation import EvaluateRequest
from probpose.fitting import FitRequest
from probpose.models import SampleRequest
from probpose.style import StyleApplyRequest, StyleOptions
from probpose.synthesis import SynthRequest
from probpose.synthesis.animation import SceneOptions

IMPORT = {"sources": [], "out": "s.h5"}
EVAL = {"model": "m.pt", "data": ["d.h5"]}
SAMPLE = {"model": "m.pt", "out": "s.npy"}
SYNTH = {"out": "frames", "poses": "legs.npy"}
FIT = {"observations": "obs.npz", "prior": "none", "out": "fit.npz"}
APPLY = {"content": "c", "style": "s.png", "out": "o"}

# (request, values, the message's start)
BAD = [
    (ImportRequest, {**IMPORT, "segment_seconds": 0}, "`segment_seconds`: 0.0 is outside the valid range (0, inf)"),
    (ImportRequest, {**IMPORT, "trim": 0.5}, "`trim`: 0.5 is outside the valid range [0, 0.5)"),
    (ImportRequest, {**IMPORT, "split_by": "trial"}, "`split_by`: 'trial' is not one of 'segment', 'sequence'"),
    (ImportRequest, {**IMPORT, "bundled": ["nope"]}, "`bundled`: 'nope' is not a bundled data set"),
    (ImportRequest, {**IMPORT, "fps": math.inf}, "`fps`: must be a finite number"),
    (BenchRequest, {"models": ["nope"]}, "`models`: 'nope' is not a registered model"),
    (BenchRequest, {"fit_threads": 0}, "`fit_threads`: 0 is outside the valid range [1, 1,024]"),
    (BenchRequest, {"bundled": "amass"}, "`bundled`: 'amass' is not one of 'cmu', 'smplx'"),
    (EvaluateRequest, {**EVAL, "worst": -1}, "`worst`: -1 is outside the valid range [0, 10,000,000]"),
    (EvaluateRequest, {**EVAL, "split": "dev"}, "`split`: 'dev' is not one of"),
    (SampleRequest, {**SAMPLE, "n": 0}, "`n`: 0 is outside the valid range [1, 10,000,000]"),
    (SampleRequest, {**SAMPLE, "n": 2.5}, "`n`: expected an integer, got 2.5"),
    (SampleRequest, {**SAMPLE, "sequence": True, "step": 1.5}, "`step`: the latent step per frame must be in (0, 1)"),
    (SynthRequest, {**SYNTH, "width": 0}, "`width`: 0 is outside the valid range [1, inf)"),
    (SynthRequest, {"out": "frames"}, "give leg poses (`poses`) or a leg VAE (`model`)"),
    (SynthRequest, {**SYNTH, "texture": "spots"}, "`texture`: 'spots' is not one of 'stripes', 'plain'"),
    (FitRequest, {**FIT, "inference": "vi"}, "`inference`: 'vi' is not one of 'map', 'posterior', 'nuts'"),
    (FitRequest, {**FIT, "sigma": math.nan}, "`sigma`: must be a finite number"),
    (FitRequest, {**FIT, "steps": 0}, "`steps`: 0 is outside the valid range [1, 10,000,000]"),
    (StyleOptions, {"alpha": 2.0}, "`alpha`: 2.0 is outside the valid range [0, 1]"),
    (StyleOptions, {"decoder": "transposed", "depth": "relu3_1"}, "`decoder`: transposed works with `depth` pool2"),
    (StyleOptions, {"height": 66}, "`height` and `width` must be multiples of 4"),
    (StyleApplyRequest, {**APPLY, "alpha": 1.5}, "`alpha`: 1.5 is outside the valid range [0, 1]"),
    (StyleApplyRequest, {**APPLY, "method": "gatys"}, "`method`: 'gatys' is not one of 'adain', 'colour'"),
    (SceneOptions, {"fill_min": 0.9, "fill_max": 0.8}, "fill_min (0.9) must not exceed fill_max (0.8)"),
]


@pytest.mark.parametrize("cls, values, message", BAD, ids=[f"{c.__name__}:{m[:30]}" for c, _, m in BAD])
def test_a_request_checks_its_settings_when_built(cls, values, message):
    with pytest.raises(ProbposeError) as caught:
        cls(**values)
    assert str(caught.value).startswith(message) or message in str(caught.value), str(caught.value)


def test_a_request_converts_what_it_accepts():
    fit = FitRequest(**FIT, nu=4, sigma=1)
    assert isinstance(fit.nu, float) and isinstance(fit.sigma, float) and fit.out.suffix == ".npz"
    assert SampleRequest(model="m.pt", out="poses").out.name == "poses.npy"


def test_the_command_line_reports_a_request_error_as_its_flag(tmp_path, capsys):
    args = ["sample", "--model", str(tmp_path / "m.pt"), "--out", str(tmp_path / "s.npy"), "--n", "0"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "probpose sample: error: --n: 0 is outside the valid range [1, 10,000,000]" in err
    assert not (tmp_path / "s.npy").exists()
    assert main(["fit", "--observations", "o.npz", "--prior", "none", "--out", str(tmp_path / "f"), "--nu", "-1"]) == 1
    assert "--nu: -1.0 is outside the valid range (0, inf)" in capsys.readouterr().err


def test_a_flags_help_states_the_requests_default(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"(default {BenchRequest().batch})" in text and f"(default {BenchRequest().bundled})" in text


PRIOR = """
import math
from dataclasses import dataclass

import pyro.distributions as dist
import torch
from torch import nn

from probpose.models.base import PriorModel
from probpose.models.registry import ModelSpec, register
from probpose.options import option, validate


@dataclass
class LaplaceOptions:
    init_scale: float = option(0.3, gt=0)

    def __post_init__(self):
        validate(self)


class LaplacePoseModel(PriorModel):
    def __init__(self, skeleton, options=None):
        super().__init__(skeleton)
        self.options = options or LaplaceOptions()
        self.loc = nn.Parameter(torch.zeros(skeleton.num_joints, 3))
        self.log_scale = nn.Parameter(torch.full((skeleton.num_joints, 3), math.log(self.options.init_scale)))

    def forward(self, context=None):
        return dist.Laplace(self.loc, self.log_scale.exp()).to_event(2)


register(ModelSpec("test_laplace", LaplaceOptions, LaplacePoseModel, "a Laplace per axis-angle number (a test)"))
"""


def test_a_new_prior_is_one_model_file_found_without_editing_any_other(tmp_path, zebra_files):
    """The model module (here with a Pyro distribution of its own) is dropped into the package's
    path: discovery registers it, and the trainer, checkpoints and the bench take it as it is."""
    import probpose.models as models
    from probpose.data import import_poses
    from probpose.training import Trainer, TrainingConfig

    (tmp_path / "laplace_prior.py").write_text(PRIOR)
    models.__path__.append(str(tmp_path))
    try:
        assert models.discover() == ["probpose.models.laplace_prior"]
        assert "test_laplace" in models.MODELS
        data = import_poses([zebra_files["test_poses.npz"]])
        train, skeleton = torch.from_numpy(data.poses), data.skeleton
        model = models.build_model("test_laplace", skeleton, {"init_scale": 0.5})
        with pytest.raises(ConfigError, match="init_scale"):
            models.build_model("test_laplace", skeleton, {"init_scale": -1.0})
        before = -model.log_prob(train).mean().item()
        Trainer(model, TrainingConfig(max_steps=60, lr=0.05, eval_every=1000)).fit(train)
        after = -model.log_prob(train).mean().item()
        assert after < before - 1.0
        path = tmp_path / "laplace.pt"
        models.save_model(path, model)
        again = models.load_model(path)
        assert torch.allclose(again.log_prob(train), model.log_prob(train))
        assert bench_budget("test_laplace") == {"max_steps": 2000}  # no closed form, no listed budget
    finally:
        models.__path__.remove(str(tmp_path))
        models.MODELS.pop("test_laplace", None)
        sys.modules.pop("probpose.models.laplace_prior", None)
