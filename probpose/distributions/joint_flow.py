"""Per-joint conditional flows over a kinematic tree, as one Pyro distribution."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from probpose.distributions.flow import FlowDistribution, FlowTransform, standard_normal_log_prob
from probpose.flows.affine import squash
from probpose.flows.grouped import GroupedFlowStack
from probpose.flows.linear import GaussianLayer
from probpose.rotations import axis_angle_to_matrix, matrix_to_rotation_6d
from probpose.skeleton import Skeleton

__all__ = ["JointFlowPrior", "JointFlowTransform", "parent_features", "PARENT_FEATURES", "GAUSSIAN_FEATURES"]

PARENT_FEATURES = 9
"""Context of a joint: its parent's rotation as 6D (continuous) and as axis-angle squashed to +-pi."""
GAUSSIAN_FEATURES = 3
"""Extra context with a Gaussian layer: the Gaussian's prediction of the joint from earlier levels."""


@functools.lru_cache(maxsize=64)
def _levels(parents: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """Depth levels of a tree given by its parents (the skeleton's own rule, computed once)."""
    return Skeleton("tree", tuple(str(k) for k in range(len(parents))), parents).levels


@functools.lru_cache(maxsize=64)
def _earlier_levels(parents: tuple[int, ...]) -> Tensor:
    """``(3J, 3J)`` bool over the joints' coordinates in level order: column from a strictly
    earlier level than the row."""
    level = torch.tensor([k for k, lv in enumerate(_levels(parents)) for _ in lv for _ in range(3)])
    return level[:, None] > level[None, :]


def parent_features(poses: Tensor, parents: Sequence[int]) -> Tensor:
    """``(M, J, 3)`` axis-angle -> ``(M, J, 9)``: each joint's parent rotation as 6D (continuous in
    the rotation) and as axis-angle squashed to ``+-pi``; zeros for roots."""
    par = torch.as_tensor([max(p, 0) for p in parents], device=poses.device)
    aa = poses[:, par]
    feats = torch.cat([matrix_to_rotation_6d(axis_angle_to_matrix(aa)), squash(aa, torch.pi)], -1)
    is_root = torch.as_tensor([p < 0 for p in parents], device=poses.device)
    return feats.masked_fill(is_root[None, :, None], 0.0)


class JointFlowTransform(FlowTransform):
    """Noise ``(..., J, 3)`` -> poses ``(..., J, 3)`` of a :class:`JointFlowPrior`, owning its
    layers: joint ``j``'s noise drives joint ``j`` through its own conditional flow on R^3 (one
    grouped call per depth level of the tree going forward, one grouped call for all joints going
    back), with the optional Gaussian layer on top.

    Args:
        flow: a :class:`~probpose.flows.GroupedFlowStack` on R^3 with one group per joint and
            ``context_dim == PARENT_FEATURES`` (+ ``GAUSSIAN_FEATURES`` with a Gaussian layer).
        parents: parent index per joint (``-1`` for roots), as in :class:`~probpose.skeleton.Skeleton`.
        gaussian: a :class:`~probpose.flows.GaussianLayer` on R^(3J) over the joints in level order, or None.
    """

    def __init__(
        self,
        flow: GroupedFlowStack,
        parents: Sequence[int],
        gaussian: GaussianLayer | None = None,
        cache_size: int = 0,
    ) -> None:
        features = PARENT_FEATURES + (GAUSSIAN_FEATURES if gaussian is not None else 0)
        if flow.dim != 3 or flow.context_dim != features:
            raise ValueError(f"flow must be 3-D with a context of {features} features")
        if gaussian is not None and gaussian.dim != 3 * len(parents):
            raise ValueError(f"gaussian layer must have dimension {3 * len(parents)}, got {gaussian.dim}")
        super().__init__(len(parents), cache_size)
        self.flow = flow
        self.gaussian = gaussian
        self.parents = tuple(int(p) for p in parents)
        self.levels = _levels(self.parents)
        self.order = tuple(j for level in self.levels for j in level)

    def parameters(self) -> Iterator[nn.Parameter]:
        yield from self.flow.parameters()
        if self.gaussian is not None:
            yield from self.gaussian.parameters()

    def _index(self, joints: Sequence[int]) -> Tensor:
        return torch.tensor(joints, device=self.factory()["device"])

    def _to_noise(self, value: Tensor) -> tuple[Tensor, Tensor]:
        """Poses ``(..., J, 3)`` -> the flows' base noise ``(J, 3, M)`` and ``log |det dz/dx|``
        ``(J, M)`` per joint (the Gaussian layer's rows included), both in level order."""
        x = value.to(self.factory()["dtype"]).reshape(-1, *self.event_shape)  # computed in the prior's dtype
        order = list(self.order)
        ctx = parent_features(x, self.parents)[:, order]  # (M, J, 9), level order
        xo = x[:, order]
        if self.gaussian is not None:
            u, _ = self.gaussian.inverse(xo.flatten(1))
            earlier = torch.where(_earlier_levels(self.parents).to(u.device), self.gaussian.scale_tril, 0.0)
            prediction = (self.gaussian.mean + u @ earlier.T).view_as(xo)
            ctx = torch.cat([ctx, squash(prediction, torch.pi)], -1)
            xo = u.view_as(xo)
            log_det = -self.gaussian.scale_tril.diagonal().log().view(-1, 3).sum(-1)  # (J,), in order
        z, ld = self.flow.inverse_and_log_det(xo.permute(1, 2, 0), self._index(order), ctx.permute(1, 2, 0))
        if self.gaussian is not None:
            ld = ld + log_det[:, None]
        return z, ld

    def _noise_of(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Poses ``(..., J, 3)`` (checked) -> base noise ``(..., J, 3)`` in joint order and
        ``log |det dz/dx|`` per joint ``(J, M)`` in level order."""
        if x.shape[-2:] != self.event_shape:
            raise ValueError(f"poses must be (..., {self.event_shape[0]}, 3), got {tuple(x.shape)}")
        z, ld = self._to_noise(x)
        noise = torch.empty_like(z)
        noise[list(self.order)] = z
        return noise.permute(2, 0, 1).reshape(x.shape), ld

    def inverse_per_joint(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Poses ``(..., J, 3)`` -> base noise ``(..., J, 3)`` and each joint's share of
        ``log |det dx/dz|`` ``(..., J)`` (the map is block-triangular: joint ``j``'s noise moves
        joint ``j`` and later levels only)."""
        noise, ld = self._noise_of(x)
        log_det = torch.empty_like(ld)
        log_det[list(self.order)] = -ld
        return noise, log_det.transpose(0, 1).reshape(x.shape[:-1])

    def inverse_and_log_det(self, x: Tensor) -> tuple[Tensor, Tensor]:
        noise, ld = self._noise_of(x)
        return noise, -ld.sum(0).reshape(x.shape[:-2])

    def forward_and_log_det(self, z: Tensor) -> tuple[Tensor, Tensor]:
        lead = z.shape[:-2]
        if z.shape[-2:] != self.event_shape:
            raise ValueError(f"noise must be (..., {self.event_shape[0]}, 3), got {tuple(z.shape)}")
        x, log_det, _ = self._generate(lead, z.reshape(-1, *self.event_shape))
        return x, log_det

    def generate(self, lead: torch.Size) -> tuple[Tensor, Tensor, Tensor]:
        """Noise drawn level by level (one flow call per depth level) and pushed forward."""
        return self._generate(lead, None)

    def _generate(self, lead: torch.Size, noise: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """Poses ``lead + (J, 3)`` from noise (drawn here when ``None``), ``log |det dx/dz|`` and the
        noise's base log-density, both ``lead``."""
        m = lead.numel()
        f = self.factory()
        if noise is not None:
            f = {"dtype": noise.dtype, "device": noise.device}
        j = self.event_shape[0]
        cols: list[Tensor | None] = [None] * j
        us: list[Tensor] = []  # the flows' outputs, in level order
        log_det_total = torch.zeros(m, **f)
        base = torch.zeros(m, **f)
        done = 0
        for level in self.levels:
            par = [self.parents[k] for k in level]
            if par[0] < 0:  # a level holds either only roots (level 0) or only children
                feats = torch.zeros(m, len(level), PARENT_FEATURES, **f)
            else:
                aa = torch.stack([_known(cols[q]) for q in par], 1)  # (M, L, 3): parents come first
                feats = torch.cat([matrix_to_rotation_6d(axis_angle_to_matrix(aa)), squash(aa, torch.pi)], -1)
            if self.gaussian is not None:  # the Gaussian's prediction of this level from the earlier ones
                rows = slice(3 * done, 3 * (done + len(level)))
                prediction = self.gaussian.mean[rows].expand(m, -1)
                if done:
                    prediction = prediction + torch.cat(us, -1) @ self.gaussian.scale_tril[rows, : 3 * done].T
                feats = torch.cat([feats, squash(prediction.view(m, len(level), 3), torch.pi)], -1)
            if noise is None:
                z = torch.randn(len(level), 3, m, **f)
            else:
                z = noise[:, list(level)].permute(1, 2, 0)
            u, log_det = self.flow.forward_and_log_det(z, self._index(level), feats.permute(1, 2, 0))
            base = base + self.flow.base_log_prob(z).sum(0)
            log_det_total = log_det_total + log_det.sum(0)
            us.extend(u.permute(0, 2, 1))  # (M, 3) each
            if self.gaussian is None:
                x = us[done : done + len(level)]
            else:  # x of this level = prediction + the level's own block of L times its u
                block = self.gaussian.scale_tril[rows, rows]
                flat = prediction + torch.cat(us[done:], -1) @ block.T
                x = list(flat.view(m, len(level), 3).unbind(1))
            for i, k in enumerate(level):
                cols[k] = x[i]
            done += len(level)
        if self.gaussian is not None:
            log_det_total = log_det_total + self.gaussian.scale_tril.diagonal().log().sum()
        poses = torch.stack([_known(c) for c in cols], 1)  # every level done: every joint set
        return poses.reshape(lead + self.event_shape), log_det_total.reshape(lead), base.reshape(lead)


class JointFlowPrior(FlowDistribution):
    """``log p(x) = sum_j log p(x_j | x_before(j))``: per joint a small conditional flow on R^3 with
    weights of its own (grouped layers), all joints evaluated in one batched call, conditioned on
    the joint's parent rotation (:func:`parent_features`; zeros for roots of the selection).

    With a ``gaussian`` layer the flows model the pose's full-covariance Gaussian residual: joints
    are taken in the tree's level order (parents first), ``u = L^-1 (x - mean)`` with ``L``
    lower-triangular, and ``log p(x) = sum_j log f_j(u_j | c_j) - sum log diag L``, where the
    context ``c_j`` is the parent's rotation and the Gaussian's prediction of joint ``j`` from the
    earlier levels, ``mean_j + L[j, earlier] u[earlier]``. Both are functions of earlier levels, so
    the density is exact; at initialisation (identity flows) it is the data's full-covariance
    Gaussian, and the flows add each joint's non-Gaussian structure. Without it,
    ``log p(x) = sum_j log f_j(x_j | x_parent(j))``.

    Sampling goes level by level down the tree, one flow call per depth level. Exact ``log_prob``
    (nats, Lebesgue on R^(3J)); reparameterised ``rsample``.
    ``TransformedDistribution(N(0, I), [JointFlowTransform(flow, parents, gaussian)])``, joint
    ``j``'s noise driving joint ``j`` (``probpose/distributions/flow.py``).

    Args:
        flow: a :class:`~probpose.flows.GroupedFlowStack` on R^3 with one group per joint and
            ``context_dim == PARENT_FEATURES``.
        parents: parent index per joint (``-1`` for roots), as in :class:`~probpose.skeleton.Skeleton`.
        gaussian: a :class:`~probpose.flows.GaussianLayer` on R^(3J) over the joints in level order, or None.
        batch_shape: batch shape (the prior has no per-batch parameters; default ``()``).

    Example:
        >>> import torch
        >>> from probpose.models import load_model
        >>> model = load_model("cmu/joint_flow")  # its distribution is a JointFlowPrior
        >>> poses = model().sample((3,))
        >>> per_joint = model.joint_log_prob(poses)  # (3, 21) nats, one term per joint
        >>> torch.allclose(per_joint.sum(-1), model().log_prob(poses), atol=1e-3)
        True
    """

    def __init__(
        self,
        flow: GroupedFlowStack,
        parents: Sequence[int],
        gaussian: GaussianLayer | None = None,
        batch_shape: torch.Size | tuple[int, ...] = (),
        validate_args: bool | None = None,
    ) -> None:
        super().__init__(JointFlowTransform(flow, parents, gaussian), batch_shape, validate_args)

    @property
    def transform(self) -> JointFlowTransform:
        t = self.transforms[0]
        assert isinstance(t, JointFlowTransform)
        return t

    def joint_log_prob(self, value: Tensor) -> Tensor:
        """Per-joint terms ``(..., J, 3) -> (..., J)`` that sum to ``log_prob``: ``log f_j(u_j | x_parent)``
        minus the Gaussian layer's ``sum log diag L`` over joint ``j``'s three rows."""
        z, log_det = self.transform.inverse_per_joint(value)
        return standard_normal_log_prob(z) - log_det

    def log_prob(self, value: Tensor) -> Tensor:
        return self.joint_log_prob(self._values(value)).sum(-1)


def _known(column: Tensor | None) -> Tensor:
    """A joint's column that an earlier level has set."""
    assert column is not None
    return column
