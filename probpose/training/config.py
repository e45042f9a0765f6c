"""Experiment configuration: YAML files loaded into dataclasses, with dotted overrides.

A config file has four sections (every key optional; defaults below)::

    name: gaussian_prior
    data:     {path: null, bundled: smplx, joints: null, split: 80/10/10, split_seed: 0, ...}
    model:    {name: gaussian, ...options of that model (see the registry)...}
    training: {fit: svi, optimizer: adam, lr: 0.01, ...}
    output:   {dir: runs, tensorboard: true, checkpoint_every: 500}

``--override a.b=c`` sets one key; ``c`` is parsed as YAML (so ``1e-3`` is a float, ``null`` is
``None``) and must have the key's type and lie in its range. An unknown key is an error listing
the valid keys. Configs are small: a file over :data:`MAX_CONFIG_BYTES`, an override over
:data:`MAX_OVERRIDE_BYTES`, YAML anchors/aliases (which can expand a few hundred bytes into
gigabytes) and more than :data:`MAX_NODES` YAML nodes are refused before anything is built.

Overriding ``model.name`` builds that model: its registry defaults, then the file's model keys that
apply to it (the others are dropped, with a warning), then the overrides. Overriding ``data.path``
alone takes the joints from that store.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from probpose.errors import ConfigError, DataError, ProbposeError, short_repr
from probpose.files import input_file
from probpose.models import get_model_spec, model_options
from probpose.options import MAX_SEED, check_device, from_dict, option, validate
from probpose.safe_yaml import YamlRefused, load_yaml, read_yaml_file

__all__ = [
    "ConfigError",
    "DataConfig",
    "TrainingConfig",
    "OutputConfig",
    "ModelConfig",
    "ExperimentConfig",
    "MAX_CONFIG_BYTES",
    "MAX_OVERRIDE_BYTES",
    "MAX_NODES",
    "parse_override",
    "apply_overrides",
    "load_config",
    "config_from_dict",
    "config_to_dict",
    "flatten_dict",
    "find_config",
]

log = logging.getLogger(__name__)

MAX_CONFIG_BYTES = 64 * 1024
"""Largest config file read (the shipped ones are about 1 KB)."""
MAX_OVERRIDE_BYTES = 1024
"""Longest ``--override`` accepted."""
MAX_NODES = 5000
"""Most YAML nodes in one config or override."""
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
"""A run name is one folder name: letters, digits, '.', '_' and '-' (it cannot leave output.dir)."""


def _yaml_load(text: str, what: str, limit: int) -> Any:
    try:
        return load_yaml(text, limit, MAX_NODES)
    except YamlRefused as e:
        raise ConfigError(f"{what}: {e}") from None


@dataclass
class DataConfig:
    """``path``: an HDF5 store from ``probpose import``; ``null`` imports the ``bundled`` set
    (only its files that record ``joints``) with ``split``, ``split_seed``, ``segment_seconds``
    and ``guard_seconds`` (see :func:`probpose.data.split_poses`). ``joints``: ``null`` takes the
    store's joints (or, for the bundled data, the skeleton's default selection). ``streaming``:
    read batches from the store instead of loading the splits (``null``: when the training split
    holds more than 500,000 poses)."""

    path: str | None = None
    streaming: bool | None = None
    bundled: str = "smplx"
    joints: str | None = None
    split: str = "80/10/10"
    split_seed: int = option(0, ge=0, le=MAX_SEED)
    segment_seconds: float = option(1.0, gt=0)
    guard_seconds: float = option(0.1, ge=0)

    def __post_init__(self) -> None:
        validate(self)


@dataclass
class TrainingConfig:
    """How a model is fitted.

    ``fit``: ``svi`` (stochastic gradient on the negative ELBO per pose) or ``closed_form``
    (exact maximum likelihood, where the model has one). ``patience``: evaluations without a
    better validation NLL before stopping (0: never stop early). ``clip_norm``: gradient norm
    clipping (``null``: none). ``schedule``: ``none``, ``step`` (x ``gamma`` every ``step_size``
    steps), ``cosine`` (to 0 at ``max_steps``) or ``plateau`` (x ``gamma`` after
    ``plateau_patience`` evaluations without improvement). ``max_seconds``: stop (after a final
    validation) once this much wall-clock time has been spent (``null``: no limit). ``noise``:
    standard deviation (radians) of Gaussian noise added to every training batch -- a regulariser
    at the scale of motion-capture noise that keeps a flow from fitting structure in directions
    the training poses barely vary in (0: none). ``val_poses``: validate on at most this many
    poses, evenly spaced over the validation split (0: all). ``init_poses``: data-dependent
    initialisation (ActNorm, Gaussian layers) from at most this many training poses.
    """

    fit: Literal["svi", "closed_form"] = "svi"
    optimizer: Literal["adam", "clipped_adam"] = "adam"
    lr: float = option(1e-2, gt=0)
    weight_decay: float = option(0.0, ge=0)
    batch_size: int = option(256, ge=1)
    max_steps: int = option(2000, ge=0)
    schedule: Literal["none", "step", "cosine", "plateau"] = "none"
    step_size: int = option(1000, ge=1)
    gamma: float = option(0.5, gt=0, le=1)
    plateau_patience: int = option(5, ge=0)
    clip_norm: float | None = option(10.0, gt=0)
    eval_every: int = option(50, ge=1)
    patience: int = option(20, ge=0)
    max_seconds: float | None = option(None, gt=0)
    noise: float = option(0.0, ge=0)
    val_poses: int = option(20000, ge=0)
    init_poses: int = option(100000, ge=1)
    seed: int = option(0, ge=0, le=MAX_SEED)
    device: str = "cpu"
    dtype: Literal["float32", "float64"] = "float32"

    def __post_init__(self) -> None:
        validate(self)


@dataclass
class OutputConfig:
    """``dir``: parent folder of run folders (``<dir>/<name>``)."""

    dir: str = "runs"
    tensorboard: bool = True
    checkpoint_every: int = option(500, ge=1)

    def __post_init__(self) -> None:
        validate(self)


@dataclass
class ModelConfig:
    """``name`` of a registered model and its options dataclass."""

    name: str
    options: Any


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=lambda: ModelConfig("gaussian", model_options("gaussian")))
    training: TrainingConfig = field(default_factory=TrainingConfig)
    output: OutputConfig = field(default_factory=OutputConfig)


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not RUN_NAME.fullmatch(name) or name in (".", ".."):
        raise ConfigError(
            f"name: {short_repr(name)} is not a run name: use letters, digits, '.', '_' and '-' "
            "(one folder inside output.dir)"
        )
    return name


def config_from_dict(d: Any) -> ExperimentConfig:
    """Validate a plain dict (as in a YAML file) into an :class:`ExperimentConfig`."""
    if not isinstance(d, dict):
        raise ConfigError(f"a config must be a mapping, got {type(d).__name__}")
    top = [f.name for f in dataclasses.fields(ExperimentConfig)]
    unknown = [k for k in d if k not in top]
    if unknown:
        raise ConfigError(f"unknown key {short_repr(unknown[0])} (top level); valid keys: {', '.join(top)}")
    model = d.get("model") or {}
    if not isinstance(model, dict):
        raise ConfigError(f"model: expected a mapping, got {short_repr(model)}")
    model = dict(model)
    name = model.pop("name", "gaussian")
    if not isinstance(name, str):
        raise ConfigError(f"model.name: expected a string, got {short_repr(name)}")
    try:
        get_model_spec(name)
    except ProbposeError as e:
        raise ConfigError(f"model.name: {e}") from None
    training = from_dict(TrainingConfig, d.get("training") or {}, "training.")
    check_device(training.device, "training.device")  # before a run folder is made
    return ExperimentConfig(
        name=_check_name(d.get("name", "experiment")),
        data=from_dict(DataConfig, d.get("data") or {}, "data."),
        model=ModelConfig(name, model_options(name, model)),
        training=training,
        output=from_dict(OutputConfig, d.get("output") or {}, "output."),
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
    if len(text.encode("utf-8", "surrogatepass")) > MAX_OVERRIDE_BYTES:
        raise ConfigError(f"override {short_repr(text)}: longer than {MAX_OVERRIDE_BYTES} bytes; refused")
    if "=" not in text:
        raise ConfigError(f"override {short_repr(text)} must look like section.key=value")
    key, raw = text.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"override {short_repr(text)}: empty key part")
    value = _yaml_load(raw, f"override {short_repr(key)}", MAX_OVERRIDE_BYTES) if raw.strip() else ""
    return parts, value


def _copy(d: Any) -> Any:
    """A deep copy of plain YAML data (dicts and lists; anchors are refused, so it is a tree)."""
    if isinstance(d, dict):
        return {k: _copy(v) for k, v in d.items()}
    if isinstance(d, list):
        return [_copy(v) for v in d]
    return d


def apply_overrides(d: dict, overrides: list[str]) -> dict:
    """Return a copy of the config dict with ``overrides`` applied (validated later).

    Overriding ``model.name`` to another model keeps only the file's model keys that the new
    model has and that do not contradict what its name fixes (the rest are dropped, with a
    warning); overriding ``data.path`` without ``data.joints`` drops the file's ``data.joints``
    (the store's joints are used)."""
    if not isinstance(d, dict):
        raise ConfigError(f"a config must be a mapping, got {type(d).__name__}")
    out = _copy(d)
    parsed = [parse_override(text) for text in overrides]
    keys = {".".join(parts) for parts, _ in parsed}
    new_model = next((v for parts, v in reversed(parsed) if parts == ["model", "name"]), None)
    file_model = out.get("model") if isinstance(out.get("model"), dict) else None
    if isinstance(new_model, str) and file_model is not None and new_model != file_model.get("name", "gaussian"):
        try:
            spec = get_model_spec(new_model)
        except ProbposeError as e:
            raise ConfigError(f"model.name: {e}") from None
        kept = {k: v for k, v in file_model.items() if k in spec.option_names and k not in spec.fixed}
        dropped = sorted(k for k in file_model if k != "name" and k not in kept)
        if dropped:
            log.warning(
                "model.name=%s: the config file's model keys %s do not apply to it; dropped",
                new_model,
                ", ".join(dropped),
            )
        out["model"] = kept
        if "name" not in keys:
            out["name"] = f"{out.get('name', 'experiment')}-{new_model}"
    if "data.path" in keys and "data.joints" not in keys and isinstance(out.get("data"), dict):
        out["data"].pop("joints", None)
    for text, (parts, value) in zip(overrides, parsed, strict=True):
        node = out
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"override {short_repr(text)}: {'.'.join(parts[: i + 1])} is not a section")
            node = nxt
        node[parts[-1]] = value
    return out


CONFIGS = Path(__file__).resolve().parent / "configs"
"""The configs shipped with probpose (package data: found from a wheel as from a checkout)."""


def find_config(name: str) -> Path:
    """A config by path (``.yaml``), or by name: ``experiments/configs/NAME.yaml`` under the current
    folder (a project's own, which wins), then the shipped ``probpose/training/configs/NAME.yaml``."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml"):
        try:
            return input_file(p, "config")
        except DataError as e:
            raise ConfigError(str(e)) from None
    candidates = [Path.cwd() / "experiments" / "configs" / f"{name}.yaml", CONFIGS / f"{name}.yaml"]
    for c in candidates:
        if c.is_file():
            return c
    shipped = ", ".join(sorted(c.stem for c in CONFIGS.glob("*.yaml")))
    raise ConfigError(
        f"no config {short_repr(name)}: give a .yaml path or a shipped name ({shipped}); "
        f"searched {', '.join(str(c) for c in candidates)}"
    )


def load_config(name_or_path: str, overrides: list[str] | None = None) -> ExperimentConfig:
    """Load a YAML config (see :func:`find_config`), apply ``overrides`` and validate."""
    path = find_config(name_or_path)
    try:
        raw = read_yaml_file(path, MAX_CONFIG_BYTES, MAX_NODES) or {}
    except YamlRefused as e:
        raise ConfigError(f"{path}: {e}") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot be read ({e.strerror or type(e).__name__})") from None
    try:
        return config_from_dict(apply_overrides(raw, overrides or []))
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
