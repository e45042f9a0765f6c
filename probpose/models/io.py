"""Model files: what a checkpoint holds, writing one atomically, and loading one safely.

A checkpoint is a dict of tensors and plain containers, loaded with ``torch.load(...,
weights_only=True)`` (nothing is unpickled)::

    format: "probpose-checkpoint", version: 1,
    model_name, model_options (dict), skeleton (dict),
    model (state dict), best_model (state dict, optional: the weights to use), ...

The trainer adds its resumable state (optimiser, step, config) to the same dict. Every way a file
can fail to be such a checkpoint is a :class:`~probpose.errors.CheckpointError` naming the file.
"""

from __future__ import annotations

import dataclasses
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from probpose.errors import CheckpointError, ProbposeError
from probpose.files import atomic_path, input_file
from probpose.models.base import PoseModel
from probpose.models.registry import build_model, get_model_spec, registry_name_of
from probpose.skeleton import Skeleton

__all__ = [
    "CHECKPOINT_FORMAT",
    "model_payload",
    "save_model",
    "read_checkpoint",
    "load_model",
    "pretrained",
    "resolve_model_path",
]

CHECKPOINT_FORMAT = "probpose-checkpoint"
CHECKPOINT_VERSION = 1


def model_payload(model: PoseModel, state: dict | None = None) -> dict:
    """The model part of a checkpoint: how to rebuild it and its weights (``state``, default the
    model's own)."""
    return {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model_name": registry_name_of(model),
        "model_options": dataclasses.asdict(model.options),
        "skeleton": model.skeleton.to_dict(),
        "model": state if state is not None else model.state_dict(),
    }


def save_model(path: str | Path, model: PoseModel, **extra: Any) -> Path:
    """Write ``model`` (and ``extra`` entries of tensors and plain containers) to ``path``,
    atomically; it loads back with :func:`load_model`."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save({**model_payload(model), **extra}, tmp)
    return path


PRETRAINED_ROOT = Path(__file__).resolve().parent / "pretrained"
"""Where the shipped priors live: ``pretrained/<data>/<model>.pt`` with a ``.json`` model card."""


def pretrained() -> dict[str, Path]:
    """The shipped pretrained priors: ``"cmu/joint_flow"`` -> checkpoint path (each with a model
    card, ``<name>.json`` beside it)."""
    return {f"{p.parent.name}/{p.stem}": p for p in sorted(PRETRAINED_ROOT.glob("*/*.pt"))}


def resolve_model_path(path: str | Path) -> Path:
    """``path`` itself, or, where no such file exists and it names a shipped prior
    (``"cmu/joint_flow"``), that prior's checkpoint. An empty name or one with a NUL character is a
    :class:`CheckpointError`."""
    if not str(path) or "\x00" in str(path):
        raise CheckpointError(repr(str(path))[:60], None, "not a file name or a shipped prior's name (cmu/NAME)")
    path = Path(path)
    if not path.exists() and (shipped := pretrained().get(path.as_posix().removesuffix(".pt"))) is not None:
        return shipped
    return path


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint dict with ``weights_only=True`` (tensors and plain containers only)."""
    path = input_file(path, "checkpoint", CheckpointError)
    try:
        ck = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "GLOBAL" in str(e):  # a pickled object other than tensors and plain containers
            raise CheckpointError(
                str(path),
                None,
                "holds objects that safe loading refuses; probpose loads checkpoints only with "
                "weights_only=True (tensors and plain containers) and never unpickles anything else",
            ) from None
        raise CheckpointError(str(path), None, "not a torch checkpoint (unreadable or corrupt data)") from None
    except (EOFError, zipfile.BadZipFile, OSError, RuntimeError, ValueError, TypeError, KeyError, IndexError) as e:
        reason = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise CheckpointError(str(path), None, f"not a readable torch checkpoint ({reason})") from None
    if not isinstance(ck, dict):
        raise CheckpointError(
            str(path), None, f"expected a dict, found a {type(ck).__name__}: not a probpose checkpoint"
        )
    return ck


def _identity(ck: dict, path: Path) -> tuple[str, dict, Skeleton]:
    if "model_name" in ck:
        name, options = ck["model_name"], ck.get("model_options", {})
    elif isinstance(ck.get("config"), dict) and isinstance(ck["config"].get("model"), dict):
        options = dict(ck["config"]["model"])  # written before checkpoints named their model
        name = options.pop("name", None)
    else:
        raise CheckpointError(str(path), "model_name", "missing: not a probpose model checkpoint")
    if not isinstance(name, str) or not isinstance(options, dict):
        raise CheckpointError(str(path), "model_name", "malformed model name or options")
    try:
        skeleton = Skeleton.from_dict(ck["skeleton"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(str(path), "skeleton", f"missing or invalid ({e})") from None
    return name, options, skeleton


def _options_added_since(name: str, options: dict) -> dict:
    """A checkpoint names every option its model had when written (``dataclasses.asdict``); an
    option added since takes its dataclass default -- the behaviour before the option existed
    (docs/architecture.md, "Adding a prior") -- not the registry's default, which may differ."""
    spec = get_model_spec(name)
    return {
        f.name: f.default
        for f in dataclasses.fields(spec.options)
        if f.name not in options and f.name not in spec.fixed and f.default is not dataclasses.MISSING
    }


def load_model(path: str | Path, map_location: str | torch.device = "cpu", trainable: bool = False) -> PoseModel:
    """Rebuild a trained model from a checkpoint -- a file, or a shipped prior's name such as
    ``"cmu/joint_flow"`` (:func:`pretrained`) -- from its registry name and options, skeleton and
    the weights to use (``best_model`` where present, else ``model``), in the floating-point dtype
    they were saved in. The model comes in eval mode with its weights frozen (a prior used inside
    a user's Pyro model costs no gradients); ``trainable=True``: train mode, weights trainable.

    Example:
        >>> from probpose.models import load_model
        >>> prior_model = load_model("cmu/gaussian_full")  # a shipped prior, or a checkpoint's path
        >>> prior_model.registry_name, len(prior_model.modelled_names)
        ('gaussian_full', 21)
        >>> prior = prior_model()  # a Pyro distribution over (21, 3) axis-angle poses
        >>> prior.event_shape, prior.log_prob(prior.sample((2,))).shape
        (torch.Size([21, 3]), torch.Size([2]))
    """
    path = resolve_model_path(path)
    ck = read_checkpoint(path, map_location)
    name, options, skeleton = _identity(ck, path)
    state = ck.get("best_model") or ck.get("model")
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(str(path), "model", "missing or not a state dict of tensors")
    try:
        if "model_name" in ck:
            options = {**_options_added_since(name, options), **options}
        model = build_model(name, skeleton, options)
    except (ProbposeError, ValueError, TypeError) as e:  # an unknown name, options out of range or of a wrong type
        reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise CheckpointError(str(path), "model_name", reason) from None
    expected = model.state_dict()
    for key, value in state.items():
        want = expected.get(key)
        if want is None or not want.is_floating_point():
            continue  # an unknown key is load_state_dict's to name; masks and counters are not weights
        if value.dtype not in (torch.float32, torch.float64):
            why = f"weights of dtype {value.dtype}; float32 or float64 expected"
            raise CheckpointError(str(path), f"model.{key}", why)
        if not torch.isfinite(value).all():
            raise CheckpointError(str(path), f"model.{key}", "holds NaN or infinite weights: the model cannot be used")
    floats = [v.dtype for v in state.values() if v.is_floating_point()]  # masks and counters are not
    if floats:  # before loading: float64 weights copied into float32 parameters would be rounded
        model = model.to(dtype=floats[0])
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        reason = str(e).splitlines()[0][:200]
        raise CheckpointError(str(path), "model", f"weights do not fit model {name!r} ({reason})") from None
    model.train(trainable)
    model.requires_grad_(trainable)
    return model
