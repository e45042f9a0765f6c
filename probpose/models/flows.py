"""Trainable normalizing-flow priors: a global flow over the whole pose and per-joint
conditional flows over the kinematic tree."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from probpose.distributions import GlobalFlowPrior, JointFlowPrior, parent_features
from probpose.flows import coupling_stack
from probpose.models.base import PriorModel
from probpose.options import option
from probpose.rotations import axis_angle_to_matrix, matrix_to_rotation_6d
from probpose.skeleton import Skeleton

__all__ = ["GlobalFlowOptions", "GlobalFlowModel", "JointFlowOptions", "JointFlowModel"]


@dataclass
class GlobalFlowOptions:
    """``coupling``: ``affine`` (RealNVP) or ``spline`` (rational-quadratic); ``K`` coupling blocks
    of ``layers`` hidden layers of width ``hidden``; ``mixing`` between blocks: ``lu``
    (LU-decomposed linear map), ``permute`` or ``none``; ``use_actnorm``: ActNorm before each
    coupling, initialised on the training data; spline ``num_bins`` and ``tail_bound`` (linear tails
    beyond it, in standardised units). ``use_conditioning``: model the other joints given the 6D
    rotations of the ``condition_on`` joints (a joint selection); the NLL is then conditional.
    ``seed`` fixes the permutations."""

    coupling: Literal["affine", "spline"] = "affine"
    K: int = option(8, ge=1)
    hidden: int = option(256, ge=1)
    layers: int = option(2, ge=0)
    mixing: Literal["lu", "permute", "none"] = "lu"
    use_actnorm: bool = True
    num_bins: int = option(8, ge=2)
    tail_bound: float = option(5.0, gt=0)
    use_conditioning: bool = False
    condition_on: str = "body"
    seed: int = option(0, ge=0)


class GlobalFlowModel(PriorModel):
    """A :class:`GlobalFlowPrior` over the (modelled) pose as one vector in R^(3J)."""

    def __init__(self, skeleton: Skeleton, options: GlobalFlowOptions | None = None) -> None:
        o = options or GlobalFlowOptions()
        context_idx: tuple[int, ...] = ()
        if o.use_conditioning:
            context_idx = skeleton.selection_indices(o.condition_on)
            if not context_idx or len(context_idx) == skeleton.num_joints:
                raise ValueError(f"condition_on {o.condition_on!r} must select some, not all, of {skeleton.name}")
        modelled = tuple(j for j in range(skeleton.num_joints) if j not in context_idx)
        super().__init__(skeleton, modelled)
        self.options = o
        self.context_idx = context_idx
        self.flow = coupling_stack(
            3 * len(modelled), o.K, o.coupling, context_dim=6 * len(context_idx), hidden=o.hidden,
            layers=o.layers, mixing=o.mixing, actnorm=o.use_actnorm, num_bins=o.num_bins,
            tail_bound=o.tail_bound, seed=o.seed,
        )  # fmt: skip

    def context_of(self, poses: Tensor) -> Tensor | None:
        """``(..., J, 3)`` poses -> ``(..., 6 C)`` context (6D rotations of the condition joints)."""
        if not self.context_idx:
            return None
        rot = matrix_to_rotation_6d(axis_angle_to_matrix(poses[..., list(self.context_idx), :]))
        return rot.flatten(-2)

    def forward(self, context: Tensor | None = None) -> GlobalFlowPrior:
        return GlobalFlowPrior(self.flow, len(self.modelled), context)

    def initialize(self, train_poses: Tensor) -> None:
        x = train_poses[:, list(self.modelled)].to(**self.factory())
        self.flow.initialize(x.reshape(len(x), -1), self.context_of(train_poses.to(x)))

    @torch.no_grad()
    def sample(self, n: int, context: Tensor | None = None) -> Tensor:
        """``(n, J_modelled, 3)`` samples; a conditional model needs ``context`` ``(n, 6 C)``."""
        if self.context_idx and context is None:
            raise ValueError("a conditional flow samples given a context: pass context=model.context_of(poses)")
        return self(context).sample(() if context is not None else (n,))


@dataclass
class JointFlowOptions:
    """One 3-D conditional flow shared by all joints: ``K`` coupling blocks (``affine`` or
    ``spline``) of ``layers`` x ``hidden``; context = parent's 6D rotation + a learned
    ``embedding_dim`` joint embedding; ``mixing`` between blocks; ``use_actnorm`` inside the flow;
    ``per_joint_norm``: a per-joint affine standardisation in front of it (initialised on the
    training data)."""

    coupling: Literal["affine", "spline"] = "spline"
    K: int = option(4, ge=1)
    hidden: int = option(64, ge=1)
    layers: int = option(2, ge=0)
    embedding_dim: int = option(16, ge=1)
    mixing: Literal["lu", "permute", "none"] = "lu"
    use_actnorm: bool = True
    per_joint_norm: bool = True
    num_bins: int = option(8, ge=2)
    tail_bound: float = option(5.0, gt=0)
    seed: int = option(0, ge=0)


class JointFlowModel(PriorModel):
    """A :class:`JointFlowPrior` over ``skeleton`` (parents = nearest selected ancestors)."""

    def __init__(self, skeleton: Skeleton, options: JointFlowOptions | None = None) -> None:
        super().__init__(skeleton)
        o = options or JointFlowOptions()
        self.options = o
        j = skeleton.num_joints
        self.flow = coupling_stack(
            3, o.K, o.coupling, context_dim=6 + o.embedding_dim, hidden=o.hidden, layers=o.layers,
            mixing=o.mixing, actnorm=o.use_actnorm, num_bins=o.num_bins, tail_bound=o.tail_bound, seed=o.seed,
        )  # fmt: skip
        gen = torch.Generator().manual_seed(o.seed)
        self.embedding = nn.Parameter(torch.randn(j, o.embedding_dim, generator=gen))
        if o.per_joint_norm:
            self.loc = nn.Parameter(torch.zeros(j, 3))
            self.log_scale = nn.Parameter(torch.zeros(j, 3))
        else:
            self.loc = self.log_scale = None

    def forward(self, context: Tensor | None = None) -> JointFlowPrior:
        if context is not None:
            raise ValueError("JointFlowModel conditions each joint on its parent; it takes no external context")
        return JointFlowPrior(self.flow, self.embedding, self.skeleton.parents, self.loc, self.log_scale)

    @torch.no_grad()
    def initialize(self, train_poses: Tensor) -> None:
        x = train_poses.to(self.embedding)
        if self.loc is not None:
            self.loc.copy_(x.mean(0))
            self.log_scale.copy_(x.std(0).clamp_min(1e-6).log())
        prior = self()
        u = (x - prior.loc) * torch.exp(-prior.log_scale)
        self.flow.initialize(u.reshape(-1, 3), prior._context(parent_features(x, self.skeleton.parents)))
