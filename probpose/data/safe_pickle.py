"""Load pickles that may hold only NumPy arrays and plain containers.

A pickle can run arbitrary code when loaded naively. :func:`safe_load` admits only the few globals
NumPy needs to rebuild numeric arrays, dtypes and scalars, and afterwards checks that the result
holds nothing but dicts, lists, tuples, strings, numbers, ``None`` and non-object NumPy arrays.
"""

from __future__ import annotations

import codecs
import io
import pickle
from typing import Any

import numpy as np

__all__ = ["safe_load", "UnsafePickleError", "MAX_DEPTH", "MAX_NODES"]

# (module, name) -> the object to return. numpy.core was renamed numpy._core in NumPy 2; pickles
# written by either version name one of them.
_ALLOWED: dict[tuple[str, str], Any] = {}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_mod, "_reconstruct")] = np.ndarray.__reduce__(np.zeros(0))[0]
    _ALLOWED[(_mod, "scalar")] = np.float64(0).__reduce__()[0]
_ALLOWED[("numpy", "ndarray")] = np.ndarray
# Protocol 0-2 pickles (Python 2 era files) rebuild bytes with _codecs.encode(str, "latin1"): a
# pure text transform.
_ALLOWED[("_codecs", "encode")] = codecs.encode
_ALLOWED[("numpy", "dtype")] = np.dtype
for _mod in ("numpy.dtypes",):
    for _name in ("Float32DType", "Float64DType", "Int32DType", "Int64DType", "BoolDType", "UInt8DType"):
        if hasattr(np.dtypes, _name):
            _ALLOWED[(_mod, _name)] = getattr(np.dtypes, _name)


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle asked for something other than NumPy arrays and plain containers."""


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to load global {module}.{name}: only NumPy arrays are admitted"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("refusing persistent ids")


MAX_DEPTH = 64
"""Deepest nesting of containers admitted (pose files nest two or three levels)."""
MAX_NODES = 1_000_000
"""Most containers and values admitted in one pickle."""


def _check_plain(root: Any) -> None:
    """Walk the unpickled object once, iteratively: each container is visited once however often it
    is shared (a pickle of shared nested lists would otherwise take exponential time), nesting is
    limited to :data:`MAX_DEPTH` and the number of nodes to :data:`MAX_NODES`."""
    seen: set[int] = set()
    stack: list[tuple[Any, str, int]] = [(root, "root", 0)]
    nodes = 0
    while stack:
        obj, where, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise UnsafePickleError(f"more than {MAX_NODES:,} objects: refused")
        if isinstance(obj, np.ndarray):
            if obj.dtype.hasobject:
                raise UnsafePickleError(f"{where}: object arrays are not admitted")
            continue
        if isinstance(obj, (str, bytes, int, float, bool, type(None), np.generic)):
            continue
        if not isinstance(obj, (dict, list, tuple)):
            raise UnsafePickleError(f"{where}: value of type {type(obj).__name__} is not admitted")
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if depth >= MAX_DEPTH:
            raise UnsafePickleError(f"{where}: nested deeper than {MAX_DEPTH} levels: refused")
        if isinstance(obj, dict):
            for k, v in obj.items():
                if not isinstance(k, (str, int)):
                    raise UnsafePickleError(f"{where}: dict key of type {type(k).__name__} is not admitted")
                stack.append((v, f"{where}[{k!r:.40}]", depth + 1))
        else:
            stack.extend((v, f"{where}[{i}]", depth + 1) for i, v in enumerate(obj))


def safe_load(data: bytes) -> Any:
    """Unpickle ``data`` admitting only NumPy arrays, NumPy scalars and plain containers.

    Raises :class:`UnsafePickleError` for anything else (before constructing it, for globals), and
    for containers nested deeper than :data:`MAX_DEPTH` or more than :data:`MAX_NODES` objects.
    Time is linear in the pickle's size."""
    obj = _RestrictedUnpickler(io.BytesIO(data)).load()
    _check_plain(obj)
    return obj
