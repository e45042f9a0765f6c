"""From flags to a typed request: every command's flags are named after its request's fields
(``--segment-seconds`` is ``segment_seconds``), argparse only turns text into numbers and paths, and
the request checks every value when it is built (:func:`probpose.options.validate`), so a setting is
checked in one place whether it comes from the command line or from Python."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

from probpose.errors import ConfigError, DataError, short_repr
from probpose.files import write_error

__all__ = ["request", "flag", "png_path", "last_output", "Subparsers"]

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


@contextlib.contextmanager
def last_output(path: Path, kept: list[Path]) -> Iterator[None]:
    """Write ``path`` (a picture drawn after the command's main outputs ``kept`` were written): a
    write failure there (no space, read-only, ...) says that ``path`` was not written and that
    ``kept`` were, instead of the usual "nothing was kept"."""
    try:
        yield
    except OSError as e:
        if write_error(e) is None:
            raise
        why = os.strerror(e.errno) if e.errno else "could not write every byte"
        shown = ", ".join(str(p) for p in kept)
        raise DataError(str(path), None, f"{why}; this picture was not written, but {shown} were") from None
