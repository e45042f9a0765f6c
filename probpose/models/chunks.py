"""The one source of pose chunks: poses given pass by pass, so closed-form fits, training, scoring
and reports never need the data in memory (``CHUNK_ROWS`` poses at a time,
:data:`probpose.options.CHUNK_ROWS`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from torch import Tensor

from probpose.options import CHUNK_ROWS

__all__ = ["Chunks", "as_chunks", "pose_chunks"]

Chunks = Callable[[], Iterator[Tensor]]
"""A re-iterable source of pose chunks ``(n, J, 3)``: called once per pass over the data."""


def pose_chunks(poses: Any, rows: int = CHUNK_ROWS) -> Iterator[Tensor]:
    """One pass over poses ``(N, J, 3)``, ``rows`` at a time: a tensor (split), anything with
    ``chunks(rows)`` (a :class:`~probpose.data.StoreSplit` or a view of one), or a chunk source."""
    if isinstance(poses, Tensor):
        return iter(poses.split(rows))
    if hasattr(poses, "chunks"):
        return iter(poses.chunks(rows))
    if callable(poses):
        return iter(poses())
    raise TypeError(f"expected poses as a tensor, a store split or a chunk source, got {type(poses).__name__}")


def as_chunks(data: Any, rows: int = CHUNK_ROWS) -> Chunks:
    """Poses (anything :func:`pose_chunks` reads, or an existing chunk source) as a chunk source."""
    if callable(data) and not hasattr(data, "chunks"):
        return data
    return lambda: pose_chunks(data, rows)
