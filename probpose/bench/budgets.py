"""The training budget ``probpose bench`` gives each registered model (``training.*`` settings of
:class:`~probpose.training.TrainingConfig`). Fits are budgeted in optimisation steps, so the same
command gives the same numbers on any machine up to float noise. A model registered without an
entry here gets the default: its closed-form fit where it has one, else :data:`DEFAULT_BUDGET`."""

from __future__ import annotations

from probpose.models import get_model_spec

__all__ = ["BUDGETS", "DEFAULT_BUDGET", "bench_budget"]

DEFAULT_BUDGET = {"max_steps": 2000}
"""Stochastic fits of models that are not listed in :data:`BUDGETS`: the trainer's defaults, 2000 steps."""

_FLOW = {
    "lr": 3e-4, "batch_size": 256, "max_steps": 1500, "eval_every": 10, "patience": 30, "schedule": "none",
    "noise": 1e-3,
}  # fmt: skip
"""Global flows: a small learning rate and fine-grained early stopping (on small data they overfit
within tens of steps), training noise at the scale of motion-capture noise (1e-3 rad)."""
_JOINT_FLOW = {
    "lr": 3e-3, "batch_size": 256, "max_steps": 4000, "eval_every": 25, "patience": 20, "schedule": "none",
    "noise": 1e-3,
}  # fmt: skip
_VAE = {"lr": 1e-3, "batch_size": 256, "max_steps": 3000, "eval_every": 50, "patience": 10, "schedule": "none"}

BUDGETS: dict[str, dict] = {
    "global_flow": _FLOW,
    "global_flow_spline": _FLOW,
    "joint_flow": _JOINT_FLOW,
    "vae": _VAE,
    "vae_so3": _VAE,
}
"""Registry name -> its bench training settings (the closed-form models need none)."""


def bench_budget(name: str) -> dict:
    """The bench's training settings for the registered model ``name`` (a copy)."""
    spec = get_model_spec(name)
    if name in BUDGETS:
        return dict(BUDGETS[name])
    return {"fit": "closed_form"} if getattr(spec.build, "has_closed_form", False) else dict(DEFAULT_BUDGET)
