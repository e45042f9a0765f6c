"""What every trainable pose model provides to the trainer, the evaluation, the bench and the CLI.

- :class:`PoseModel` (abstract): a Pyro ``model``/``guide`` pair, ``log_prob`` and ``sample``,
  and the optional trainer hooks of :class:`TrainerHooks`.
- :class:`PriorModel`: an exact density; ``forward(context=None)`` returns the Pyro distribution
  (the lazy-distribution pattern), the guide is empty.
- :class:`LatentPoseModel`: a latent-variable model (the VAEs): a bound instead of an exact
  density, reconstructions, and smooth sequences through latent space.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import pyro
import torch
from pyro.distributions import TorchDistribution
from torch import Tensor, nn

from probpose.distributions import JointFlowPrior, PerJointGaussianPrior
from probpose.errors import DataError
from probpose.models.chunks import Chunks
from probpose.parallel import SINGLE, Group
from probpose.skeleton import Skeleton

__all__ = ["TrainerHooks", "PoseModel", "PriorModel", "LatentPoseModel", "check_latent_step"]


def check_latent_step(step: float) -> float:
    """The latent step per frame of a VAE's pose sequence (:meth:`LatentPoseModel.sequence`), which
    must lie in (0, 1); a :class:`~probpose.errors.DataError` naming `step` otherwise."""
    if not (isinstance(step, (int, float)) and 0 < step < 1):
        raise DataError("`step`", None, f"the latent step per frame must be in (0, 1), got {step!r}")
    return float(step)


@runtime_checkable
class TrainerHooks(Protocol):
    """What :class:`~probpose.training.Trainer` calls on a model, besides ``model``/``guide``."""

    has_closed_form: bool

    def initialize(self, train_poses: Tensor) -> None: ...

    def set_step(self, step: int) -> None: ...

    def validation_log_prob(self, poses: Tensor) -> Tensor: ...

    def fit_closed_form(
        self, train_poses: Tensor | Chunks, group: Group = SINGLE, val_poses: Tensor | None = None
    ) -> None: ...


class PoseModel(nn.Module, metaclass=abc.ABCMeta):
    """A model of ``(J, 3)`` axis-angle poses over ``skeleton``.

    Subclasses implement:

    - ``model(poses)`` / ``guide(poses)``: a Pyro model and guide; ``-ELBO / N`` is the training
      loss in nats per pose (for a pure likelihood model the guide is empty and this is the NLL).
    - ``log_prob(poses) -> (N,)``: the log-density of each pose in nats (Lebesgue on R^(3J)), or,
      where ``exact_log_prob`` is ``False``, a lower bound on it. A model may condition on some
      joints of the input (``modelled`` lists the others); its log_prob is then the conditional
      density of the modelled joints given the rest.
    - ``sample(n) -> (n, J_modelled, 3)``.

    and may override the :class:`TrainerHooks`: ``initialize`` (data-dependent initialisation,
    never on evaluation data), ``set_step`` (schedules), ``validation_log_prob`` (a cheaper bound
    to monitor) and ``fit_closed_form`` (where ``has_closed_form``).

    ``registry_name`` and ``options`` say how to rebuild the model (set by
    :func:`~probpose.models.build_model`); checkpoints store them.
    """

    exact_log_prob: ClassVar[bool] = True
    has_closed_form: ClassVar[bool] = False
    pyro_name: ClassVar[str] = "pose_model"
    """The name the model registers its parameters under in Pyro's parameter store. The trainer
    fits in a scoped store of its own, so one stable name serves every model."""

    def __init__(self, skeleton: Skeleton, modelled: tuple[int, ...] | None = None) -> None:
        super().__init__()
        self.skeleton = skeleton
        self.modelled = tuple(range(skeleton.num_joints)) if modelled is None else tuple(modelled)
        self.registry_name: str | None = None
        self.options: Any = None  # the model's options dataclass (each model class names its type)

    @property
    def num_joints(self) -> int:
        """J of the input poses ``(N, J, 3)`` (the skeleton's joints)."""
        return self.skeleton.num_joints

    @property
    def modelled_names(self) -> list[str]:
        """Names of the modelled joints, in the order of ``sample``'s output."""
        return [self.skeleton.joint_names[j] for j in self.modelled]

    @property
    def event_dim(self) -> int:
        """D = 3 x the number of modelled joints (all joints, unless the model conditions on some)."""
        return 3 * len(self.modelled)

    @property
    def conditional(self) -> bool:
        """True when some input joints are context, not modelled: ``log_prob`` is conditional."""
        return len(self.modelled) < self.skeleton.num_joints

    def num_parameters(self) -> int:
        """Number of parameters (trainable or frozen)."""
        return sum(p.numel() for p in self.parameters())

    def factory(self) -> dict[str, Any]:
        """``dtype`` and ``device`` of the model's parameters (float32 on the CPU if it has none)."""
        p = next(self.parameters(), None)
        return {"dtype": p.dtype, "device": p.device} if p is not None else {"dtype": torch.float32, "device": "cpu"}

    # ------------------------------------------------------------------ trainer hooks
    def initialize(self, train_poses: Tensor) -> None:  # noqa: B027 - optional hook
        """Data-dependent initialisation from training poses ``(N, J, 3)``; default: nothing."""

    def set_step(self, step: int) -> None:  # noqa: B027 - optional hook
        """Told the training step before each SVI step (for schedules such as KL annealing)."""

    def validation_log_prob(self, poses: Tensor) -> Tensor:
        """What the trainer validates with: ``log_prob`` unless a cheaper bound serves (VAEs)."""
        return self.log_prob(poses)

    def fit_closed_form(
        self, train_poses: Tensor | Chunks, group: Group = SINGLE, val_poses: Tensor | None = None
    ) -> None:
        """Fit exactly (where ``has_closed_form``) from poses ``(N, J, 3)`` or a chunk source. With a
        distributed ``group`` each process passes its own rows, in rank order, and every process ends
        with the fit of their union. ``val_poses`` ``(M, J, 3)``: validation poses (process 0's) for
        a fit with choices to make (the GMM's number of components); the others ignore them."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form fit")

    def joint_log_prob(self, poses: Tensor) -> Tensor | None:
        """``(N, J, 3) -> (N, J_modelled)``: per-joint terms that sum to ``log_prob``, for models
        that factorise over joints; ``None`` for the others (the default: a VAE, a global flow)."""
        return None

    # ------------------------------------------------------------------ the model
    @abc.abstractmethod
    def model(self, poses: Tensor) -> None:
        """The Pyro model of a batch ``(N, J, 3)``."""

    @abc.abstractmethod
    def guide(self, poses: Tensor) -> None:
        """The Pyro guide of a batch ``(N, J, 3)``."""

    @abc.abstractmethod
    def log_prob(self, poses: Tensor) -> Tensor:
        """``(N, J, 3) -> (N,)`` log-density in nats (a lower bound where not ``exact_log_prob``)."""

    @abc.abstractmethod
    def sample(self, n: int) -> Tensor:
        """``(n, J_modelled, 3)`` poses."""


class PriorModel(PoseModel):
    """A model with an exact density: ``forward(context=None)`` returns a Pyro distribution over
    ``(J, 3)`` poses (the "lazy distribution" pattern), and the guide is empty."""

    @abc.abstractmethod
    def forward(self, context: Tensor | None = None) -> TorchDistribution:
        """The prior as a Pyro distribution (given ``context`` for a conditional model)."""

    def context_of(self, poses: Tensor) -> Tensor | None:
        """The context a conditional model reads from full poses ``(..., J, 3)`` (None if unconditional)."""
        return None

    def model(self, poses: Tensor) -> None:
        pyro.module(self.pyro_name, self)
        with pyro.plate("poses", poses.shape[0]):
            pyro.sample("pose", self(self.context_of(poses)), obs=poses[:, list(self.modelled)])

    def guide(self, poses: Tensor) -> None:
        """Empty: every variable is observed, so the ELBO is the log-likelihood."""

    def log_prob(self, poses: Tensor) -> Tensor:
        return self(self.context_of(poses)).log_prob(poses[:, list(self.modelled)])

    def joint_log_prob(self, poses: Tensor) -> Tensor | None:
        """``(N, J, 3) -> (N, J_modelled)``: per-joint terms that sum to ``log_prob``, for priors
        that factorise over joints (per-joint Gaussians, per-joint flows); ``None`` otherwise."""
        dist = self(self.context_of(poses))
        if not isinstance(dist, (PerJointGaussianPrior, JointFlowPrior)):
            return None
        return dist.joint_log_prob(poses[:, list(self.modelled)])

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        return self().sample((n,))


class LatentPoseModel(PoseModel):
    """A latent-variable model ``z ~ N(0, I)``, ``x ~ p(x | z)``: ``log_prob`` is an importance
    weighted lower bound, ``elbo`` the looser one; it reconstructs and walks its latent space."""

    exact_log_prob: ClassVar[bool] = False

    @abc.abstractmethod
    def elbo(self, poses: Tensor, samples: int = 100) -> Tensor:
        """Per-pose ELBO ``(N,)`` in nats."""

    @abc.abstractmethod
    def reconstruction_error(self, poses: Tensor) -> Tensor:
        """Mean geodesic reconstruction angle per pose ``(N,)``, degrees."""

    @abc.abstractmethod
    def decode_mean(self, z: Tensor) -> Tensor:
        """The decoder's most likely pose ``(..., J, 3)`` for latents ``(..., z_dim)``."""

    @abc.abstractmethod
    def sequence(
        self,
        n_frames: int,
        step: float = 0.05,
        mode: Literal["walk", "slerp"] = "walk",
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """A smooth pose sequence ``(n_frames, J, 3)`` through latent space."""
