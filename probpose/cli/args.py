"""From flags to a typed request: every command's flags are named after its request's fields
(``--segment-seconds`` is ``segment_seconds``), argparse only turns text into numbers and paths, and
the request checks every value when it is built (:func:`probpose.options.validate`), so a setting is
checked in one place whether it comes from the command line or from Python."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any, TypeVar

from probpose.errors import ConfigError, short_repr

__all__ = ["request", "flag", "png_path", "Subparsers"]

T = TypeVar("T")
Subparsers = argparse._SubParsersAction


def request(cls: type[T], args: argparse.Namespace, **values: Any) -> T:
    """``cls`` (a request dataclass) from the parsed flags of the same names, plus ``values``; flags
    left unset (None) take the request's defaults."""
    given = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if f.init and getattr(args, f.name, None) is not None
    }
    return cls(**{**given, **values})


def _shown(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(_shown(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def flag(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    name: str,
    help: str,
    show_default: bool = True,
    **kw: Any,
) -> None:
    """Add ``--name`` (dashes for underscores) for the field ``name`` of the request ``cls``: unset,
    it is None and the request's default applies; the help ends with that default, read from the
    request, so the two cannot disagree (``show_default=False`` where the help says it in words)."""
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    default = f.default if f.default is not dataclasses.MISSING else None
    if f.default_factory is not dataclasses.MISSING:
        default = f.default_factory()
    shown = show_default and kw.get("action") not in ("store_true", "store_const")
    empty = default is None or default is False or (isinstance(default, (list, tuple)) and not default)
    if shown and not empty:
        help = f"{help} (default {_shown(default)})"
    parser.add_argument("--" + name.replace("_", "-"), dest=name, default=None, help=help, **kw)


def png_path(path: Path, key: str) -> Path:
    """``path`` if it names a ``.png`` (a picture the command draws); a :class:`ConfigError`
    otherwise, so that a picture never lands under another format's name."""
    if Path(path).suffix.lower() != ".png":
        raise ConfigError(f"{key}: {short_repr(str(path), 60)} must end in .png (the picture is a PNG)")
    return Path(path)
