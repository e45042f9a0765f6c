"""A torch ``Dataset`` over one split of an HDF5 pose store, opened lazily in each worker."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from probpose.data.store import check_poses, read_info
from probpose.errors import DataError
from probpose.skeleton import Skeleton

__all__ = ["PoseDataset"]


class PoseDataset(Dataset):
    """Poses of one split: item ``i`` is a ``(J, 3)`` tensor (axis-angle, radians).

    The HDF5 file's attributes and datasets are checked once here, every row read is checked finite,
    and the file is opened on first access in each process, so the dataset can be used with
    ``DataLoader(num_workers > 0)`` (h5py handles must not cross a fork). ``__getitems__`` reads a
    whole batch in one sorted HDF5 read.
    """

    def __init__(self, path: str | Path, split: str = "train", dtype: torch.dtype = torch.float32) -> None:
        self.path = Path(path)
        self.split = split
        self.dtype = dtype
        self.info = read_info(self.path)
        if split not in self.info.sizes:
            raise DataError(str(self.path), None, f"unknown split {split!r}; one of {', '.join(self.info.sizes)}")
        self._len = self.info.sizes[split]
        self._file: h5py.File | None = None
        self._pid: int | None = None

    @property
    def skeleton(self) -> Skeleton:
        return self.info.skeleton

    def __len__(self) -> int:
        return self._len

    def _poses(self) -> h5py.Dataset:
        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._file[self.split]["poses"]

    def __getitem__(self, i: int) -> torch.Tensor:
        if not -self._len <= i < self._len:
            raise IndexError(f"index {i} out of range for {self._len} poses")
        row = check_poses(self._poses()[i % self._len][None], self.path, self.split, i % self._len)[0]
        return torch.as_tensor(row, dtype=self.dtype)

    def __getitems__(self, indices: list[int]) -> list[torch.Tensor]:
        idx = np.asarray(indices, dtype=np.int64) % max(self._len, 1)
        order = np.argsort(idx)
        uniq, inverse = np.unique(idx[order], return_inverse=True)
        block = self._poses()[uniq]  # h5py needs increasing unique indices
        check_poses(block, self.path, self.split, int(uniq[0]) if len(uniq) else 0)
        rows = np.empty((len(idx),) + block.shape[1:], dtype=block.dtype)
        rows[order] = block[inverse]
        return list(torch.as_tensor(rows, dtype=self.dtype).unbind(0))

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_file"] = None
        state["_pid"] = None
        return state

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
