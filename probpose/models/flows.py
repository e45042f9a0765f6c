"""Trainable normalizing-flow priors: a global flow over the whole pose and per-joint
conditional flows over the kinematic tree."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from probpose.distributions import GlobalFlowPrior, JointFlowPrior, parent_features
from probpose.distributions.joint_flow import GAUSSIAN_FEATURES, PARENT_FEATURES
from probpose.flows import GaussianLayer, coupling_stack
from probpose.flows.grouped import GroupedActNorm, GroupedAutoregressive, GroupedFlowStack
from probpose.models.base import PriorModel
from probpose.models.registry import ModelSpec, register
from probpose.options import MAX_DEPTH, MAX_SEED, MAX_WIDTH, option, validate
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
    ``seed`` fixes the permutations. ``gaussian_layer``: a learnable full-covariance Gaussian
    layer at the data side, fitted to the training data at initialisation (eigenvalues floored at
    ``min_variance`` rad^2), so the flow starts as the data's full-covariance Gaussian and the
    couplings only add to it."""

    coupling: Literal["affine", "spline"] = "affine"
    K: int = option(8, ge=1, le=MAX_DEPTH)
    hidden: int = option(256, ge=1, le=MAX_WIDTH)
    layers: int = option(2, ge=0, le=MAX_DEPTH)
    mixing: Literal["lu", "permute", "none"] = "lu"
    use_actnorm: bool = True
    num_bins: int = option(8, ge=2, le=MAX_WIDTH)
    tail_bound: float = option(5.0, gt=0)
    use_conditioning: bool = False
    condition_on: str = "body"
    seed: int = option(0, ge=0, le=MAX_SEED)
    gaussian_layer: bool = True
    min_variance: float = option(1e-6, gt=0)

    def __post_init__(self) -> None:
        validate(self)


class GlobalFlowModel(PriorModel):
    """A :class:`GlobalFlowPrior` over the (modelled) pose as one vector in R^(3J)."""

    options: GlobalFlowOptions

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
            3 * len(modelled),
            o.K,
            o.coupling,
            context_dim=6 * len(context_idx),
            hidden=o.hidden,
            layers=o.layers,
            mixing=o.mixing,
            actnorm=o.use_actnorm,
            num_bins=o.num_bins,
            tail_bound=o.tail_bound,
            seed=o.seed,
            gaussian=o.gaussian_layer,
            min_variance=o.min_variance,
        )

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
    """Per joint a conditional flow on R^3 with weights of its own, all joints in one batched call:
    ``K`` masked autoregressive layers (alternating variable order) whose transform is a
    rational-quadratic ``spline`` (``num_bins`` bins on ``+-tail_bound`` standardised units,
    identity beyond) or ``affine``; each conditioner an MLP of ``layers`` x ``hidden`` per joint;
    context = the parent's rotation (6D and axis-angle). ``gaussian_layer``: the flows model the
    residual of the data's full-covariance Gaussian (eigenvalues floored at ``min_variance``
    rad^2), so the prior starts as that Gaussian; otherwise ``use_actnorm`` standardises each
    joint at the data side, initialised on the training data."""

    transform: Literal["spline", "affine"] = "spline"
    K: int = option(2, ge=1, le=MAX_DEPTH)
    hidden: int = option(32, ge=1, le=MAX_WIDTH)
    layers: int = option(2, ge=0, le=MAX_DEPTH)
    num_bins: int = option(8, ge=2, le=MAX_WIDTH)
    tail_bound: float = option(5.0, gt=0)
    use_actnorm: bool = True
    gaussian_layer: bool = True
    min_variance: float = option(1e-6, gt=0)

    def __post_init__(self) -> None:
        validate(self)


class JointFlowModel(PriorModel):
    """A :class:`JointFlowPrior` over ``skeleton`` (parents = nearest selected ancestors)."""

    options: JointFlowOptions

    def __init__(self, skeleton: Skeleton, options: JointFlowOptions | None = None) -> None:
        super().__init__(skeleton)
        self.options = o = options or JointFlowOptions()
        j = skeleton.num_joints
        features = PARENT_FEATURES + (GAUSSIAN_FEATURES if o.gaussian_layer else 0)
        layers: list[nn.Module] = [
            GroupedAutoregressive(
                j,
                3,
                features,
                o.hidden,
                o.layers,
                o.transform,
                o.num_bins,
                o.tail_bound,
                order=torch.arange(3) if k % 2 == 0 else torch.arange(3).flip(0),
            )
            for k in range(o.K)
        ]
        if o.use_actnorm:
            layers.append(GroupedActNorm(j, 3, data_init=not o.gaussian_layer))
        self.flow = GroupedFlowStack(3, layers, features)
        self.gaussian = GaussianLayer(3 * j, o.min_variance) if o.gaussian_layer else None

    def forward(self, context: Tensor | None = None) -> JointFlowPrior:
        if context is not None:
            raise ValueError("JointFlowModel conditions each joint on its parent; it takes no external context")
        return JointFlowPrior(self.flow, self.skeleton.parents, self.gaussian)

    @torch.no_grad()
    def initialize(self, train_poses: Tensor) -> None:
        """Fit the Gaussian layer to the training poses, then initialise the per-joint ActNorms (if
        they standardise) on what reaches them."""
        x = train_poses.to(**self.factory())
        if self.gaussian is not None:
            order = list(self().transform.order)
            self.gaussian.initialize(x[:, order].reshape(len(x), -1))
        if self.options.use_actnorm and not self.options.gaussian_layer:
            index = torch.arange(self.num_joints, device=x.device)
            ctx = parent_features(x, self.skeleton.parents).permute(1, 2, 0)
            self.flow.initialize(x.permute(1, 2, 0), index, ctx)


register(
    ModelSpec(
        "global_flow",
        GlobalFlowOptions,
        GlobalFlowModel,
        "normalizing flow over the whole pose from the full-covariance Gaussian: RealNVP affine couplings, LU mixing",
    )
)
register(
    ModelSpec(
        "global_flow_spline",
        GlobalFlowOptions,
        GlobalFlowModel,
        "normalizing flow over the whole pose from the full-covariance Gaussian: rational-quadratic spline couplings",
        fixed={"coupling": "spline"},
        defaults={"K": 4, "hidden": 64},
    )
)
register(
    ModelSpec(
        "joint_flow",
        JointFlowOptions,
        JointFlowModel,
        "per-joint conditional spline flows on the full-covariance Gaussian's residual, each joint given its "
        "parent's rotation",
    )
)
