"""Data preparation for training, evaluation and the bench: a store from disk, or the bundled
recordings imported and split into one."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from probpose.data.bundled import bundled as bundled_files
from probpose.data.importers import import_recording
from probpose.data.splits import split_poses, split_unit
from probpose.data.store import read_info, read_split, write_store
from probpose.data.stream import StoreSplit
from probpose.errors import DataError
from probpose.skeleton import Skeleton

__all__ = ["PreparedData", "prepare_data"]


STREAM_ABOVE = 500_000
"""Training splits larger than this are streamed from disk unless told otherwise."""


@dataclass
class PreparedData:
    """The three splits -- float32 tensors ``(N, J, 3)`` (axis-angle, radians), or, when streamed,
    :class:`~probpose.data.StoreSplit` readers -- and what they are."""

    store: Path
    skeleton: Skeleton
    joints: str
    train: torch.Tensor | StoreSplit
    val: torch.Tensor | StoreSplit
    test: torch.Tensor | StoreSplit
    notes: list[str] = field(default_factory=list)

    @property
    def streaming(self) -> bool:
        return isinstance(self.train, StoreSplit)


def prepare_data(
    path: str | Path | None = None,
    *,
    bundled: str = "smplx",
    joints: str | None = None,
    split: str = "80/10/10",
    seed: int = 0,
    segment_seconds: float = 1.0,
    guard_seconds: float = 0.1,
    workdir: str | Path = ".",
    streaming: bool | None = None,
) -> PreparedData:
    """Read the store ``path``; or, without one, import the ``bundled`` set into
    ``workdir/data.h5`` (files that do not record ``joints`` are left out and said in ``notes``)
    with the given split (for motion capture, such as the bundled CMU data: whole subjects in
    test, whole trials in train and val).

    ``joints``: with a store, ``None`` takes the store's joints and anything else must equal them
    (a model trained on one selection never silently reads another); with the bundled data,
    ``None`` is the skeleton's default selection. ``streaming``: read the splits lazily from the
    store instead of loading them (``None``: when the training split exceeds :data:`STREAM_ABOVE`
    poses)."""
    notes: list[str] = []
    if path is not None:
        store = Path(path)
        info = read_info(store)
        if joints is not None and joints != info.joints:
            raise DataError(
                str(store),
                "joints",
                f"store holds joints {info.joints!r} but {joints!r} were asked for; "
                "leave data.joints unset to use the store's",
            )
    else:
        poses, notes = import_recording(bundled_files(bundled), joints=joints)
        parts = split_poses(poses, split, seed, segment_seconds, guard_seconds, by=split_unit(poses))
        store = write_store(Path(workdir) / "data.h5", poses, parts)
        info = read_info(store)
    if streaming is None:
        streaming = info.sizes["train"] > STREAM_ABOVE
    names = ("train", "val", "test")
    data: dict[str, torch.Tensor | StoreSplit]
    if streaming:
        data = {k: StoreSplit(store, k) for k in names}
    else:
        data = {k: torch.from_numpy(read_split(store, k)[0]) for k in names}
    return PreparedData(store, info.skeleton, info.joints, data["train"], data["val"], data["test"], notes)
