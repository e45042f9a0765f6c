"""NUTS on the fit's latents (optionally whitened by the Laplace approximation at the MAP): exact
posterior samples, slow; a few frames.
"""

from __future__ import annotations

import sys

import pyro
import torch
from pyro.infer import MCMC, NUTS
from pyro.infer.autoguide import init_to_value
from pyro.infer.autoguide.initialization import InitMessenger
from torch import Tensor

from probpose.fitting.laplace import laplace
from probpose.fitting.map import fit_map
from probpose.fitting.model import PoseFit
from probpose.fitting.results import FitResult, summarize
from probpose.fitting.values import (
    finish,
    flatten_sites,
    free_sites,
    latent_for_pose,
    log_joint,
    own_copies,
    unflatten_sites,
    with_known_root,
)

__all__ = ["fit_nuts"]


def _whitened(fit: PoseFit, values: dict[str, Tensor], tril: Tensor):
    """The fit's model in whitened coordinates: a flat per-frame site ``_white`` ``u`` ``(N, D)``
    and latents ``values + tril u`` (a linear map: the density changes by a constant), the log
    joint entering as a factor. With ``tril`` from :func:`laplace` the posterior in ``u`` is close
    to a standard normal, which NUTS explores with one step size."""
    import pyro.distributions as dist
    from pyro.distributions import constraints

    loc = flatten_sites(values)
    n, d = loc.shape

    def model() -> Tensor:
        with pyro.plate("frames", n, dim=-1):
            u = pyro.sample("_white", dist.ImproperUniform(constraints.real, torch.Size(), torch.Size((d,))))
        x = loc + (tril @ u.unsqueeze(-1)).squeeze(-1)
        with pyro.poutine.block():
            total = log_joint(fit, unflatten_sites(x, values))
        pyro.factor("_log_joint", total)
        return x

    return model


def fit_nuts(
    fit: PoseFit,
    samples: int = 300,
    warmup: int = 300,
    init: dict[str, Tensor] | None = None,
    progress: bool = False,
    seed: int = 0,
    max_tree_depth: int = 8,
    precondition: bool = True,
) -> FitResult:
    """The reference posterior: NUTS (``pyro.infer.NUTS``) from ``init`` (default: a MAP fit).
    ``precondition``: run NUTS in the coordinates whitened by the Laplace approximation at
    ``init`` (:func:`laplace`; ``init`` should then be a MAP), where the posterior is close to
    isotropic: at D = 150+ with scales from millimetres to tens of degrees, plain NUTS with a
    diagonal mass matrix adapted over a few hundred warm-up steps mixes poorly and under-disperses.
    The samples are exact for the model either way (a linear change of variables). Slow: for a
    few frames."""
    import time

    start = time.perf_counter()
    if init is None:
        first = fit_map(fit)
        assert first.latent is not None  # a MAP states its latent
        init = {fit.latent: first.latent, "orient": first.orient, "transl": first.transl}
    init = own_copies(free_sites(fit, init))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        with fit.frozen_prior():
            if precondition:
                tril = laplace(fit, init)[1]
                start_u = {"_white": torch.zeros(fit.observation.num_frames, tril.shape[-1], dtype=tril.dtype)}
                model = InitMessenger(init_to_value(values=start_u))(_whitened(fit, init, tril))
                kernel = NUTS(model, init_strategy=init_to_value(values=start_u), max_tree_depth=max_tree_depth)
            else:
                # the flat sites cannot be sampled: every trace NUTS takes starts from the given values
                model = InitMessenger(init_to_value(values=init))(fit.model)
                kernel = NUTS(model, init_strategy=init_to_value(values=init), max_tree_depth=max_tree_depth)
            bar = progress and sys.stderr.isatty()  # Pyro's bar: on a terminal only, never into a log
            mcmc = MCMC(kernel, num_samples=samples, warmup_steps=warmup, disable_progbar=not bar)
            mcmc.run()
            draws = mcmc.get_samples()
            if precondition:
                draws = unflatten_sites(flatten_sites(init) + (tril @ draws["_white"].unsqueeze(-1)).squeeze(-1), init)
            draws = with_known_root(fit, draws)
    with torch.no_grad():
        lat = draws[fit.latent]
        poses = fit.pose_of(lat.reshape((-1,) + lat.shape[2:])).reshape(lat.shape[:2] + (fit.num_joints, 3))
        post = summarize(poses)
        orient, transl = draws["orient"], draws["transl"]
        if not fit.known_root:
            orient, transl = orient.mean(0), transl.mean(0)
        values = {fit.latent: latent_for_pose(fit, post.mean, lat), "orient": orient, "transl": transl}
    name = "NUTS, Laplace-whitened" if precondition else "NUTS"
    res = finish(fit, values, f"posterior ({name})", [], post, time.perf_counter() - start)
    res.pose = post.mean.to(res.pose)
    return res
