"""Checks of pose data that more than one layer needs: constant dimensions and barely moving joints.

A density fitted to a constant dimension diverges, so fitting refuses one (:func:`check_not_constant`);
evaluating a trained model on data with constant joints is fine. Real data often holds joints that
are constant in most frames (unposed feet or hands stored as zeros); :func:`static_joints` finds
them so ``probpose import`` can warn by name and suggest a selection without them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from probpose.errors import ConstantDimensionError
from probpose.parallel import SINGLE, Group
from probpose.skeleton import SELECTIONS

__all__ = ["column_std", "check_not_constant", "StaticJoint", "static_joints", "selection_without"]


def column_std(chunks: Iterable[torch.Tensor], group: Group = SINGLE) -> tuple[int, torch.Tensor]:
    """Count and per-column standard deviation ``(J, 3)`` of poses given chunk by chunk (float64,
    shifted by the first pose so a large mean does not cancel the variance). With a distributed
    ``group`` each process gives its own rows (at least one) and all get the statistics of the union
    (per-process moments combined exactly, as in Chan et al.'s parallel variance)."""
    n: int = 0
    s1: Tensor | float = 0.0
    s2: Tensor | float = 0.0
    shift: Tensor | None = None
    for c in chunks:
        x = c.double()
        if len(x):
            shift = x[0] if shift is None else shift
            x = x - shift
            n, s1, s2 = n + len(x), s1 + x.sum(0), s2 + (x * x).sum(0)
    if group.distributed:
        if n == 0:
            raise ConstantDimensionError(f"process {group.rank} of {group.world_size} holds no poses")
        assert isinstance(s1, Tensor) and isinstance(s2, Tensor) and shift is not None  # n > 0
        local_mean = s1 / n
        m2 = s2 - n * local_mean * local_mean  # centred sum of squares of this process's rows
        total = int(group.total(n))
        mean = group.sum(n * (local_mean + shift)) / total
        m2 = group.sum(m2 + n * (local_mean + shift - mean) ** 2)
        return total, (m2 / (total - 1)).clamp_min(0).sqrt()
    if n < 2:
        return n, torch.zeros(0)
    assert isinstance(s1, Tensor) and isinstance(s2, Tensor)  # n >= 2
    mean = s1 / n
    return n, ((s2 - n * mean * mean) / (n - 1)).clamp_min(0).sqrt()


def check_not_constant(
    poses: torch.Tensor | np.ndarray | Iterable[torch.Tensor],
    joint_names: Sequence[str],
    tol: float = 1e-6,
    group: Group = SINGLE,
) -> None:
    """Refuse poses ``(N, J, 3)`` (or chunks of them) in which a joint's axis-angle component has
    standard deviation below ``tol`` radians (for example SMPL-X jaw and eyes, all zero in common
    data): fitting a density to such data drives it to infinity. Raises
    :class:`ConstantDimensionError` naming them. ``group``: see :func:`column_std`."""
    chunks = [torch.as_tensor(poses)] if isinstance(poses, (torch.Tensor, np.ndarray)) else poses
    n, std = column_std(chunks, group)
    if n < 2:
        raise ConstantDimensionError(f"need at least 2 poses to fit a model, got {n}")
    bad = (std < tol).nonzero().tolist()
    if bad:
        listed = ", ".join(f"{joint_names[j]} ({'xyz'[c]})" for j, c in bad[:6])
        more = f" and {len(bad) - 6} more" if len(bad) > 6 else ""
        raise ConstantDimensionError(
            f"(nearly) constant dimension(s) in the training data: {listed}{more} (std < {tol:g} rad); a density "
            "fitted to a constant diverges -- leave these joints out of the selection"
        )


@dataclass(frozen=True)
class StaticJoint:
    """A joint that holds one value in most poses: ``moving`` of ``total`` poses differ from it."""

    name: str
    moving: int
    total: int

    @property
    def fraction_moving(self) -> float:
        return self.moving / max(self.total, 1)


def static_joints(
    poses: np.ndarray, joint_names: Sequence[str], max_moving: float = 0.5, tol: float = 1e-6
) -> list[StaticJoint]:
    """Joints of ``poses`` ``(N, J, 3)`` that differ from their most common value (estimated by the
    per-component median, which is that value whenever more than half the poses hold it) by more
    than ``tol`` radians in at most ``max_moving`` of the poses."""
    x = np.asarray(poses)
    if len(x) == 0:
        return []
    out = []
    for j, name in enumerate(joint_names):
        col = x[:, j].astype(np.float64)
        moving = int((np.abs(col - np.median(col, axis=0)).max(-1) > tol).sum())
        if moving <= max_moving * len(x):
            out.append(StaticJoint(name, moving, len(x)))
    return out


def selection_without(base: str, selection: str, names: Sequence[str]) -> str:
    """``selection`` minus ``names``, using the preset's named groups where they match exactly
    (``"body"`` minus both feet -> ``"body-feet"``)."""
    left = list(names)
    terms = []
    for group, members in SELECTIONS.get(base, {}).items():
        if len(members) > 1 and set(members) <= set(left):
            terms.append(group)
            left = [n for n in left if n not in members]
    return selection + "".join(f"-{t}" for t in [*terms, *left])
