"""Deterministic, leak-free train/val/test splits of a :class:`PoseSet`.

Frames next to each other in time are near-copies, so a random frame split overstates
generalisation. The rule (stored with every HDF5 store):

1. **Units.** Each time series is cut into contiguous segments of ``segment_seconds`` (a last
   piece shorter than half a segment joins the previous one). An unordered pose collection (PASyn
   rows) is first de-duplicated -- exact duplicate poses are dropped -- and each distinct pose is a
   unit.
2. **Order.** Units are ordered by SHA-256 of ``seed`` and the unit's identity (sequence name and
   segment index, or the pose's bytes), so the order depends on nothing else.
3. **Assignment.** In that order each unit goes to the split furthest below its target share of
   the poses assigned so far. A split with a non-zero share that is still empty then takes the
   last unit of the split with the most units, so with at least three units every split holds
   real, unseen motion; with fewer, the empty splits are listed in ``stats["empty_splits"]``.
   With ``by="subject"`` the test split holds whole **subjects** (every trial of a performer, no
   test subject seen in training: the subject is a sequence name's part before its first ``_``,
   CMU's ``SUBJECT_TRIAL`` naming), assigned first by the same rule between test and the rest in
   hash order of the subjects; train and val then share the remaining whole trials. With a single
   subject (or too few), a trial is moved into an empty test split as in the rule above, and the
   subjects test then shares with training are listed in ``stats["test_subjects_also_in_training"]``.
4. **Guard.** In time series, the ``guard_seconds`` of an evaluation segment next to a segment of
   another split are dropped, so no test frame has a near-copy neighbour in train.
5. **Duplicates.** A pose in val or test that is bit-identical to one in an earlier split (train,
   then val) is dropped from the later split.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from probpose.data.formats import MOCAP_FORMATS
from probpose.data.poseset import PoseSet
from probpose.errors import ConfigError, short_repr

__all__ = ["SPLIT_NAMES", "Split", "parse_fractions", "split_poses"]

SPLIT_NAMES = ("train", "val", "test")


@dataclass
class Split:
    """Indices into a :class:`PoseSet` per split, the rule that made them, and what was dropped."""

    indices: dict[str, np.ndarray]
    rule: dict
    stats: dict = field(default_factory=dict)


def parse_fractions(spec: str | Sequence[float]) -> tuple[float, float, float]:
    """``"80/10/10"`` (or three numbers) -> fractions summing to 1."""
    try:
        parts = [float(x) for x in (spec.split("/") if isinstance(spec, str) else spec)]
    except (TypeError, ValueError):
        raise ConfigError(f"split must look like 80/10/10, got {short_repr(spec)}") from None
    if len(parts) != 3 or any(not np.isfinite(x) or x < 0 for x in parts) or sum(parts) <= 0 or parts[0] <= 0:
        raise ConfigError(f"split needs three non-negative shares (train > 0), got {short_repr(spec)}")
    total = sum(parts)
    if not np.isfinite(total):  # each share finite, their sum not (1e308/1e308/1e308)
        raise ConfigError(f"split shares are too large to add up, got {short_repr(spec)}; use e.g. 80/10/10")
    return parts[0] / total, parts[1] / total, parts[2] / total


def _digest(seed: int, identity: bytes) -> bytes:
    return hashlib.sha256(str(seed).encode() + b"\0" + identity).digest()


def split_unit(poses: PoseSet) -> str:
    """The default split unit of a pose set: ``"subject"`` (whole subjects in test, whole trials in
    train and val) for motion capture in another skeleton (every source ASF/AMC or BVH),
    ``"segment"`` otherwise."""
    return "subject" if poses.sources and all(s["format"] in MOCAP_FORMATS for s in poses.sources) else "segment"


def subject_of(sequence_name: str) -> str:
    """The subject of a sequence: its name's part before the first ``_`` (``"02_01.amc"`` -> ``"02"``)."""
    return sequence_name.split("_", 1)[0]


def _assign(sizes: Sequence[int], frac: Sequence[float]) -> list[int]:
    """Each unit (in the given order) to the bin furthest below its share of what is assigned."""
    assigned = [0] * len(frac)
    out = []
    for n in sizes:
        total = sum(assigned) + n
        deficit = [frac[k] * total - assigned[k] if frac[k] > 0 else -np.inf for k in range(len(frac))]
        k = int(np.argmax(deficit))
        out.append(k)
        assigned[k] += n
    return out


def split_poses(
    poses: PoseSet,
    fractions: str | Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    segment_seconds: float = 1.0,
    guard_seconds: float = 0.1,
    by: str = "segment",
) -> Split:
    """Split ``poses`` by the rule in the module docstring. Deterministic in its arguments.
    ``by="sequence"``: every time series is one unit (whole trials per split, no guard frames),
    instead of its ``segment_seconds`` segments; ``by="subject"``: whole subjects in test, whole
    trials in train and val."""
    if by not in ("segment", "sequence", "subject"):
        raise ConfigError(f"split unit must be 'segment', 'sequence' or 'subject', got {by!r}")
    frac = parse_fractions(fractions)
    if not (np.isfinite(segment_seconds) and segment_seconds > 0 and np.isfinite(guard_seconds) and guard_seconds >= 0):
        raise ConfigError(
            f"segment_seconds must be > 0 and guard_seconds >= 0 (finite), got {segment_seconds!r}, {guard_seconds!r}"
        )
    rows = np.ascontiguousarray(poses.poses.reshape(len(poses), -1))
    row_bytes = [r.tobytes() for r in rows]

    # 1. units: (identity, member indices in time order, fps or None)
    units: list[tuple[bytes, np.ndarray, float | None]] = []
    for s, info in enumerate(poses.sequences):
        members = np.flatnonzero(poses.sequence == s)
        members = members[np.argsort(poses.frame[members], kind="stable")]
        if not len(members):
            continue
        if not info.ordered:
            units.extend((b"pose\0" + row_bytes[i], np.array([i]), None) for i in members)
            continue
        if by == "segment":
            assert info.fps is not None  # ordered sequences have a frame rate
            length = max(1, int(round(segment_seconds * info.fps)))
        else:
            length = len(members)
        n_seg = max(1, len(members) // length + (len(members) % length >= length / 2))
        bounds = [k * length for k in range(n_seg)] + [len(members)]
        for k in range(n_seg):
            ident = f"seq\0{info.name}\0{k}".encode()
            units.append((ident, members[bounds[k] : bounds[k + 1]], info.fps))
    # An unordered pose that repeats (within or across files) is one pose: keep its first unit.
    unique_units: list[tuple[bytes, np.ndarray, float | None]] = []
    seen_ident: set[bytes] = set()
    unordered_dupes = 0
    for u in units:
        if u[0].startswith(b"pose\0"):
            if u[0] in seen_ident:
                unordered_dupes += 1
                continue
            seen_ident.add(u[0])
        unique_units.append(u)

    # 2-3. order by hash, assign to the split most below its target share.
    unique_units.sort(key=lambda u: _digest(seed, u[0]))
    if by == "subject":  # whole subjects to test or not, then whole trials to train or val
        subject = [subject_of(poses.sequences[int(poses.sequence[u[1][0]])].name) for u in unique_units]
        subjects = sorted(set(subject), key=lambda name: _digest(seed, f"subject\0{name}".encode()))
        size = dict.fromkeys(subjects, 0)
        for name, u in zip(subject, unique_units, strict=True):
            size[name] += len(u[1])
        in_test = dict(zip(subjects, _assign([size[n] for n in subjects], (frac[2], frac[0] + frac[1])), strict=True))
        rest = [i for i, name in enumerate(subject) if in_test[name] == 1]
        unit_split = [2] * len(unique_units)
        for i, k in zip(rest, _assign([len(unique_units[i][1]) for i in rest], frac[:2]), strict=True):
            unit_split[i] = k
    else:
        unit_split = _assign([len(u[1]) for u in unique_units], frac)
    # A split with a non-zero share must not end up empty while another has units to spare: give
    # it the latest (in hash order) unit of the split holding the most units.
    for k in range(3):
        if frac[k] > 0 and k not in unit_split:
            counts = [unit_split.count(i) for i in range(3)]
            donor = int(np.argmax(counts))
            if counts[donor] < 2:
                break  # too few units: the split stays empty (reported in stats)
            last = max(i for i, sk in enumerate(unit_split) if sk == donor)
            unit_split[last] = k

    # 4. guard frames of evaluation segments next to another split's segment.
    by_seq: dict[int, list[tuple[int, int]]] = {}
    for ui, (_, members, fps) in enumerate(unique_units):
        if fps is not None:
            by_seq.setdefault(int(poses.sequence[members[0]]), []).append((int(poses.frame[members[0]]), ui))
    keep = [np.ones(len(u[1]), dtype=bool) for u in unique_units]
    guard_dropped = 0
    for seq_units in by_seq.values():
        seq_units.sort()
        order = [ui for _, ui in seq_units]
        for a, b in zip(order[:-1], order[1:], strict=False):
            if unit_split[a] == unit_split[b]:
                continue
            for ui, side in ((a, "end"), (b, "start")):
                if unit_split[ui] == 0:
                    continue  # train keeps all its frames
                fps = unique_units[ui][2]
                assert fps is not None  # only ordered units are in by_seq
                g = int(round(guard_seconds * fps))
                g = min(g, len(keep[ui]) - 1)  # never drop a whole segment
                if g > 0:
                    sl = slice(len(keep[ui]) - g, None) if side == "end" else slice(0, g)
                    guard_dropped += int(keep[ui][sl].sum())
                    keep[ui][sl] = False

    indices: dict[str, list[np.ndarray]] = {name: [] for name in SPLIT_NAMES}
    n_units = dict.fromkeys(SPLIT_NAMES, 0)
    for ui, (_, members, _) in enumerate(unique_units):
        name = SPLIT_NAMES[unit_split[ui]]
        indices[name].append(members[keep[ui]])
        n_units[name] += 1
    out = {
        k: (np.sort(np.concatenate(v)) if v else np.zeros(0, dtype=np.int64)).astype(np.int64)
        for k, v in indices.items()
    }

    # 5. exact duplicates across splits: the later split loses them.
    cross_dupes = 0
    earlier: set[bytes] = set()
    for name in SPLIT_NAMES:
        if earlier:
            mask = np.array([row_bytes[i] not in earlier for i in out[name]], dtype=bool)
            cross_dupes += int((~mask).sum())
            out[name] = out[name][mask]
        earlier.update(row_bytes[i] for i in out[name])

    rule = {
        "method": "hash-ordered units, assigned to the split furthest below its share; no non-zero split left empty",
        "fractions": list(frac),
        "seed": seed,
        "unit": {
            "sequence": "whole sequences",
            "subject": "whole subjects in test (a name's part before its first '_'), whole sequences in train and val",
        }.get(by, "segments of each sequence"),
        "segment_seconds": segment_seconds if by == "segment" else None,
        "guard_seconds": guard_seconds,
        "hash": "sha256(seed, unit identity)",
        "unordered": "exact duplicate poses removed, one unit per distinct pose",
        "cross_split_duplicates": "removed from the later split (train < val < test)",
    }
    stats = {
        "units": n_units,
        "duplicates_dropped": unordered_dupes,
        "cross_split_duplicates_dropped": cross_dupes,
        "guard_frames_dropped": guard_dropped,
        "empty_splits": [k for k in SPLIT_NAMES if frac[SPLIT_NAMES.index(k)] > 0 and not len(out[k])],
    }
    if by == "subject":
        names = [subject_of(poses.sequences[int(poses.sequence[u[1][0]])].name) for u in unique_units]
        held = {n for n, k in zip(names, unit_split, strict=True) if k == 2}
        seen = {n for n, k in zip(names, unit_split, strict=True) if k != 2}
        stats["test_subjects"] = sorted(held)
        stats["test_subjects_also_in_training"] = sorted(held & seen)  # only with too few subjects
    return Split(out, rule, stats)
