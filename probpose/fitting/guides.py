"""Approximate posteriors by SVI: the per-frame full-covariance guide (started from the Laplace
approximation at the MAP), Laplace alone, ``AutoNormal`` and ``AutoLowRankMultivariateNormal``;
summarised on SO(3) (:mod:`probpose.fitting.results`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, cast

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from pyro.infer import Trace_ELBO
from pyro.infer.autoguide import AutoGuide, AutoLowRankMultivariateNormal, AutoNormal, init_to_value
from pyro.nn import PyroParam
from torch import Tensor

from probpose.fitting.laplace import laplace
from probpose.fitting.map import fit_map
from probpose.fitting.model import PoseFit
from probpose.fitting.results import FitResult, summarize
from probpose.fitting.values import (
    adam_loop,
    finish,
    flatten_sites,
    free_sites,
    latent_for_pose,
    own_copies,
    unflatten_sites,
    with_known_root,
)

__all__ = ["AutoFrameMVN", "frame_mvn_guide", "fit_posterior"]


class AutoFrameMVN(AutoGuide):
    """A guide with a full-covariance Gaussian per frame over that frame's latents (pose or z, and
    the root unless known), independent across frames (the posterior's own structure without the
    smoothness factor). Like Pyro's ``AutoMultivariateNormal`` (an auxiliary vector, then ``Delta``
    sites), but block-diagonal over the frames plate: ``N`` covariances of ``D x D`` instead of one
    of ``ND x ND``. An :class:`~pyro.infer.autoguide.AutoGuide`, so it composes with
    ``AutoGuideList`` (give it the model blocked to its sites) and has :meth:`median`.

    Args:
        model: the Pyro model (``PoseFit.model``, or a block of it exposing the sites of ``values``).
        values: the sites' starting values ``{name: (N, ...)}`` (frames first), e.g. the MAP.
        init_scale: a fixed per-frame factor ``L0`` ``(N, D, D)`` (e.g. :func:`laplace`'s Cholesky
            factors) or a number times the identity.

    Parameterised relative to ``L0``: ``loc = values + L0 shift`` and ``scale_tril = L0 M`` with
    ``shift`` ``(N, D)`` starting at 0 and ``M`` lower-triangular with a positive diagonal starting at
    the identity. The learnt parameters are then of order one whatever the posterior's scales
    (degrees for a finger, millimetres for the root), so one learning rate suits them all;
    parameterised directly, Adam's steps of about ``lr`` per entry are far larger than Cholesky
    entries of 1e-3 and the covariance drifts."""

    def __init__(self, model: Callable, values: dict[str, Tensor], init_scale: float | Tensor = 0.05) -> None:
        super().__init__(model)
        self._template = {k: v.detach() for k, v in values.items()}
        loc0 = flatten_sites(values)
        n, d = loc0.shape
        if isinstance(init_scale, Tensor):
            base = init_scale.detach().to(loc0).expand(n, d, d).clone()
        else:
            base = init_scale * torch.eye(d, dtype=loc0.dtype).expand(n, d, d).clone()
        self.register_buffer("loc0", loc0)
        self.register_buffer("base", base)
        self.shift = PyroParam(torch.zeros_like(loc0))
        self.factor = PyroParam(
            torch.eye(d, dtype=loc0.dtype).expand(n, d, d).clone(), constraint=constraints.lower_cholesky
        )

    def _loc(self) -> Tensor:
        shift = cast(Tensor, self.shift)  # a PyroParam reads as its tensor
        return self.loc0 + (self.base @ shift.unsqueeze(-1)).squeeze(-1)

    def forward(self, *args, **kwargs) -> dict[str, Tensor]:  # the model's arguments
        """One draw: ``{site: (N, ...)}``, each site a ``Delta`` at its part of the frame's vector."""
        n = self.loc0.shape[0]
        plates = self._create_plates(*args, **kwargs)  # in an AutoGuideList, the list's plates
        frames = plates["frames"] if "frames" in plates else pyro.plate("frames", n, dim=-1)
        with frames:
            vec = pyro.sample(
                "_frame_latent",
                dist.MultivariateNormal(self._loc(), scale_tril=self.base @ self.factor),
                infer={"is_auxiliary": True},
            )
            parts = unflatten_sites(vec, self._template)
            return {k: pyro.sample(k, dist.Delta(v, event_dim=self._template[k].dim() - 1)) for k, v in parts.items()}

    @torch.no_grad()
    def median(self, *args, **kwargs) -> dict[str, Tensor]:
        """The Gaussian's mean (its median), split into the sites."""
        return unflatten_sites(self._loc(), self._template)


def frame_mvn_guide(fit: PoseFit, values: dict[str, Tensor], init_scale: float | Tensor = 0.05) -> AutoFrameMVN:
    """:class:`AutoFrameMVN` over the whole fit's model (``fit.model``)."""
    return AutoFrameMVN(fit.model, values, init_scale)


def fit_posterior(
    fit: PoseFit,
    guide: Literal["normal", "lowrank", "mvn", "laplace"] = "mvn",
    steps: int = 600,
    lr: float = 0.02,
    particles: int = 8,
    samples: int = 500,
    map_steps: int = 300,
    progress: bool = False,
    generator_seed: int = 0,
) -> FitResult:
    """An approximate posterior: MAP first (``map_steps``), then one of

    - ``"mvn"`` (default): :class:`AutoFrameMVN`, a full covariance per frame, started at the MAP
      and its Laplace covariance (:func:`laplace`), then fitted by SVI;
    - ``"laplace"``: the Laplace approximation itself (no SVI; ``steps`` unused);
    - ``"normal"``: Pyro's ``AutoNormal`` (mean-field; under-disperses correlated joint chains);
    - ``"lowrank"``: ``AutoLowRankMultivariateNormal`` (rank 8);

    the SVI guides fitted with ``particles`` samples per step and Adam (``lr``, cosine decay);
    ``samples`` poses drawn from the guide give :class:`Posterior`. The result's pose is the
    posterior mean rotation.

    Example:
        >>> import torch
        >>> from probpose.fitting import Joints3D, PoseFit, fit_posterior, make_body
        >>> from probpose.models import load_model
        >>> prior = load_model("cmu/gaussian_full")
        >>> body = make_body("smplx", prior.modelled_names)
        >>> zero = torch.zeros(2, 3, dtype=torch.float64)
        >>> points = body.points(prior().sample((2,)).double(), zero, zero)
        >>> fit = PoseFit(prior, body, Joints3D(points, torch.ones(2, 55, dtype=torch.bool), sigma=0.01))
        >>> post = fit_posterior(fit, guide="laplace", map_steps=100, samples=50).posterior
        >>> post.std_deg.shape, post.samples.shape  # per frame and joint (degrees); the draws
        (torch.Size([2, 21]), torch.Size([50, 2, 21, 3]))
    """
    import time

    start = time.perf_counter()
    if guide not in ("normal", "lowrank", "mvn", "laplace"):
        raise ValueError(f"guide must be 'normal', 'lowrank', 'mvn' or 'laplace', got {guide!r}")
    first = fit_map(fit, steps=map_steps, progress=progress)
    assert first.latent is not None  # a MAP states its latent
    values = own_copies(free_sites(fit, {fit.latent: first.latent, "orient": first.orient, "transl": first.transl}))
    tril = laplace(fit, values)[1] if guide in ("mvn", "laplace") else None
    g: AutoGuide
    with pyro.get_param_store().scope(), fit.frozen_prior():
        if guide == "normal":
            g = AutoNormal(fit.model, init_loc_fn=init_to_value(values=values), init_scale=0.05)
        elif guide in ("mvn", "laplace"):
            assert tril is not None
            g = frame_mvn_guide(fit, values, init_scale=tril)
        else:
            g = AutoLowRankMultivariateNormal(
                fit.model, init_loc_fn=init_to_value(values=values), init_scale=0.05, rank=8
            )
        g()
        store = pyro.get_param_store()
        params = [store.get_param(k).unconstrained() for k in store.keys()]  # type: ignore[attr-defined]
        elbo = Trace_ELBO(num_particles=particles, vectorize_particles=False)
        losses = (
            []
            if guide == "laplace"
            else adam_loop(lambda: elbo.differentiable_loss(fit.model, g), params, steps, lr, progress, "posterior")
        )
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(generator_seed)
            draws = [g() for _ in range(samples)]
    with torch.no_grad():
        lat = torch.stack([d[fit.latent] for d in draws])
        poses = fit.pose_of(lat.reshape((-1,) + lat.shape[2:])).reshape(lat.shape[:2] + (fit.num_joints, 3))
        post = summarize(poses)
        draws = [with_known_root(fit, d) for d in draws]
        orient = torch.stack([d["orient"] for d in draws]).mean(0)
        transl = torch.stack([d["transl"] for d in draws]).mean(0)
    names = {
        "normal": "AutoNormal, SVI",
        "lowrank": "AutoLowRankMultivariateNormal, SVI",
        "mvn": "per-frame full Gaussian from Laplace, SVI",
        "laplace": "Laplace at the MAP",
    }
    name = names[guide]
    res = finish(
        fit,
        {fit.latent: latent_for_pose(fit, post.mean, lat), "orient": orient, "transl": transl},
        f"posterior ({name})",
        first.losses + losses,
        post,
        time.perf_counter() - start,
    )
    res.pose = post.mean.to(res.pose)
    return res
