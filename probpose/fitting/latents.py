"""How the pose enters the fitting model: one parameterisation object per kind of prior, chosen once
by :func:`pose_latent`, so the model, the start values and the results never ask which kind of prior
they have.

- :class:`FlatPose` (no prior): ``pose`` is the sampled site, under a flat (improper) prior;
- :class:`PriorPose` (``space="pose"``): ``pose`` is sampled from the prior with its exact
  ``log_prob`` (Gaussians, ``gmm``, flows);
- :class:`BasePose` (``space="base"``, flows): Pyro's ``TransformReparam`` on the ``pose`` site; the
  latent is the flow's noise ``pose_base ~ N(0, I)`` and ``pose = flow(pose_base)``;
- :class:`VAELatent` (a :class:`~probpose.models.LatentPoseModel`): ``z ~ N(0, I)`` and
  ``pose = decoder mean(z)`` (VPoser-style).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from pyro.infer.reparam import TransformReparam
from torch import Tensor

from probpose.distributions import FlowDistribution
from probpose.errors import DataError
from probpose.models import LatentPoseModel, PoseModel, PriorModel

__all__ = ["PoseLatent", "FlatPose", "PriorPose", "BasePose", "VAELatent", "pose_latent"]


class PoseLatent:
    """The pose's latent site: its ``name``, its per-frame ``shape``, :meth:`sample` (inside the
    model's frames plate; returns the pose ``(N, J, 3)``), :meth:`reparam` (entered outside that
    plate), :meth:`pose_of` (latent values -> poses) and :meth:`start` (the values a fit starts
    from, ``(N,) + shape``)."""

    name = "pose"

    def __init__(self, num_joints: int, dtype: torch.dtype) -> None:
        self.num_joints, self.dtype = num_joints, dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.num_joints, 3)

    def sample(self) -> Tensor:
        raise NotImplementedError

    def reparam(self) -> AbstractContextManager:
        """The reparameterisation of the model's sites, entered *outside* the frames plate (none by
        default). Entered inside it, Pyro's autoguides give a reparameterised site no batch shape."""
        return nullcontext()

    def pose_of(self, latent: Tensor) -> Tensor:
        return latent

    def start(self, n: int) -> Tensor:
        return torch.zeros((n,) + self.shape, dtype=self.dtype)


class FlatPose(PoseLatent):
    """No prior: the likelihood alone."""

    def sample(self) -> Tensor:
        return pyro.sample("pose", dist.ImproperUniform(constraints.real, torch.Size(), torch.Size(self.shape)))


class PriorPose(PoseLatent):
    """The pose sampled from the prior itself."""

    def __init__(self, prior: PoseModel, num_joints: int, dtype: torch.dtype) -> None:
        super().__init__(num_joints, dtype)
        self.prior = prior

    def sample(self) -> Tensor:
        return pyro.sample("pose", self.prior())

    def start(self, n: int) -> Tensor:
        """The mean of 512 prior samples, seeded (the caller's RNG is restored after)."""
        with torch.no_grad(), pyro.poutine.block(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            mean = self.prior().sample((512,)).mean(0)
        return mean.to(self.dtype).expand((n,) + self.shape).clone()


class BasePose(PriorPose):
    """A flow prior's base space: the latent is the flow's noise."""

    name = "pose_base"

    def sample(self) -> Tensor:
        return pyro.sample("pose", self.prior())  # "pose_base" and "pose" under :meth:`reparam`

    def reparam(self) -> AbstractContextManager:
        return pyro.poutine.reparam(config={"pose": TransformReparam()})

    def pose_of(self, latent: Tensor) -> Tensor:
        (flow,) = self.prior().transforms
        return flow(latent)

    def latent_of(self, pose: Tensor) -> Tensor:
        """The flow's noise ``(..., J, 3)`` of poses ``(..., J, 3)``: its inverse, one batched call
        (much cheaper than :meth:`pose_of`, the push-forward, for the joint flow)."""
        (flow,) = self.prior().transforms
        return flow.inv(pose)

    def base_log_prob_of_pose(self, pose: Tensor) -> Tensor:
        """``log N(flow^-1(pose); 0, I)`` ``(...,)`` nats: the base-space prior term of the log joint
        as a function of the pose. Maximising it plus the likelihood over the pose has the same
        maximisers as the base-space MAP (the pose is the flow of the noise; a bijection moves
        the maximiser without changing the objective's values, no log-determinant enters)."""
        prior = self.prior()
        return prior.base_dist.log_prob(self.latent_of(pose).to(self.dtype))

    def start(self, n: int) -> Tensor:
        return PoseLatent.start(self, n)  # zero noise: the flow's centre


class VAELatent(PoseLatent):
    """A VAE's latent ``z``; the pose is the decoder's mean."""

    name = "z"

    def __init__(self, prior: LatentPoseModel, num_joints: int, dtype: torch.dtype) -> None:
        super().__init__(num_joints, dtype)
        self.prior = prior

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.prior.options.z_dim,)

    def sample(self) -> Tensor:
        z = pyro.sample("z", dist.Normal(torch.zeros((), dtype=self.dtype), 1.0).expand(self.shape).to_event(1))
        return pyro.deterministic("pose", self.prior.decode_mean(z), event_dim=2)

    def pose_of(self, latent: Tensor) -> Tensor:
        return self.prior.decode_mean(latent)


def pose_latent(prior: PoseModel | None, space: str, num_joints: int, dtype: torch.dtype) -> PoseLatent:
    """The parameterisation for ``prior`` in ``space`` (``"pose"`` or ``"base"``): the one place
    that looks at the kind of prior."""
    if space not in ("pose", "base"):
        raise ValueError(f"space must be 'pose' or 'base', got {space!r}")
    if prior is None:
        return FlatPose(num_joints, dtype)
    if space == "base":
        if not isinstance(prior, PriorModel) or not isinstance(prior(), FlowDistribution):
            raise DataError("space", None, f"'base' needs a flow prior; {type(prior).__name__} has no base space")
        return BasePose(prior, num_joints, dtype)
    if isinstance(prior, LatentPoseModel):
        return VAELatent(prior, num_joints, dtype)
    return PriorPose(prior, num_joints, dtype)
