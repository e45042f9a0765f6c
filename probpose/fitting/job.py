"""One fitting job, as ``probpose fit`` runs it: observations and a prior assembled into a
:class:`~probpose.fitting.PoseFit` (:func:`~probpose.fitting.assemble_fit`), one inference method
(MAP, a posterior guide or NUTS), and the fit written back (:func:`~probpose.fitting.write_fit`).
The CLI builds a :class:`FitRequest` from its flags and prints the :class:`FitRun`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from probpose.errors import ConfigError
from probpose.files import check_output_path
from probpose.fitting.assemble import assemble_fit, write_fit
from probpose.fitting.guides import fit_posterior
from probpose.fitting.map import fit_map
from probpose.fitting.model import PoseFit
from probpose.fitting.nuts import fit_nuts
from probpose.fitting.results import FitResult
from probpose.models import resolve_model_path
from probpose.options import MAX_COUNT, MAX_SEED, option, validate

__all__ = ["FitRequest", "FitRun", "run_fit"]


@dataclass
class FitRequest:
    """What to fit, with what and how.

    Attributes:
        observations: ``.npz``: ``joints`` ``(N, K, 3)`` metres [+ ``mask``], or ``keypoints``
            ``(N, K, 2)`` pixels [+ ``confidence``] with the camera ``K``, ``R``, ``t``.
        prior: a checkpoint, a shipped prior's name (``cmu/joint_flow``) or ``"none"``.
        out: the ``.npz`` to write (its ``.md`` and ``.json`` reports go beside it).
        skeleton, joints: without a prior, what moves (default ``smplx``, ``body+hands``).
        rest_joints: SMPL family: a ``(J, 3)`` ``.npy`` of rest joints in metres.
        inference: ``map`` (an L-BFGS per frame), ``posterior`` (the ``guide`` started at the MAP) or
            ``nuts`` (slow: a few frames).
        guide: ``mvn`` (a full covariance per frame, Laplace then SVI), ``laplace`` (no SVI),
            ``normal`` (AutoNormal), ``lowrank`` (AutoLowRankMultivariateNormal).
        space: ``pose``, or ``base``: flows fitted in their base space (measured against ``pose`` in
            docs/benchmarks.md, "The field's fitting tasks with the shipped priors").
        steps: MAP: L-BFGS iterations; posterior: SVI steps (``laplace``, which has no SVI: the
            MAP's L-BFGS iterations).
        sigma: observation noise, metres for 3D (default 0.01), pixels for 2D (default 2).
        nu: 2D: the Student-t's degrees of freedom.
        smooth: weight of the temporal smoothness factor on the points' accelerations, per
            (mm/frame^2)^2 (:class:`~probpose.fitting.PoseFit`); 0: independent frames; ``None``:
            :data:`~probpose.fitting.model.DEFAULT_SMOOTH` when the observations give ``sequence``
            ids (frames in time order), else 0.
        samples: posterior and NUTS: pose samples (NUTS: as many warm-up steps).
        seed: the fit's seed (the global RNG is left as it was).
    """

    observations: Path
    prior: str
    out: Path
    skeleton: str | None = None
    joints: str | None = None
    rest_joints: Path | None = None
    inference: Literal["map", "posterior", "nuts"] = "map"
    guide: Literal["mvn", "laplace", "normal", "lowrank"] = "mvn"
    space: Literal["pose", "base"] = "pose"
    steps: int = option(500, ge=1, le=MAX_COUNT)
    sigma: float | None = option(None, gt=0)
    nu: float = option(4.0, gt=0)
    smooth: float | None = option(None, ge=0)
    samples: int = option(500, ge=1, le=MAX_COUNT)
    seed: int = option(0, ge=0, le=MAX_SEED)

    def __post_init__(self) -> None:
        self.observations, self.prior = Path(self.observations), str(self.prior)
        self.out = Path(self.out) if Path(self.out).suffix == ".npz" else Path(self.out).with_suffix(".npz")
        self.rest_joints = None if self.rest_joints is None else Path(self.rest_joints)
        validate(self)
        if self.space == "base" and self.prior == "none":
            raise ConfigError("space: 'base' is a flow prior's base space; with prior 'none' there is none")

    @property
    def inputs(self) -> list[Path]:
        prior = [resolve_model_path(self.prior)] if self.prior != "none" else []
        return [self.observations, *prior, *([self.rest_joints] if self.rest_joints else [])]


@dataclass
class FitRun:
    """A finished fit: the assembled problem, the result, the name the prior was reported under,
    the JSON summary written (``residual`` per frame, ``residual_unit``) and the files."""

    fit: PoseFit
    result: FitResult
    prior_name: str
    summary: dict[str, Any]
    files: list[Path] = field(default_factory=list)


def run_fit(request: FitRequest, also_writes: list[tuple[Path, str]] | None = None) -> FitRun:
    """Assemble, infer and write. ``also_writes``: more outputs the caller will make from the
    result (a contact sheet), checked with the others against the inputs before any work."""
    r = request
    reports = [(r.out.with_suffix(".md"), "report"), (r.out.with_suffix(".json"), "report")]
    for path, what in [(r.out, "fit"), *reports, *(also_writes or [])]:
        check_output_path(path, r.inputs, what)
    fit = assemble_fit(
        r.observations,
        r.prior,
        skeleton=r.skeleton,
        joints=r.joints,
        rest_joints=r.rest_joints,
        space=r.space,
        smooth=r.smooth,
        sigma=r.sigma,
        nu=r.nu,
    )
    with torch.random.fork_rng():
        torch.manual_seed(r.seed)
        if r.inference == "map":
            res = fit_map(fit, steps=r.steps, progress=True)
        elif r.inference == "posterior":
            res = fit_posterior(
                fit,
                guide=r.guide,
                steps=r.steps,
                samples=r.samples,
                progress=True,
                generator_seed=r.seed,
                **({"map_steps": r.steps} if r.guide == "laplace" else {}),  # no SVI: the steps are the MAP's
            )
        else:
            res = fit_nuts(fit, samples=r.samples, warmup=r.samples, progress=True, seed=r.seed)
    prior_name = "none" if fit.prior is None else f"{type(fit.prior).__name__} ({r.prior})"
    summary = write_fit(r.out, fit, res, prior_name, str(r.observations))
    return FitRun(fit, res, prior_name, summary, [r.out, *(p for p, _ in reports)])
