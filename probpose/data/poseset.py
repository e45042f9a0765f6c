"""The in-memory pose container every importer returns, and the data layer's error type."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from probpose.data.sequences import resample, resampled_length, trim
from probpose.errors import DataError
from probpose.options import MAX_COUNT
from probpose.skeleton import Skeleton, get_skeleton

__all__ = ["DataError", "SequenceInfo", "PoseSet"]


@dataclass(frozen=True)
class SequenceInfo:
    """One recorded sequence (or, for unordered pose collections, one file of rows).

    Attributes:
        name: unique name, ``"<file>"`` or ``"<file>:<key>"``.
        source: file name it came from.
        fps: frames per second, or ``None`` when frames are not a time series.
        fps_assumed: ``True`` when the file did not say and ``fps`` is a stated assumption.
        ordered: ``True`` for time series (split into contiguous segments), ``False`` for a set of
            independent poses (de-duplicated and split row by row).
    """

    name: str
    source: str
    fps: float | None
    fps_assumed: bool = False
    ordered: bool = True

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "source": self.source,
            "fps": self.fps,
            "fps_assumed": self.fps_assumed,
            "ordered": self.ordered,
        }


@dataclass
class PoseSet:
    """Poses of one skeleton, with where each frame came from.

    Attributes:
        skeleton: the joints ``poses`` is ordered by.
        poses: ``(N, J, 3)`` float32 canonical axis-angle, radians, relative to the parent joint.
        present: ``(J,)`` bool, the joints the source actually records. Absent joints are zero in
            ``poses`` and must never be modelled (:meth:`select` refuses them).
        sequence: ``(N,)`` int64 index into ``sequences``.
        frame: ``(N,)`` int64 frame (or row) index within its sequence.
        sequences: one :class:`SequenceInfo` per sequence.
        sources: one dict per source file: ``file``, ``format``, ``sha256``, ``frames``, ``notes``.
    """

    skeleton: Skeleton
    poses: np.ndarray
    present: np.ndarray
    sequence: np.ndarray
    frame: np.ndarray
    sequences: list[SequenceInfo]
    sources: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        n, j = len(self.poses), self.skeleton.num_joints
        if self.poses.shape != (n, j, 3):
            raise ValueError(f"poses must be (N, {j}, 3) for skeleton {self.skeleton.name!r}, got {self.poses.shape}")
        if self.present.shape != (j,) or self.sequence.shape != (n,) or self.frame.shape != (n,):
            raise ValueError("present must be (J,), sequence and frame (N,)")
        if n and (self.sequence.min() < 0 or self.sequence.max() >= len(self.sequences)):
            raise ValueError("sequence ids must index into sequences")

    def __len__(self) -> int:
        return len(self.poses)

    @property
    def num_joints(self) -> int:
        return self.skeleton.num_joints

    def to_skeleton(self, target: Skeleton | str) -> PoseSet:
        """The same poses in another preset's joint order, matching joints by name.

        Joints of ``target`` that this set lacks are marked absent; joints ``target`` lacks are
        dropped (and listed in the source notes)."""
        target = get_skeleton(target) if isinstance(target, str) else target
        if target == self.skeleton:
            return self
        poses = np.zeros((len(self), target.num_joints, 3), dtype=self.poses.dtype)
        present = np.zeros(target.num_joints, dtype=bool)
        for j, name in enumerate(target.joint_names):
            if name in self.skeleton.joint_names:
                k = self.skeleton.index(name)
                poses[:, j] = self.poses[:, k]
                present[j] = self.present[k]
        if not present.any():
            raise ValueError(f"skeleton {self.skeleton.name!r} shares no joints with {target.name!r}")
        names = self.skeleton.joint_names
        dropped = [n for n, p in zip(names, self.present, strict=True) if p and n not in target.joint_names]
        sources = [dict(s) for s in self.sources]
        if dropped:
            for s in sources:
                s["notes"] = [*s.get("notes", []), f"dropped joints without a {target.name} counterpart: {dropped}"]
        return replace(self, skeleton=target, poses=poses, present=present, sources=sources)

    def select(self, selection: str | Sequence[str] | Sequence[int]) -> PoseSet:
        """Keep a joint selection (see :meth:`Skeleton.select`).

        Raises :class:`DataError` naming the source files and the missing joints if a selected
        joint is not recorded: made-up constant joints corrupt every likelihood."""
        idx = self.skeleton.selection_indices(selection)
        missing = [self.skeleton.joint_names[j] for j in idx if not self.present[j]]
        if missing:
            files = ", ".join(s["file"] for s in self.sources) or "pose set"
            shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
            raise DataError(
                files,
                None,
                f"joint selection {selection!r} needs joints the source does not record: {shown}; "
                "choose a selection it records (for example 'body') or leave the file out",
            )
        sub = self.skeleton.select(selection)
        return replace(self, skeleton=sub, poses=self.poses[:, list(idx)], present=np.ones(len(idx), dtype=bool))

    def resampled(self, fps: float) -> PoseSet:
        """Every time series resampled to ``fps`` frames per second (see
        :func:`probpose.data.sequences.resample`); unordered pose sets are unchanged. A result
        longer than :data:`~probpose.options.MAX_COUNT` frames (a file claiming a tiny frame rate)
        is refused before any frame is made."""
        lengths = np.bincount(self.sequence, minlength=len(self.sequences))  # one pass, whatever the count
        for info, n in zip(self.sequences, lengths.tolist(), strict=True):
            count = resampled_length(n, info.fps, fps) if info.ordered and info.fps and n else 0
            if count > MAX_COUNT:
                raise DataError(
                    info.name,
                    "fps",
                    f"{n:,} frames at {info.fps:g} fps resampled to {fps:g} fps would "
                    f"be {count:,} frames, more than {MAX_COUNT:,} (PROBPOSE_MAX_COUNT): is the file's "
                    "frame rate right?",
                )
        return self._per_sequence(
            lambda arr, info: resample(arr, info.fps, fps), fps, f"resampled to {fps:g} fps (slerp between frames)"
        )

    def trimmed(self, fraction: float) -> PoseSet:
        """Every time series without its first and last ``fraction`` of frames."""
        return self._per_sequence(
            lambda arr, info: trim(arr, fraction), None, f"first and last {100 * fraction:g}% of frames trimmed"
        )

    def _per_sequence(self, fn, fps: float | None, note: str) -> PoseSet:
        poses, seq, frame, infos = [], [], [], []
        for s, info in enumerate(self.sequences):
            members = np.flatnonzero(self.sequence == s)
            members = members[np.argsort(self.frame[members], kind="stable")]
            arr = self.poses[members]
            if info.ordered:
                arr = fn(arr, info)
                info = replace(info, fps=fps if fps is not None else info.fps)
            poses.append(arr)
            seq.append(np.full(len(arr), s, dtype=np.int64))
            frame.append(np.arange(len(arr), dtype=np.int64) if info.ordered else self.frame[members])
            infos.append(info)
        sources = [dict(src, notes=[*src.get("notes", []), note]) for src in self.sources]
        empty = np.zeros((0, self.num_joints, 3), dtype=np.float32)
        return replace(
            self,
            poses=np.concatenate(poses) if poses else empty,
            sequence=np.concatenate(seq) if seq else np.zeros(0, dtype=np.int64),
            frame=np.concatenate(frame) if frame else np.zeros(0, dtype=np.int64),
            sequences=infos,
            sources=sources,
        )

    @staticmethod
    def concatenate(sets: Sequence[PoseSet]) -> PoseSet:
        """One set from several with the same skeleton and present joints (sequence ids renumbered)."""
        if not sets:
            raise ValueError("nothing to concatenate")
        first = sets[0]
        for s in sets[1:]:
            if s.skeleton != first.skeleton:
                raise ValueError(f"cannot concatenate skeletons {first.skeleton.name!r} and {s.skeleton.name!r}")
            if not np.array_equal(s.present, first.present):
                files = [src["file"] for src in s.sources]
                raise ValueError(f"{files}: records other joints than {[src['file'] for src in first.sources]}")
        offsets = np.cumsum([0] + [len(s.sequences) for s in sets[:-1]])
        return PoseSet(
            skeleton=first.skeleton,
            poses=np.concatenate([s.poses for s in sets]),
            present=first.present.copy(),
            sequence=np.concatenate([s.sequence + o for s, o in zip(sets, offsets, strict=True)]).astype(np.int64),
            frame=np.concatenate([s.frame for s in sets]).astype(np.int64),
            sequences=[q for s in sets for q in s.sequences],
            sources=[src for s in sets for src in s.sources],
        )
