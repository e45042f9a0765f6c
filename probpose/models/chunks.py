"""Chunk sources: poses given pass by pass, so closed-form fits never need the data in memory."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from torch import Tensor

__all__ = ["Chunks", "as_chunks"]

Chunks = Callable[[], Iterator[Tensor]]
"""A re-iterable source of pose chunks ``(n, J, 3)``: called once per pass over the data."""

_CHUNK = 65536


def as_chunks(data: Tensor | Chunks, chunk: int = _CHUNK) -> Chunks:
    """Poses ``(N, J, 3)`` (or an existing chunk source) as a chunk source."""
    if callable(data):
        return data
    return lambda: iter(data.split(chunk))
