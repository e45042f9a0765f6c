"""The fitting model: a Pyro model in which the pose is a latent drawn from a prior.

For a batch of ``N`` frames (``pyro.plate("frames", N)``)::

    pose   ~ prior                     (N, J, 3) axis-angle radians  [site "pose"]
    orient ~ flat on R^3               (N, 3) global orientation      [site "orient"]
    transl ~ flat on R^3               (N, 3) metres                  [site "transl"]
    obs    ~ likelihood(body(pose, orient, transl))                   [site "obs"]

and, with ``smooth > 0``, a temporal smoothness factor on the body's points (all of them, observed
or not): ``-smooth / 2 * sum_t sum_k |a_tk|^2`` with ``a_tk = p_k(t+1) - 2 p_k(t) + p_k(t-1)`` the
acceleration of point ``k`` in mm/frame^2, over every three consecutive frames of one sequence (the
observation's ``sequence`` ids; never across a change of id). ``smooth`` is per (mm/frame^2)^2: a
Gaussian on each acceleration coordinate of standard deviation ``smooth^-1/2`` mm/frame^2.
:data:`DEFAULT_SMOOTH` is the weight measured best on held-out CMU trials
(``benchmarks/smoothness.py``). Parameterisations of the pose latent (one object each, chosen once:
:mod:`probpose.fitting.latents`):

- ``space="pose"``: ``pose`` is the sampled site, with the prior's exact ``log_prob`` (any
  :class:`~probpose.models.PriorModel`: Gaussians, ``gmm``, flows);
- ``space="base"`` (flows): the same model with Pyro's ``TransformReparam`` on the ``pose`` site
  (a flow prior is a ``TransformedDistribution``): the latent is ``pose_base ~ N(0, I)``, the flow's
  noise, and ``pose = flow(pose_base)``; this optimises and samples in the flow's base space, where
  the prior is isotropic and a MAP is not drawn to where the flow's log-determinant peaks (which
  space fits better is measured in docs/benchmarks.md, "The field's fitting tasks with the shipped priors");
- a VAE (:class:`~probpose.models.LatentPoseModel`): ``z ~ N(0, I)`` (``z_dim``) and
  ``pose = decoder mean(z)`` (VPoser-style; the decoder's noise is not part of the pose);
- ``prior=None``: a flat (improper) prior: the likelihood alone.

The prior's weights are frozen while fitting (only the latents are inferred).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Literal

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from torch import Tensor

from probpose.errors import DataError
from probpose.fitting.body import Body
from probpose.fitting.latents import PoseLatent, pose_latent
from probpose.fitting.observations import Observation, neighbours
from probpose.models import PoseModel

__all__ = ["PoseFit", "Space", "DEFAULT_SMOOTH"]

Space = Literal["pose", "base"]

DEFAULT_SMOOTH = 0.002
"""The smoothness weight (per (mm/frame^2)^2) that ``probpose fit`` uses for observations with
``sequence`` ids, measured on held-out CMU trials at 30 fps (``benchmarks/smoothness.py``,
``benchmarks/results/smoothness_cmu/``): with 2 cm of noise MPJPE 13.49 -> 9.62 mm and jitter
33.5 -> 9.3 mm/frame^2 (the truth's: 8.9), with 5 cm 28.41 -> 18.32 mm and 65.6 -> 7.8; the best
of the weights tried at 2 cm, 0.9 % behind 0.001 at 5 cm (the two tie on the sum), with jitter
nearer the truth's. Higher frame rates move less per frame: the weight is per frame^2."""


def _flat(event_shape: tuple[int, ...], dtype: torch.dtype) -> dist.TorchDistribution:
    return dist.ImproperUniform(constraints.real, torch.Size(), torch.Size(event_shape))


class PoseFit:
    """The pieces of a fit: a prior (or ``None``), a body, observations, the pose parameterisation.

    Args:
        prior: a trained model, or None for no prior (then ``joint_names`` says which joints move).
        body: the body the pose drives (:class:`~probpose.fitting.SkeletonBody`, :class:`RigBody`).
        observation: :class:`Joints3D` or :class:`Keypoints2D`; its ``names`` (default: all the
            body's points) say which body points its rows are.
        space: ``"pose"`` or ``"base"`` (flows only; see the module docstring).
        smooth: weight (per (mm/frame^2)^2) of the temporal smoothness factor on the points'
            accelerations (module docstring); 0 makes frames independent.
        joint_names: the fitted joints when ``prior`` is None.
        known_root: take the global orientation and translation from the observation's
            ``init_orient``/``init_transl`` as known values instead of inferring them.

    Example:
        >>> import torch
        >>> from probpose.fitting import Joints3D, PoseFit, make_body
        >>> from probpose.models import load_model
        >>> prior = load_model("cmu/gaussian_full")
        >>> body = make_body("smplx", prior.modelled_names)  # 21 rotations -> 55 points, metres
        >>> zero = torch.zeros(2, 3, dtype=torch.float64)
        >>> points = body.points(torch.zeros(2, 21, 3, dtype=torch.float64), zero, zero)  # (2, 55, 3)
        >>> fit = PoseFit(prior, body, Joints3D(points, torch.ones(2, 55, dtype=torch.bool), sigma=0.01))
        >>> import pyro
        >>> values = {"pose": torch.zeros(2, 21, 3), "orient": zero.float(), "transl": zero.float()}
        >>> trace = pyro.poutine.trace(pyro.poutine.condition(fit.model, values)).get_trace()
        >>> [n for n, s in trace.nodes.items() if s["type"] == "sample" and n != "frames"]
        ['pose', 'orient', 'transl', 'obs']
        >>> trace.log_prob_sum().shape  # the log joint, nats: what MAP maximises
        torch.Size([])
    """

    def __init__(
        self,
        prior: PoseModel | None,
        body: Body,
        observation: Observation,
        space: Space = "pose",
        smooth: float = 0.0,
        joint_names: Sequence[str] | None = None,
        known_root: bool = False,
    ) -> None:
        self.prior = prior
        self.known_root = known_root
        if known_root and (observation.init_orient is None or observation.init_transl is None):
            raise DataError("observations", "init_orient", "known_root needs init_orient and init_transl (N, 3)")
        self.body = body
        self.observation = observation
        if not smooth >= 0:
            raise DataError("smooth", None, f"must be >= 0, got {smooth}")
        self.space = space
        self.smooth = float(smooth)
        if prior is None:
            self.joint_names = tuple(joint_names if joint_names is not None else body.joint_names)
        else:
            if prior.conditional:
                raise DataError(
                    "prior",
                    None,
                    "a conditional model (some joints are its context) cannot be "
                    "fitted alone; use an unconditional prior",
                )
            self.joint_names = tuple(prior.modelled_names)
        if tuple(body.joint_names) != self.joint_names:
            raise DataError(
                "prior",
                None,
                f"the prior's joints ({len(self.joint_names)}: "
                f"{', '.join(self.joint_names[:3])}, ...) are not the body's driven joints "
                f"({len(body.joint_names)}: {', '.join(body.joint_names[:3])}, ...)",
            )
        names = observation.names or body.point_names
        if len(names) != observation.num_points:
            raise DataError(
                "observations",
                None,
                f"{observation.num_points} points per frame, but the names list "
                f"{len(names)}; the body ({body.tree.name}) has {len(body.point_names)} points: "
                f"{', '.join(body.point_names[:4])}, ...",
            )
        unknown = [n for n in names if n not in body.point_names]
        if unknown:
            raise DataError(
                "observations",
                "names",
                f"{unknown[:4]} are not points of the body ({', '.join(body.point_names[:4])}, ...)",
            )
        self.point_index = torch.tensor([body.point_names.index(n) for n in names])
        p = next(iter(prior.parameters()), None) if prior is not None else None
        self.dtype = p.dtype if p is not None else torch.float32
        self.num_joints = len(self.joint_names)
        self.parameterisation: PoseLatent = pose_latent(prior, space, self.num_joints, self.dtype)

    def select(self, frames: slice | Tensor) -> PoseFit:
        """The same fit for some of the frames (``frames``: a slice or an index tensor)."""
        return PoseFit(
            self.prior,
            self.body,
            self.observation.select(frames),
            self.space,
            self.smooth,
            self.joint_names,
            self.known_root,
        )

    def without_smoothness(self) -> PoseFit:
        """The same fit with independent frames (``smooth = 0``)."""
        return PoseFit(self.prior, self.body, self.observation, self.space, 0.0, self.joint_names, self.known_root)

    # ------------------------------------------------------------------ latent sites
    @property
    def latent(self) -> str:
        """The name of the sampled pose site: ``"pose"``, ``"pose_base"`` (the flow's noise) or
        ``"z"`` (a VAE's latent); :attr:`parameterisation` (:mod:`probpose.fitting.latents`) says."""
        return self.parameterisation.name

    def latent_shape(self) -> tuple[int, ...]:
        return self.parameterisation.shape

    def pose_of(self, latent: Tensor) -> Tensor:
        """The pose ``(..., J, 3)`` of latent values (the identity in pose space)."""
        return self.parameterisation.pose_of(latent)

    # ------------------------------------------------------------------ the model
    def model(self) -> Tensor:
        """The Pyro model (no arguments: the observations are part of the fit). Returns the
        predicted observed points ``(N, K, 3)``."""
        n = self.observation.num_frames
        with self.parameterisation.reparam(), pyro.plate("frames", n, dim=-1):
            pose = self.parameterisation.sample()
            if self.known_root:
                assert self.observation.init_orient is not None and self.observation.init_transl is not None
                orient = self.observation.init_orient.to(self.dtype)
                transl = self.observation.init_transl.to(self.dtype)
            else:
                orient = pyro.sample("orient", _flat((3,), self.dtype))
                transl = pyro.sample("transl", _flat((3,), self.dtype))
            every = self.body.points(pose, orient, transl)
            points = every[..., self.point_index, :]
            self.observation.sample(points)
        if self.smooth > 0 and n > 2:
            mm = 1000.0 * every
            acc = mm.narrow(-3, 2, n - 2) - 2 * mm.narrow(-3, 1, n - 2) + mm.narrow(-3, 0, n - 2)
            same = neighbours(self.observation.sequence, n).to(acc)
            pyro.factor("smooth", -0.5 * self.smooth * (acc.square().sum((-1, -2)) * same).sum(-1))
        return points

    def points(self, pose: Tensor, orient: Tensor, transl: Tensor) -> Tensor:
        """The observed points ``(..., K, 3)`` of explicit values (metres)."""
        return self.body.points(pose, orient, transl)[..., self.point_index, :]

    @contextlib.contextmanager
    def frozen_prior(self) -> Iterator[None]:
        """The prior's weights without gradients, and in eval mode, for the duration."""
        if self.prior is None:
            yield
            return
        params = list(self.prior.parameters())
        flags = [p.requires_grad for p in params]
        training = self.prior.training
        self.prior.eval()
        for p in params:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p, f in zip(params, flags, strict=True):
                p.requires_grad_(f)
            self.prior.train(training)
