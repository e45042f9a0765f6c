"""Experiment configuration: YAML files loaded into dataclasses, with dotted overrides.

A config file has four sections (every key optional; defaults below)::

    name: gaussian_prior
    data:     {path: null, bundled: smplx, joints: body+hands, split: 80/10/10, split_seed: 0, ...}
    model:    {name: gaussian, ...options of that model (see the registry)...}
    training: {fit: svi, optimizer: adam, lr: 0.01, ...}
    output:   {dir: runs, tensorboard: true, checkpoint_every: 500}

``--override a.b=c`` sets one key; ``c`` is parsed as YAML (so ``1e-3`` is a float, ``null`` is
``None``) and must have the key's type. An unknown key is an error listing the valid keys.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

__all__ = [
    "ConfigError",
    "DataConfig",
    "TrainingConfig",
    "OutputConfig",
    "ModelConfig",
    "ExperimentConfig",
    "parse_override",
    "load_config",
    "config_from_dict",
    "config_to_dict",
    "flatten_dict",
    "find_config",
]


class ConfigError(ValueError):
    """A config file or override that does not fit the schema."""


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3`` (no dot) as a float, as YAML 1.2 does."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


@dataclass
class DataConfig:
    """``path``: an HDF5 store from ``probpose import``; ``null`` imports the ``bundled`` set
    (only its files that record ``joints``) with ``split``, ``split_seed``, ``segment_seconds``
    and ``guard_seconds`` (see :func:`probpose.data.split_poses`)."""

    path: str | None = None
    bundled: str = "smplx"
    joints: str = "body+hands"
    split: str = "80/10/10"
    split_seed: int = 0
    segment_seconds: float = 1.0
    guard_seconds: float = 0.1


@dataclass
class TrainingConfig:
    """How a model is fitted.

    ``fit``: ``svi`` (stochastic gradient on the negative ELBO per pose) or ``closed_form``
    (exact maximum likelihood, where the model has one). ``patience``: evaluations without a
    better validation NLL before stopping (0: never stop early). ``clip_norm``: gradient norm
    clipping (``null``: none). ``schedule``: ``none``, ``step`` (x ``gamma`` every ``step_size``
    steps), ``cosine`` (to 0 at ``max_steps``) or ``plateau`` (x ``gamma`` after
    ``plateau_patience`` evaluations without improvement). ``max_seconds``: stop (after a final
    validation) once this much wall-clock time has been spent (``null``: no limit).
    """

    fit: Literal["svi", "closed_form"] = "svi"
    optimizer: Literal["adam", "clipped_adam"] = "adam"
    lr: float = 1e-2
    weight_decay: float = 0.0
    batch_size: int = 256
    max_steps: int = 2000
    schedule: Literal["none", "step", "cosine", "plateau"] = "none"
    step_size: int = 1000
    gamma: float = 0.5
    plateau_patience: int = 5
    clip_norm: float | None = 10.0
    eval_every: int = 50
    patience: int = 20
    max_seconds: float | None = None
    seed: int = 0
    device: str = "cpu"
    dtype: Literal["float32", "float64"] = "float32"


@dataclass
class OutputConfig:
    """``dir``: parent folder of run folders (``<dir>/<name>``)."""

    dir: str = "runs"
    tensorboard: bool = True
    checkpoint_every: int = 500


@dataclass
class ModelConfig:
    """``name`` of a registered model and its options dataclass."""

    name: str
    options: Any


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=lambda: ModelConfig("gaussian", None))
    training: TrainingConfig = field(default_factory=TrainingConfig)
    output: OutputConfig = field(default_factory=OutputConfig)


# ---------------------------------------------------------------------- typed construction
def _check_value(value: Any, hint: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_value(value, arg, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{key}: invalid value {value!r}")
    if origin is Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(repr, allowed))}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported config type {hint!r}")


def _build(cls: type, values: dict, prefix: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in values if k not in names]
    if unknown:
        where = prefix or "top level"
        raise ConfigError(f"unknown key {prefix + unknown[0]!r} ({where}); valid keys: {', '.join(names)}")
    kwargs = {k: _check_value(v, hints[k], prefix + k) for k, v in values.items()}
    return cls(**kwargs)


def _model_options_cls(name: str) -> type:
    from probpose.training.registry import get_model_spec

    try:
        return get_model_spec(name).options
    except KeyError as e:
        raise ConfigError(str(e.args[0])) from None


def config_from_dict(d: dict) -> ExperimentConfig:
    """Validate a plain dict (as in a YAML file) into an :class:`ExperimentConfig`."""
    if not isinstance(d, dict):
        raise ConfigError(f"a config must be a mapping, got {type(d).__name__}")
    top = [f.name for f in dataclasses.fields(ExperimentConfig)]
    unknown = [k for k in d if k not in top]
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r} (top level); valid keys: {', '.join(top)}")
    model = dict(d.get("model") or {})
    name = model.pop("name", "gaussian")
    if not isinstance(name, str):
        raise ConfigError(f"model.name: expected a string, got {name!r}")
    options_cls = _model_options_cls(name)
    try:
        options = _build(options_cls, model, "model.")
    except ConfigError as e:
        if "unknown key" in str(e):
            valid = ", ".join(["name", *(f.name for f in dataclasses.fields(options_cls))])
            raise ConfigError(f"{str(e).split(';')[0]}; valid keys: {valid}") from None
        raise
    return ExperimentConfig(
        name=_check_value(d.get("name", "experiment"), str, "name"),
        data=_build(DataConfig, d.get("data") or {}, "data."),
        model=ModelConfig(name, options),
        training=_build(TrainingConfig, d.get("training") or {}, "training."),
        output=_build(OutputConfig, d.get("output") or {}, "output."),
    )


def config_to_dict(cfg: ExperimentConfig) -> dict:
    """The plain-dict form (YAML- and checkpoint-safe) of a config."""
    return {
        "name": cfg.name,
        "data": dataclasses.asdict(cfg.data),
        "model": {"name": cfg.model.name, **dataclasses.asdict(cfg.model.options)},
        "training": dataclasses.asdict(cfg.training),
        "output": dataclasses.asdict(cfg.output),
    }


def flatten_dict(d: dict, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}} -> {"a.b": 1}``."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten_dict(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"training.lr=1e-3"`` -> ``(["training", "lr"], 0.001)``; the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    key, raw = text.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"override {text!r}: empty key part")
    try:
        value = _yaml_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({e})") from None
    return parts, value


def apply_overrides(d: dict, overrides: list[str]) -> dict:
    """Return a copy of the config dict with ``overrides`` applied (validated later)."""
    out = _yaml_load(yaml.safe_dump(d)) or {}
    for text in overrides:
        parts, value = parse_override(text)
        node = out
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"override {text!r}: {'.'.join(parts[: i + 1])} is not a section")
            node = nxt
        node[parts[-1]] = value
    return out


def find_config(name: str) -> Path:
    """A config by path, or by name in ``experiments/configs/`` (current folder, then the source
    checkout that holds this package)."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return p
    candidates = [
        Path.cwd() / "experiments" / "configs" / f"{name}.yaml",
        Path(__file__).resolve().parents[2] / "experiments" / "configs" / f"{name}.yaml",
    ]
    for c in candidates:
        if c.is_file():
            return c
    searched = ", ".join(str(c) for c in candidates)
    raise ConfigError(f"no config {name!r}: give a .yaml path or a name in experiments/configs (searched {searched})")


def load_config(name_or_path: str, overrides: list[str] | None = None) -> ExperimentConfig:
    """Load a YAML config (see :func:`find_config`), apply ``overrides`` and validate."""
    path = find_config(name_or_path)
    try:
        raw = _yaml_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    return config_from_dict(apply_overrides(raw, overrides or []))
