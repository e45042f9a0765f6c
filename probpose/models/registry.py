"""The one registry of models: name -> how to build it, its defaults and its bench settings. Used by
the CLI, the trainer, the bench and checkpoint loading alike."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from probpose.errors import ConfigError, SelectionError, short_repr
from probpose.models.base import PoseModel
from probpose.models.flows import GlobalFlowModel, GlobalFlowOptions, JointFlowModel, JointFlowOptions
from probpose.models.full_gaussian import FullGaussianModel, FullGaussianOptions
from probpose.models.mixture import GMMModel, GMMOptions
from probpose.models.per_joint_gaussian import PerJointGaussianModel, PerJointGaussianOptions
from probpose.models.vae import PoseVAE, VAEOptions
from probpose.options import field_names, from_dict
from probpose.skeleton import Skeleton

__all__ = ["ModelSpec", "MODELS", "register", "get_model_spec", "model_options", "build_model", "registry_name_of"]


@dataclass(frozen=True)
class ModelSpec:
    """A registered model.

    Attributes:
        name: registry key (``model.name`` in configs).
        options: dataclass of the model's options (``model.*`` config keys).
        build: ``(skeleton, options) -> PoseModel``.
        description: one line for listings.
        fixed: options this name stands for (``covariance: diag`` for ``gaussian_diag``): always
            applied; a config that sets one of them otherwise is an error.
        defaults: option values this entry starts from (a config may change them).
        bench_training: training settings ``probpose bench`` uses for it (``training.*`` keys).
    """

    name: str
    options: type
    build: Callable[[Skeleton, Any], PoseModel]
    description: str
    fixed: dict = field(default_factory=dict)
    defaults: dict = field(default_factory=dict)
    bench_training: dict = field(default_factory=dict)

    def default_options(self) -> Any:
        return self.options(**{**self.defaults, **self.fixed})

    @property
    def option_names(self) -> list[str]:
        return field_names(self.options)


MODELS: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add a model to the registry (a new prior or model is covered by the contract tests once it
    is registered)."""
    if spec.name in MODELS:
        raise ValueError(f"model {spec.name!r} is already registered")
    MODELS[spec.name] = spec
    return spec


def get_model_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise SelectionError(f"unknown model {short_repr(name)}; registered: {', '.join(MODELS)}") from None


def model_options(name: str, values: dict | None = None, prefix: str = "model.") -> Any:
    """The options of model ``name``: its registry defaults, then ``values`` (checked: unknown keys,
    wrong types and values out of range are errors naming the key), then its fixed options; a value
    that contradicts a fixed option is an error."""
    spec = get_model_spec(name)
    values = dict(values or {})
    for key, want in spec.fixed.items():
        if key in values and values[key] != want:
            raise ConfigError(
                f"{prefix}{key}: model {name!r} is {key}={want!r}; got {short_repr(values[key])} "
                f"(choose another model name for that)"
            )
    try:
        return from_dict(spec.options, {**spec.defaults, **values, **spec.fixed}, prefix)
    except ConfigError as e:
        if "unknown key" in str(e):
            valid = ", ".join(["name", *spec.option_names])
            raise ConfigError(f"{str(e).split(';')[0]}; valid keys: {valid}") from None
        raise


def registry_name_of(model: PoseModel) -> str:
    """The registry name a model was built under; for a model constructed directly, the first
    registered name whose class and fixed options match it."""
    if model.registry_name is not None:
        return model.registry_name
    for spec in MODELS.values():
        if spec.build is type(model) and isinstance(model.options, spec.options):
            if all(getattr(model.options, k) == v for k, v in spec.fixed.items()):
                return spec.name
    raise ValueError(f"{type(model).__name__} is not a registered model: register it to save it")


def build_model(name: str, skeleton: Skeleton, options: Any = None) -> PoseModel:
    """Build a registered model for ``skeleton``: ``options`` is that model's options dataclass, a
    dict of option values (checked by :func:`model_options`), or None for the defaults."""
    spec = get_model_spec(name)
    if options is None or isinstance(options, dict):
        options = model_options(name, options)
    elif not isinstance(options, spec.options):
        raise TypeError(f"model {name!r} takes {spec.options.__name__}, got {type(options).__name__}")
    else:
        model_options(name, dataclasses.asdict(options))  # the fixed options and ranges hold
    model = spec.build(skeleton, options)
    model.registry_name = name
    model.options = options
    return model


register(
    ModelSpec(
        "gaussian",
        PerJointGaussianOptions,
        PerJointGaussianModel,
        "per-joint Gaussian, full 3x3 covariance per joint",
        bench_training={"fit": "closed_form"},
    )
)
register(
    ModelSpec(
        "gaussian_diag",
        PerJointGaussianOptions,
        PerJointGaussianModel,
        "per-joint Gaussian, diagonal covariance",
        fixed={"covariance": "diag"},
        bench_training={"fit": "closed_form"},
    )
)

register(
    ModelSpec(
        "gaussian_full",
        FullGaussianOptions,
        FullGaussianModel,
        "one Gaussian over all modelled joints jointly (full 3J x 3J covariance)",
        bench_training={"fit": "closed_form"},
    )
)
register(
    ModelSpec(
        "gmm",
        GMMOptions,
        GMMModel,
        "SMPLify's prior: a mixture of 8 full-covariance Gaussians over the whole pose, fitted by EM",
        bench_training={"fit": "closed_form"},
    )
)

_FLOW_BENCH = {
    "lr": 3e-4, "batch_size": 256, "max_steps": 1500, "eval_every": 10, "patience": 30, "schedule": "none",
    "noise": 1e-3,
}  # fmt: skip
"""Global flows: a small learning rate and fine-grained early stopping (on small data they overfit
within tens of steps), training noise at the scale of motion-capture noise (1e-3 rad)."""
_JOINT_FLOW_BENCH = {
    "lr": 3e-3, "batch_size": 256, "max_steps": 4000, "eval_every": 25, "patience": 20, "schedule": "none",
    "noise": 1e-3,
}  # fmt: skip
register(
    ModelSpec(
        "global_flow",
        GlobalFlowOptions,
        GlobalFlowModel,
        "normalizing flow over the whole pose from the full-covariance Gaussian: RealNVP affine couplings, LU mixing",
        bench_training=_FLOW_BENCH,
    )
)
register(
    ModelSpec(
        "global_flow_spline",
        GlobalFlowOptions,
        GlobalFlowModel,
        "normalizing flow over the whole pose from the full-covariance Gaussian: rational-quadratic spline couplings",
        fixed={"coupling": "spline"},
        defaults={"K": 4, "hidden": 64},
        bench_training=_FLOW_BENCH,
    )
)
register(
    ModelSpec(
        "joint_flow",
        JointFlowOptions,
        JointFlowModel,
        "per-joint conditional spline flows on the full-covariance Gaussian's residual, each joint given its "
        "parent's rotation",
        bench_training=_JOINT_FLOW_BENCH,
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
        fixed={"type": "so3"},
        bench_training=_VAE_BENCH,
    )
)
