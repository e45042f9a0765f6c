"""Per-joint conditional flows over a kinematic tree, as one Pyro distribution."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from pyro.distributions import TorchDistribution
from torch import Tensor

from probpose.distributions.flow import FlowDistribution
from probpose.flows import FlowStack
from probpose.rotations import axis_angle_to_matrix, matrix_to_rotation_6d
from probpose.skeleton import Skeleton

__all__ = ["JointFlowPrior", "parent_features"]


@functools.lru_cache(maxsize=64)
def _levels(parents: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """Depth levels of a tree given by its parents (the skeleton's own rule, computed once)."""
    return Skeleton("tree", tuple(str(k) for k in range(len(parents))), parents).levels


def parent_features(poses: Tensor, parents: Sequence[int]) -> Tensor:
    """``(M, J, 3)`` axis-angle -> ``(M, J, 6)``: the 6D rotation of each joint's parent, zeros
    for roots. Continuous in the parent's rotation (unlike axis-angle near pi)."""
    par = torch.as_tensor([max(p, 0) for p in parents], device=poses.device)
    feats = matrix_to_rotation_6d(axis_angle_to_matrix(poses[:, par]))
    is_root = torch.as_tensor([p < 0 for p in parents], device=poses.device)
    return feats.masked_fill(is_root[None, :, None], 0.0)


class JointFlowPrior(FlowDistribution):
    """``log p(x) = sum_j log p(x_j | x_parent(j))`` with one shared 3-D conditional flow.

    The context of joint ``j`` is the 6D rotation of its parent (zeros for a root of the
    selection, so roots are unconditioned) concatenated with a learned embedding of ``j``; all
    joints are evaluated in one batched flow call. Sampling goes level by level down the tree,
    one flow call per depth level. Exact ``log_prob`` (nats, Lebesgue on R^(3J)); reparameterised
    ``rsample``.

    Args:
        flow: a flow on R^3 with ``context_dim == 6 + E``.
        embedding: ``(J, E)`` joint embeddings.
        parents: parent index per joint (``-1`` for roots), as in :class:`~probpose.skeleton.Skeleton`.
        loc, log_scale: optional ``(J, 3)`` per-joint affine normalisation applied before the
            flow, ``u_j = (x_j - loc_j) exp(-log_scale_j)`` (its log|det| is included).
        batch_shape: batch shape (the prior has no per-batch parameters; default ``()``).
    """

    def __init__(
        self,
        flow: FlowStack,
        embedding: Tensor,
        parents: Sequence[int],
        loc: Tensor | None = None,
        log_scale: Tensor | None = None,
        batch_shape: torch.Size | tuple[int, ...] = (),
        validate_args: bool | None = None,
    ) -> None:
        j = len(parents)
        self.loc = loc if loc is not None else torch.zeros(j, 3, dtype=embedding.dtype, device=embedding.device)
        self.log_scale = log_scale if log_scale is not None else torch.zeros_like(self.loc)
        if flow.dim != 3 or flow.context_dim != 6 + embedding.shape[-1] or embedding.shape[0] != j:
            raise ValueError("flow must be 3-D with context 6 + E and embedding (J, E)")
        self.flow = flow
        self.embedding = embedding
        self.parents = tuple(int(p) for p in parents)
        self.levels = _levels(self.parents)
        super().__init__(torch.Size(batch_shape), torch.Size((j, 3)), validate_args=validate_args)

    def expand(
        self, batch_shape: torch.Size | tuple[int, ...], _instance: TorchDistribution | None = None
    ) -> JointFlowPrior:
        new = self._get_checked_instance(JointFlowPrior, _instance)
        new.flow, new.embedding, new.parents, new.levels = self.flow, self.embedding, self.parents, self.levels
        new.loc, new.log_scale = self.loc, self.log_scale
        super(JointFlowPrior, new).__init__(torch.Size(batch_shape), self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def _context(self, parent_feats: Tensor, joints: Sequence[int] | None = None) -> Tensor:
        """``(M, K, 6)`` parent features of joints ``joints`` -> ``(M*K, 6+E)`` flow context."""
        emb = self.embedding if joints is None else self.embedding[list(joints)]
        emb = emb.to(parent_feats.dtype).expand(parent_feats.shape[0], -1, -1)
        return torch.cat([parent_feats, emb], dim=-1).reshape(-1, self.flow.context_dim)

    def joint_log_prob(self, value: Tensor) -> Tensor:
        """Per-joint terms ``log p(x_j | x_parent(j))``: ``(..., J, 3) -> (..., J)``."""
        lead = value.shape[:-2]
        x = value.reshape(-1, *self.event_shape)
        ctx = self._context(parent_features(x, self.parents))
        u = (x - self.loc) * torch.exp(-self.log_scale)
        lp = self.flow.log_prob(u.reshape(-1, 3), ctx).reshape(-1, self.event_shape[0])
        return (lp - self.log_scale.sum(-1)).reshape(lead + (self.event_shape[0],))

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        lead = torch.broadcast_shapes(value.shape[:-2], self.batch_shape)
        return self.joint_log_prob(value.expand(lead + self.event_shape)).sum(-1)

    def rsample_and_log_prob(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> tuple[Tensor, Tensor]:
        """Samples drawn level by level (one flow call per depth level) and their log-density along
        the generating path."""
        lead = torch.Size(sample_shape) + self.batch_shape
        m = lead.numel()
        f = self._factory()
        cols: list[Tensor | None] = [None] * self.event_shape[0]
        total = torch.zeros(m, **f)
        for level in self.levels:
            par = [self.parents[k] for k in level]
            if par[0] < 0:  # a level holds either only roots (level 0) or only children
                feats = torch.zeros(m, len(level), 6, **f)
            else:
                feats = matrix_to_rotation_6d(axis_angle_to_matrix(torch.stack([cols[q] for q in par], 1)))
            z = torch.randn(m * len(level), 3, **f)
            u, log_det = self.flow.forward_and_log_det(z, self._context(feats, level))
            lvl = list(level)
            x = self.loc[lvl] + torch.exp(self.log_scale[lvl]) * u.reshape(m, len(level), 3)
            path = (self.flow.base_log_prob(z) - log_det).reshape(m, len(level)) - self.log_scale[lvl].sum(-1)
            total = total + path.sum(-1)
            for i, k in enumerate(level):
                cols[k] = x[:, i]
        return torch.stack(cols, 1).reshape(lead + self.event_shape), total.reshape(lead)
