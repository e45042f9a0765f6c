"""The docstring examples (``>>>``) of the package run as doctests, module by module, and the main
entry points have one (docs/index.md's API reference shows them)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest
import torch

import probpose

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
# Entry points a user meets first: each must carry a runnable example.
ENTRY_POINTS = [
    "probpose.models.io.load_model",
    "probpose.distributions.per_joint_gaussian.PerJointGaussianPrior",
    "probpose.distributions.full_gaussian.FullGaussianPrior",
    "probpose.distributions.mixture.GaussianMixturePrior",
    "probpose.distributions.global_flow.GlobalFlowPrior",
    "probpose.distributions.joint_flow.JointFlowPrior",
    "probpose.distributions.so3.TangentGaussianSO3",
    "probpose.distributions.correlated_so3.CorrelatedTangentGaussianSO3",
    "probpose.models.vae.PoseVAE",
    "probpose.fitting.model.PoseFit",
    "probpose.fitting.map.fit_map",
    "probpose.fitting.guides.fit_posterior",
    "probpose.data.formats.load_source",
    "probpose.data.retarget.retarget",
]


def _modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(probpose.__path__, "probpose."):
        if info.name.endswith("__main__"):
            continue  # running it is the CLI
        names.append(info.name)
    return names


def _tests(module_name: str) -> list[doctest.DocTest]:
    module = importlib.import_module(module_name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    return [t for t in finder.find(module, module_name) if t.examples and t.name.startswith(module_name)]


WITH_EXAMPLES = [name for name in _modules() if _tests(name)]


def test_the_entry_points_have_examples_and_the_finder_sees_them():
    for dotted in ENTRY_POINTS:
        module_name, attr = dotted.rsplit(".", 1)
        obj = getattr(importlib.import_module(module_name), attr)
        assert ">>>" in (obj.__doc__ or ""), f"{dotted} has no docstring example"
        assert module_name in WITH_EXAMPLES, module_name
    assert len(WITH_EXAMPLES) >= 10


@pytest.mark.parametrize("module_name", WITH_EXAMPLES)
def test_docstring_examples_run(module_name):
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        for test in _tests(module_name):
            runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted > 0
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {module_name} (output above)"


def test_a_wrong_example_fails():
    parser = doctest.DocTestParser()
    bad = parser.get_doctest(">>> 1 + 1\n3\n", {}, "bad", None, 0)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    runner.run(bad, out=lambda s: None)
    assert runner.summarize(verbose=False).failed == 1
