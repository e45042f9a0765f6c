"""What the flow priors share: a standard-normal base over ``(J, 3)`` pushed through one bijection.

A flow prior **is** a Pyro ``TransformedDistribution(base, [transform])``: ``base_dist`` is
``N(0, I)`` over the ``(J, 3)`` base noise and ``transform`` is a :class:`FlowTransform`, a
``torch.distributions.Transform`` from noise to poses (event dimension 2) that **owns its layers**
(as zuko's ``Flow(transform, base)`` and Pyro's ``TransformModule``\\ s do) and computes a value and
its log-determinant together. So everything Pyro does with transformed distributions works as it
does for its own: ``poutine.reparam`` with ``TransformReparam`` moves a model's pose site to the
base space (site ``NAME_base``), ``expand`` comes from the parent and shares the transform (and
refuses shapes torch refuses), ``support`` is the transform's codomain.

One sign convention, normflows' and torch's: the forward map goes from the base ``z`` to the pose
``x`` and its log-determinant is ``log |det dx/dz|``; ``log p(x) = log N(z) - log |det dx/dz|``.

A new flow prior is a :class:`FlowTransform` subclass with :meth:`~FlowTransform.forward_and_log_det`
and :meth:`~FlowTransform.inverse_and_log_det` (and, if it draws its noise in another order,
:meth:`~FlowTransform.generate`), and a :class:`FlowDistribution` over it; nothing else to list.

Two methods of the distribution are overridden for speed with the same values: ``log_prob`` runs
the flow's inverse once (torch's generic version would invert, then recompute the log-determinant),
and ``rsample`` draws the noise as the transform generates it (the joint flow level by level) and
pushes it forward. ``rsample_and_log_prob`` (zuko's name) gives samples with their log-density along
the generating path, without inverting.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator

import torch
import torch.distributions.constraints as torch_constraints
from pyro.distributions import Normal, TorchDistribution, TransformedDistribution
from torch import Tensor, nn

from probpose.distributions.constraints import pose_space

__all__ = ["FlowDistribution", "FlowTransform", "standard_normal_log_prob"]


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """``log N(z; 0, I)`` ``(...,)`` (nats) of vectors ``z`` ``(..., D)`` (the last dimension)."""
    return -0.5 * (z * z).sum(-1) - 0.5 * z.shape[-1] * math.log(2 * math.pi)


class FlowTransform(torch.distributions.Transform):
    """The generating map of a flow prior, owning its layers: base noise ``(..., J, 3)`` -> poses
    ``(..., J, 3)`` (radians).

    Subclasses implement :meth:`forward_and_log_det` and :meth:`inverse_and_log_det` (both report
    the forward map's ``log |det dx/dz|``) and may override :meth:`generate`. As in Pyro's own
    transform modules, the log-determinant of the latest call is kept, so
    ``log_abs_det_jacobian(z, x)`` right after ``x = t(z)`` (or ``z = t.inv(x)``) costs nothing.

    Args:
        num_joints: J.
        cache_size: torch's transform cache (0 or 1).
    """

    domain = torch_constraints.independent(torch_constraints.real, 2)
    codomain = pose_space
    bijective = True
    sign = +1

    def __init__(self, num_joints: int, cache_size: int = 0) -> None:
        super().__init__(cache_size=cache_size)
        self.event_shape = torch.Size((num_joints, 3))
        self._origin: FlowTransform = self
        self._latest: tuple[Tensor, Tensor, Tensor] | None = None

    def parameters(self) -> Iterator[nn.Parameter]:
        """The layers' parameters, as ``nn.Module.parameters`` gives them (subclasses name the
        modules they own)."""
        raise NotImplementedError

    def factory(self) -> dict:
        """dtype and device of the layers' parameters (what values are computed in)."""
        p = next(iter(self.parameters()))
        return {"dtype": p.dtype, "device": p.device}

    def with_cache(self, cache_size: int = 1) -> FlowTransform:
        if self._cache_size == cache_size:
            return self
        new = copy.copy(self)  # the same layers, another cache
        torch.distributions.Transform.__init__(new, cache_size=cache_size)
        new._latest = None
        return new

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FlowTransform) and other._origin is self._origin

    def __hash__(self) -> int:
        return id(self._origin)

    # ------------------------------------------------------------------ the bijection
    def forward_and_log_det(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Base noise ``(..., J, 3)`` -> poses ``(..., J, 3)`` and ``log |det dx/dz|`` ``(...,)``."""
        raise NotImplementedError

    def inverse_and_log_det(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Poses ``(..., J, 3)`` -> base noise ``(..., J, 3)`` and ``log |det dx/dz|`` ``(...,)`` (the
        forward map's, so both methods report the same quantity)."""
        raise NotImplementedError

    def generate(self, lead: torch.Size) -> tuple[Tensor, Tensor, Tensor]:
        """Fresh standard-normal noise pushed forward: poses ``lead + (J, 3)``, ``log |det dx/dz|``
        and the noise's ``log N(z; 0, I)`` (both ``lead``, nats)."""
        z = torch.randn(lead.numel(), self.event_shape.numel(), **self.factory())
        x, log_det = self.forward_and_log_det(z.reshape(lead + self.event_shape))
        return x, log_det, standard_normal_log_prob(z).reshape(lead)

    # ------------------------------------------------------------------ torch's Transform API
    def _call(self, z: Tensor) -> Tensor:
        x, log_det = self.forward_and_log_det(z)
        self._latest = (z, x, log_det)
        return x

    def _inverse(self, x: Tensor) -> Tensor:
        z, log_det = self.inverse_and_log_det(x)
        self._latest = (z, x, log_det)
        return z

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        """``log |det dy/dx|`` ``(...,)`` (nats) of ``y = t(x)``: torch's names, here noise ``x`` and
        pose ``y``."""
        if self._latest is not None and self._latest[0] is x and self._latest[1] is y:
            return self._latest[2]
        return self.forward_and_log_det(x)[1]


class FlowDistribution(TransformedDistribution):
    """A flow prior: ``N(0, I)`` noise of shape ``batch_shape + (J, 3)`` through a
    :class:`FlowTransform`; support R^(3J) (finite poses), reparameterised. ``log_prob`` is exact
    (nats, Lebesgue on R^(3J)).

    Args:
        transform: the flow (it owns its layers).
        batch_shape: the batch shape (default ``()``).
    """

    arg_constraints: dict = {}

    def __init__(
        self,
        transform: FlowTransform,
        batch_shape: torch.Size | tuple[int, ...] = (),
        validate_args: bool | None = None,
    ) -> None:
        f = transform.factory()
        base = Normal(torch.zeros((), **f), torch.ones((), **f)).expand(torch.Size(batch_shape) + transform.event_shape)
        super().__init__(base.to_event(2), [transform], validate_args=validate_args)

    @property
    def transform(self) -> FlowTransform:
        """The flow (noise -> pose)."""
        t = self.transforms[0]
        assert isinstance(t, FlowTransform)
        return t

    def expand(
        self, batch_shape: torch.Size | tuple[int, ...], _instance: TorchDistribution | None = None
    ) -> FlowDistribution:
        new = self._get_checked_instance(type(self), _instance)
        return super().expand(batch_shape, _instance=new)

    @property
    def support(self) -> torch_constraints.Constraint:
        return pose_space

    def _values(self, value: Tensor) -> Tensor:
        """``value`` checked (with ``validate_args``) and broadcast against the batch shape."""
        if self._validate_args:
            self._validate_sample(value)
        lead = torch.broadcast_shapes(value.shape[:-2], self.batch_shape)
        return value.expand(lead + self.event_shape)

    def log_prob(self, value: Tensor) -> Tensor:
        """``(..., J, 3) -> (...)`` nats: the noise's base density minus the forward log|det|."""
        value = self._values(value)
        z, log_det = self.transform.inverse_and_log_det(value)
        return standard_normal_log_prob(z.flatten(-2)) - log_det

    def rsample_and_log_prob(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> tuple[Tensor, Tensor]:
        """Samples ``sample_shape + batch_shape + (J, 3)`` and their log-density (nats), computed
        along the generating path (base density minus the forward log|det|) without inverting."""
        x, log_det, base = self.transform.generate(torch.Size(sample_shape) + self.batch_shape)
        return x, base - log_det

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        return self.rsample_and_log_prob(sample_shape)[0]

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)
