"""What the flow priors share: a standard-normal base over ``(J, 3)`` pushed through one bijection.

A flow prior **is** a Pyro ``TransformedDistribution``: ``base_dist`` is ``N(0, I)`` over the
``(J, 3)`` base noise and ``transforms`` is ``[FlowTransform]``, a ``torch.distributions.Transform``
from noise to poses (event dimension 2) whose layers are normflows flows. So everything Pyro does
with transformed distributions works as it does for its own: ``poutine.reparam`` with
``TransformReparam`` moves a model's pose site to the base space (site ``NAME_base``), ``expand``
comes from the parent (and refuses shapes torch refuses), ``support`` is the transform's codomain.

One sign convention, normflows' and torch's: the forward map goes from the base ``z`` to the pose
``x`` and its log-determinant is ``log |det dx/dz|``; ``log p(x) = log N(z) - log |det dx/dz|``.

Two methods are overridden for speed with the same values: ``log_prob`` runs the flow's inverse
once (torch's generic version would invert, then recompute the log-determinant), and ``rsample``
draws the noise as the flow samples it (the joint flow level by level) and pushes it forward.
``rsample_and_log_prob`` (zuko's name) gives samples with their log-density along the generating
path, without inverting.
"""

from __future__ import annotations

import torch
import torch.distributions.constraints as torch_constraints
from pyro.distributions import Normal, TorchDistribution, TransformedDistribution
from torch import Tensor

from probpose.distributions.constraints import pose_space

__all__ = ["FlowDistribution", "FlowTransform"]


class FlowTransform(torch.distributions.Transform):
    """The generating map of a flow prior: base noise ``(..., J, 3)`` -> poses ``(..., J, 3)``.

    Calls the prior's :meth:`FlowDistribution.forward_and_log_det` and
    :meth:`~FlowDistribution.inverse_and_log_det`; the log-determinant of the latest pair is kept,
    so ``log_abs_det_jacobian(z, x)`` after ``x = t(z)`` (or ``z = t.inv(x)``) costs nothing."""

    domain = torch_constraints.independent(torch_constraints.real, 2)
    codomain = pose_space
    bijective = True
    sign = +1

    def __init__(self, prior: FlowDistribution, cache_size: int = 0) -> None:
        super().__init__(cache_size=cache_size)
        self.prior = prior
        self._latest: tuple[Tensor, Tensor, Tensor] | None = None

    def with_cache(self, cache_size: int = 1) -> FlowTransform:
        return self if self._cache_size == cache_size else FlowTransform(self.prior, cache_size)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FlowTransform) and other.prior is self.prior

    def _call(self, z: Tensor) -> Tensor:
        x, log_det = self.prior.forward_and_log_det(z)
        self._latest = (z, x, log_det)
        return x

    def _inverse(self, x: Tensor) -> Tensor:
        z, log_det = self.prior.inverse_and_log_det(x)
        self._latest = (z, x, log_det)
        return z

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        """``log |det dy/dx|`` ``(...,)`` (nats) of ``y = t(x)``: torch's names, here noise ``x`` and
        pose ``y``."""
        if self._latest is not None and self._latest[0] is x and self._latest[1] is y:
            return self._latest[2]
        return self.prior.forward_and_log_det(x)[1]


class FlowDistribution(TransformedDistribution):
    """Base of the flow priors: ``N(0, I)`` noise of shape ``batch_shape + (J, 3)`` through a
    :class:`FlowTransform`; support R^(3J) (finite poses), reparameterised.

    Subclasses implement :meth:`forward_and_log_det`, :meth:`inverse_and_log_det`,
    :meth:`rsample_and_log_prob` and ``log_prob``, and list in ``_shared`` the attributes an
    expanded copy shares (the flow itself and its layout)."""

    arg_constraints: dict = {}
    _shared: tuple[str, ...] = ()

    def _init_flow(
        self, event_shape: torch.Size, batch_shape: torch.Size, factory: dict, validate_args: bool | None
    ) -> None:
        base = Normal(torch.zeros((), **factory), torch.ones((), **factory)).expand(batch_shape + event_shape)
        super().__init__(base.to_event(len(event_shape)), [FlowTransform(self)], validate_args=validate_args)

    def expand(
        self, batch_shape: torch.Size | tuple[int, ...], _instance: TorchDistribution | None = None
    ) -> FlowDistribution:
        new = self._get_checked_instance(type(self), _instance)
        for name in self._shared:
            setattr(new, name, getattr(self, name))
        return super().expand(batch_shape, _instance=new)

    @property
    def support(self) -> torch_constraints.Constraint:
        return pose_space

    def _factory(self) -> dict:
        """dtype and device of the prior (of its base noise)."""
        loc = self.base_dist.base_dist.loc
        return {"dtype": loc.dtype, "device": loc.device}

    # ------------------------------------------------------------------ the bijection
    def forward_and_log_det(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Base noise ``(..., J, 3)`` -> poses ``(..., J, 3)`` and ``log |det dx/dz|`` ``(...,)``."""
        raise NotImplementedError

    def inverse_and_log_det(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Poses ``(..., J, 3)`` -> base noise ``(..., J, 3)`` and ``log |det dx/dz|`` ``(...,)`` (the
        forward map's, so both methods report the same quantity)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ sampling
    def rsample_and_log_prob(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> tuple[Tensor, Tensor]:
        """Samples ``sample_shape + batch_shape + (J, 3)`` and their log-density (nats), computed
        along the generating path (base density minus the forward log|det|) without inverting."""
        raise NotImplementedError

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        return self.rsample_and_log_prob(sample_shape)[0]

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)
