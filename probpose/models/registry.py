"""The one registry of models: name -> how to build it and its defaults. Used by the CLI, the
trainer, the bench and checkpoint loading alike. Each model module registers its own names at its
end (``register(ModelSpec(...))``); :mod:`probpose.models` imports every module of the package, so
a new model file is registered without editing any other file (docs/architecture.md, "Adding a
prior"). The bench's training budgets are :mod:`probpose.bench.budgets`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from probpose.errors import ConfigError, SelectionError, short_repr
from probpose.models.base import PoseModel
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
    """

    name: str
    options: type
    build: Callable[[Skeleton, Any], PoseModel]
    description: str
    fixed: dict = field(default_factory=dict)
    defaults: dict = field(default_factory=dict)

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
        model_options(name, dataclasses.asdict(options))  # type: ignore[call-overload]  # a dataclass, checked above
    model = spec.build(skeleton, options)
    model.registry_name = name
    model.options = options
    return model
