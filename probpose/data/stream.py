"""Reading a store split without holding it in memory: chunks, samples and shuffled batches.

:class:`StoreSplit` names one split of a store. Training draws batches from it through
:meth:`StoreSplit.batches`: a shuffle buffer of contiguous blocks. Random single rows from a
gzip-chunked HDF5 file would decompress a whole chunk per row (4096 poses to use one), so instead
blocks of ``block_rows`` consecutive poses are read in a random order, ``buffer_rows`` of them are
shuffled together, and batches are cut from the shuffled buffer -- every pose is visited once per
pass, memory is the buffer, and the order is fixed by the seed. Consecutive frames are near
copies, so a buffer spanning many blocks mixes sequences well.

:meth:`StoreSplit.shard` gives one process of a distributed fit its own contiguous rows: it reads,
shuffles and batches those alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import h5py
import numpy as np
import torch
from torch import Tensor

from probpose.data.store import StoreInfo, check_poses, read_info, read_sample
from probpose.errors import DataError
from probpose.options import CHUNK_ROWS
from probpose.parallel import Group
from probpose.skeleton import Skeleton

__all__ = ["StoreSplit"]


@dataclass
class StoreSplit:
    """One split of a store, read lazily. ``len`` poses of ``skeleton``'s joints; ``start`` and
    ``stop`` (``None``: the whole split) restrict it to rows ``[start, stop)``."""

    path: Path
    split: str
    start: int = 0
    stop: int | None = None

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self.info: StoreInfo = read_info(self.path)
        if self.split not in self.info.sizes:
            raise DataError(str(self.path), None, f"unknown split {self.split!r}; one of {', '.join(self.info.sizes)}")
        size = self.info.sizes[self.split]
        self.stop = size if self.stop is None else self.stop
        if not 0 <= self.start <= self.stop <= size:
            where = f"{self.split}/poses"
            raise DataError(str(self.path), where, f"rows [{self.start}, {self.stop}) outside 0..{size}")

    def __len__(self) -> int:
        return self.end - self.start

    @property
    def end(self) -> int:
        """The row after the last (``stop`` once resolved)."""
        assert self.stop is not None  # resolved in __post_init__
        return self.stop

    def shard(self, rank: int, world_size: int) -> StoreSplit:
        """Process ``rank``'s contiguous share of these rows (shares follow rank order and differ by
        at most one row)."""
        rows = Group(rank, world_size).shard(len(self))
        return replace(self, start=self.start + rows.start, stop=self.start + rows.stop)

    @property
    def skeleton(self) -> Skeleton:
        return self.info.skeleton

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self), self.info.skeleton.num_joints, 3)

    def chunks(self, rows: int = CHUNK_ROWS) -> Iterator[Tensor]:
        """These rows in order, ``rows`` poses at a time, as float32 tensors ``(n, J, 3)`` (checked finite)."""
        with h5py.File(self.path, "r") as f:
            dset = f[self.split]["poses"]
            for start in range(self.start, self.end, rows):
                block = check_poses(dset[start : min(start + rows, self.end)], self.path, self.split, start)
                yield torch.from_numpy(block)

    def sample(self, n: int) -> Tensor:
        """At most ``n`` poses, evenly spaced over these rows (for initialisation and validation)."""
        if (self.start, self.stop) == (0, self.info.sizes[self.split]):
            return torch.from_numpy(read_sample(self.path, self.split, n))
        step = max(1, -(-len(self) // n)) if n else 1
        parts, k = [], 0
        for c in self.chunks():
            parts.append(c[(-k) % step :: step])
            k += len(c)
        return torch.cat(parts) if parts else torch.zeros((0, *self.shape[1:]))

    def load(self) -> Tensor:
        """The whole split in memory ``(N, J, 3)``."""
        parts = list(self.chunks())
        return torch.cat(parts) if parts else torch.zeros(self.shape)

    def batches(
        self, batch_size: int, seed: int = 0, block_rows: int = 512, buffer_rows: int = 65536
    ) -> Iterator[Tensor]:
        """Shuffled batches ``(batch_size, J, 3)``, pass after pass, forever (see the module docstring).

        ``block_rows`` consecutive poses are read at a time (whole HDF5 chunks are decompressed
        once per pass); ``buffer_rows`` are shuffled together. Deterministic in ``seed``."""
        n = len(self)
        if n == 0:
            raise DataError(str(self.path), f"{self.split}/poses", "is empty: nothing to train on")
        lo = self.start
        rng = np.random.default_rng(seed)
        per_buffer = max(1, buffer_rows // block_rows)
        with h5py.File(self.path, "r", rdcc_nbytes=64 * 2**20) as f:
            dset = f[self.split]["poses"]
            carry = np.zeros((0, *dset.shape[1:]), dtype=np.float32)
            while True:
                blocks = rng.permutation(-(-n // block_rows))
                for g in range(0, len(blocks), per_buffer):
                    # read the buffer's blocks in file order (sequential chunk access), then shuffle
                    starts = lo + np.sort(blocks[g : g + per_buffer]) * block_rows
                    buf = np.concatenate([carry, *(dset[s : min(s + block_rows, self.end)] for s in starts)])
                    check_poses(buf, self.path, self.split)
                    buf = buf[rng.permutation(len(buf))]
                    usable = len(buf) - len(buf) % batch_size
                    for b in range(0, usable, batch_size):
                        yield torch.from_numpy(buf[b : b + batch_size])
                    carry = buf[usable:]
