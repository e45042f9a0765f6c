"""Typed option dataclasses built from plain dicts (YAML configs, checkpoints), with type and range
checks that name the key and the valid range.

A field declares its range with :func:`option`::

    @dataclass
    class TrainingConfig:
        lr: float = option(1e-2, gt=0)
        gamma: float = option(0.5, gt=0, le=1)

Floats must be finite unless a field says otherwise. Values in error messages are cut short
(:func:`~probpose.errors.short_repr`), so a huge value is never echoed.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from dataclasses import MISSING, Field
from typing import Any, Literal

from probpose.errors import ConfigError, short_repr

__all__ = [
    "option",
    "from_dict",
    "check_value",
    "validate",
    "field_names",
    "check_device",
    "CHUNK_ROWS",
    "MAX_COUNT",
    "MAX_PIXELS",
    "MAX_IMAGE_PIXELS",
    "MAX_JOINTS",
    "MAX_WIDTH",
    "MAX_DEPTH",
    "MAX_SEED",
]


def _limit(name: str, default: int, low: int = 1, high: int = 10**12) -> int:
    """A limit, overridable by the environment variable ``PROBPOSE_<NAME>``: an integer in
    ``[low, high]``; anything else is a :class:`ConfigError` naming the variable and its range
    (the command line prints it as one line, before any command runs)."""
    text = os.environ.get(f"PROBPOSE_{name}")
    if text is None:
        return default
    try:
        value = int(text.strip().replace("_", ""))
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise ConfigError(
            f"environment variable PROBPOSE_{name}={short_repr(text, 40)}: expected an integer in [{low:,}, {high:,}] "
            f"(default {default:,})"
        )
    return value


MAX_SEED = 2**63 - 1
"""The largest seed any option takes (torch's generators take a 64-bit integer)."""

CHUNK_ROWS = 65536
"""Poses per chunk when data is read pass by pass (store splits, closed-form fits, scoring)."""

# The limits every command checks before it reserves memory, in one place. Each can be raised for a
# job that legitimately needs more by setting PROBPOSE_<NAME> (for example PROBPOSE_MAX_COUNT=50000000).

MAX_COUNT = _limit("MAX_COUNT", 10_000_000, 1, 10**12)
"""The most poses or frames one command makes or lists (``sample --n``, ``synth --n-frames``,
``evaluate --worst``) and the most frames one motion file may hold after ``--fps`` resampling:
beyond it memory runs out before the work is done; split larger jobs."""

MAX_PIXELS = _limit("MAX_PIXELS", 4096 * 4096, 64 * 64, 2**31 - 1)
"""The largest image one frame may have (width x height): rendering buffers grow with it."""

MAX_IMAGE_PIXELS = _limit("MAX_IMAGE_PIXELS", 100_000_000, 64 * 64, 2**31 - 1)
"""The largest image probpose decodes (a style photograph or background, width x height): its
header is checked before any pixel is decoded."""

MAX_JOINTS = _limit("MAX_JOINTS", 1024, 55, 100_000)
"""The most joints a skeleton (in a checkpoint, a store or a motion file) may have (at least
SMPL-X's 55, which probpose builds on import)."""

MAX_WIDTH = _limit("MAX_WIDTH", 8192, 1, 65536)
"""The widest layer a model's options may ask for (``hidden``, ``z_dim``, spline bins, mixture
components): checked before the model is built."""

MAX_DEPTH = _limit("MAX_DEPTH", 256, 1, 4096)
"""The most layers (flow steps ``K``, hidden ``layers``) a model's options may ask for."""


def check_device(value: object, key: str = "device") -> str:
    """A device name that exists on this machine (``cpu``, ``cuda``, ``cuda:N``), returned as given;
    anything else is a :class:`~probpose.errors.ConfigError` naming ``key`` (one place for every
    command and config that takes a device)."""
    import torch

    try:
        dev = torch.device(value)  # type: ignore[call-overload]  # any value: torch says whether it is one
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"{key}: {short_repr(value)} is not a device; cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"{key}: {short_repr(value)} is not supported; cpu, cuda or cuda:N")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{key}: {value} asked for, but this machine has no usable CUDA device")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise ConfigError(f"{key}: {value} asked for, but this machine has {count} CUDA device(s)")
    return str(value)


def option(
    default: Any = MISSING,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    allow_inf: bool = False,
    default_factory: Any = MISSING,
) -> Any:
    """A dataclass field with a numeric range (inclusive ``ge``/``le``, exclusive ``gt``/``lt``)."""
    meta = {"range": (ge, gt, le, lt), "allow_inf": allow_inf}
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _bound(x: float) -> str:
    return f"{x:,}" if isinstance(x, int) else f"{x:g}"


def _range_text(ge: float | None, gt: float | None, le: float | None, lt: float | None) -> str:
    lo = f"[{_bound(ge)}" if ge is not None else f"({_bound(gt)}" if gt is not None else "(-inf"
    hi = f"{_bound(le)}]" if le is not None else f"{_bound(lt)})" if lt is not None else "inf)"
    return f"{lo}, {hi}"


def _check_range(value: Any, f: Field, key: str) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    if isinstance(value, float) and not math.isfinite(value) and not f.metadata.get("allow_inf", False):
        raise ConfigError(f"{key}: must be a finite number, got {short_repr(value)}")
    ge, gt, le, lt = f.metadata.get("range", (None, None, None, None))
    ok = (
        (ge is None or value >= ge)
        and (gt is None or value > gt)
        and (le is None or value <= le)
        and (lt is None or value < lt)
    )
    if not ok:
        raise ConfigError(f"{key}: {short_repr(value)} is outside the valid range {_range_text(ge, gt, le, lt)}")


def check_value(value: Any, hint: Any, key: str) -> Any:
    """``value`` converted to the annotation ``hint`` (int -> float where a float is expected),
    or :class:`ConfigError` naming ``key``."""
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
                return check_value(value, arg, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{key}: invalid value {short_repr(value)}")
    if origin is Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            raise ConfigError(f"{key}: {short_repr(value)} is not one of {', '.join(map(repr, allowed))}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {short_repr(value)}")
        try:
            return float(value)
        except OverflowError:
            raise ConfigError(f"{key}: {short_repr(value)} is too large for a number") from None
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {short_repr(value)}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {short_repr(value)}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {short_repr(value)}")
        return value
    raise ConfigError(f"{key}: unsupported option type {hint!r}")


def _checkable(hint: Any) -> bool:
    """Whether :func:`check_value` knows the annotation ``hint`` (numbers, strings, booleans, choices,
    and optional ones); other fields (paths, lists) are typed by their own code."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return all(a is type(None) or _checkable(a) for a in typing.get_args(hint))
    return origin is Literal or hint in (int, float, bool, str)


def validate(instance: Any) -> None:
    """Check every field of the dataclass ``instance`` built in Python: its type (choices of a
    ``Literal``, numbers, strings, booleans; an int becomes a float where a float is declared) and
    its declared :func:`option` range. The one way settings are checked: every options class and
    request calls it from ``__post_init__`` (configs and checkpoints reach it through
    :func:`from_dict`). Errors are :class:`ConfigError` naming the field as `` `name` `` (the command
    line shows it as its ``--flag``)."""
    hints = typing.get_type_hints(type(instance))
    for f in dataclasses.fields(instance):
        key, value = f"`{f.name}`", getattr(instance, f.name)
        if _checkable(hints[f.name]):
            checked = check_value(value, hints[f.name], key)
            if checked is not value:
                object.__setattr__(instance, f.name, checked)  # frozen dataclasses too
            value = checked
        _check_range(value, f, key)


def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def from_dict(cls: type, values: Any, prefix: str = "") -> Any:
    """An instance of the dataclass ``cls`` from a mapping: unknown keys, wrong types and values
    out of range are :class:`ConfigError` naming ``prefix + key`` (and, for unknown keys, the valid
    ones). Missing keys take the field defaults."""
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {short_repr(values)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in values if k not in fields]
    if unknown:
        where = prefix.rstrip(".") or "top level"
        raise ConfigError(
            f"unknown key {short_repr(prefix + str(unknown[0]))} ({where}); valid keys: {', '.join(fields)}"
        )
    kwargs = {}
    for k, v in values.items():
        kwargs[k] = check_value(v, hints[k], prefix + k)
        _check_range(kwargs[k], fields[k], prefix + k)
    return cls(**kwargs)
