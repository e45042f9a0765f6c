"""The one registry of models: name -> how to build it. Used by the CLI, the trainer and the
benchmarks alike."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from probpose.models import (
    GaussianOptions,
    GlobalFlowModel,
    GlobalFlowOptions,
    JointFlowModel,
    JointFlowOptions,
    JointGaussianModel,
    PoseModel,
    PoseVAE,
    VAEOptions,
)
from probpose.skeleton import Skeleton

__all__ = ["ModelSpec", "MODELS", "register", "get_model_spec", "build_model"]


@dataclass(frozen=True)
class ModelSpec:
    """A registered model.

    Attributes:
        name: registry key (``model.name`` in configs).
        options: dataclass of the model's options (``model.*`` config keys).
        build: ``(skeleton, options) -> PoseModel``.
        description: one line for listings.
        defaults: option values this entry fixes (e.g. the diagonal Gaussian).
        bench_training: training settings ``probpose bench`` uses for it (``training.*`` keys).
    """

    name: str
    options: type
    build: Callable[[Skeleton, Any], PoseModel]
    description: str
    defaults: dict = field(default_factory=dict)
    bench_training: dict = field(default_factory=dict)

    def default_options(self) -> Any:
        return self.options(**self.defaults)


MODELS: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    if spec.name in MODELS:
        raise ValueError(f"model {spec.name!r} is already registered")
    MODELS[spec.name] = spec
    return spec


def get_model_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(MODELS)}") from None


def build_model(name: str, skeleton: Skeleton, options: Any = None) -> PoseModel:
    """Build a registered model for ``skeleton`` (default options when ``options`` is None)."""
    spec = get_model_spec(name)
    return spec.build(skeleton, options if options is not None else spec.default_options())


register(
    ModelSpec(
        "gaussian",
        GaussianOptions,
        JointGaussianModel,
        "per-joint Gaussian, full 3x3 covariance per joint",
        bench_training={"fit": "closed_form"},
    )
)
register(
    ModelSpec(
        "gaussian_diag",
        GaussianOptions,
        JointGaussianModel,
        "per-joint Gaussian, diagonal covariance",
        defaults={"covariance": "diag"},
        bench_training={"fit": "closed_form"},
    )
)

_FLOW_BENCH = {"lr": 1e-3, "batch_size": 256, "max_steps": 800, "eval_every": 25, "patience": 6, "schedule": "none"}
register(
    ModelSpec(
        "global_flow",
        GlobalFlowOptions,
        GlobalFlowModel,
        "normalizing flow over the whole pose: RealNVP affine couplings, LU mixing, ActNorm",
        bench_training=_FLOW_BENCH,
    )
)
register(
    ModelSpec(
        "global_flow_spline",
        GlobalFlowOptions,
        GlobalFlowModel,
        "normalizing flow over the whole pose: rational-quadratic spline couplings",
        defaults={"coupling": "spline", "K": 4, "hidden": 64},
        bench_training=_FLOW_BENCH,
    )
)
register(
    ModelSpec(
        "joint_flow",
        JointFlowOptions,
        JointFlowModel,
        "per-joint conditional spline flows, each joint given its parent's rotation",
        bench_training=_FLOW_BENCH,
    )
)
_VAE_BENCH = {"lr": 1e-3, "batch_size": 256, "max_steps": 3000, "eval_every": 50, "patience": 10, "schedule": "none"}
register(
    ModelSpec(
        "vae",
        VAEOptions,
        PoseVAE,
        "VAE, Gaussian likelihood on axis-angle (NLL reported as the IWAE upper bound)",
        bench_training=_VAE_BENCH,
    )
)
register(
    ModelSpec(
        "vae_so3",
        VAEOptions,
        PoseVAE,
        "VAE, 6D decoder and a normalised SO(3) likelihood per joint (NLL: IWAE upper bound)",
        defaults={"type": "so3"},
        bench_training=_VAE_BENCH,
    )
)
