"""What every trainable pose model provides to the trainer, the evaluation and the CLI."""

from __future__ import annotations

import itertools

import pyro
import torch
from pyro.distributions import TorchDistribution
from torch import Tensor, nn

from probpose.skeleton import Skeleton

__all__ = ["PoseModel", "PriorModel"]

_instance_ids = itertools.count()


class PoseModel(nn.Module):
    """A model of ``(J, 3)`` axis-angle poses over ``skeleton``.

    Subclasses implement:

    - ``model(poses)`` / ``guide(poses)``: a Pyro model and guide; ``-ELBO / N`` is the training
      loss in nats per pose (for a pure likelihood model the guide is empty and this is the NLL).
    - ``log_prob(poses) -> (N,)``: the log-density of each pose in nats (Lebesgue on R^(3J)), or,
      where ``exact_log_prob`` is ``False``, a lower bound on it. A model may condition on some
      joints of the input (``modelled`` lists the others); its log_prob is then the conditional
      density of the modelled joints given the rest.
    - ``sample(n) -> (n, J, 3)``.
    - optionally ``initialize(train_poses)`` for data-dependent initialisation (never on
      evaluation data) and ``fit_closed_form(train_poses)`` where a closed form exists.
    """

    exact_log_prob: bool = True
    has_closed_form: bool = False

    def __init__(self, skeleton: Skeleton, modelled: tuple[int, ...] | None = None) -> None:
        super().__init__()
        self.skeleton = skeleton
        self.modelled = tuple(range(skeleton.num_joints)) if modelled is None else tuple(modelled)
        # a unique Pyro name per instance: a stale param-store entry under a shared name would
        # otherwise be returned instead of this module's parameters (DESIGN.md section 7)
        self.pyro_name = f"{type(self).__name__}_{next(_instance_ids)}"

    @property
    def num_joints(self) -> int:
        """J of the input poses ``(N, J, 3)`` (the skeleton's joints)."""
        return self.skeleton.num_joints

    @property
    def event_dim(self) -> int:
        """D = 3 x the number of modelled joints (all joints, unless the model conditions on some)."""
        return 3 * len(self.modelled)

    @property
    def conditional(self) -> bool:
        """True when some input joints are context, not modelled: ``log_prob`` is conditional."""
        return len(self.modelled) < self.skeleton.num_joints

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def initialize(self, train_poses: Tensor) -> None:  # noqa: B027 - optional hook
        """Data-dependent initialisation from training poses ``(N, J, 3)``; default: nothing."""

    def set_step(self, step: int) -> None:  # noqa: B027 - optional hook
        """Told the training step before each SVI step (for schedules such as KL annealing)."""

    def validation_log_prob(self, poses: Tensor) -> Tensor:
        """What the trainer validates with: ``log_prob`` unless a cheaper bound serves (VAEs)."""
        return self.log_prob(poses)

    def fit_closed_form(self, train_poses: Tensor) -> None:
        raise NotImplementedError(f"{type(self).__name__} has no closed-form fit")

    def model(self, poses: Tensor) -> None:
        raise NotImplementedError

    def guide(self, poses: Tensor) -> None:
        raise NotImplementedError

    def log_prob(self, poses: Tensor) -> Tensor:
        raise NotImplementedError

    def sample(self, n: int) -> Tensor:
        raise NotImplementedError


class PriorModel(PoseModel):
    """A model with an exact density: ``forward(context=None)`` returns a Pyro distribution over
    ``(J, 3)`` poses (the "lazy distribution" pattern), and the guide is empty."""

    def forward(self, context: Tensor | None = None) -> TorchDistribution:
        raise NotImplementedError

    def model(self, poses: Tensor) -> None:
        pyro.module(self.pyro_name, self)
        with pyro.plate("poses", poses.shape[0]):
            pyro.sample("pose", self(), obs=poses)

    def guide(self, poses: Tensor) -> None:
        """Empty: every variable is observed, so the ELBO is the log-likelihood."""

    def log_prob(self, poses: Tensor) -> Tensor:
        return self().log_prob(poses)

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        return self().sample((n,))
