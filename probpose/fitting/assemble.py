"""A fit from what a user has: an observations file, a prior (a checkpoint, a shipped name, a model
or none) and, for the SMPL family, rest joints; and the fit written back as arrays and a report.
`probpose fit` is these two calls around one inference method."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from probpose.errors import ProbposeError
from probpose.files import atomic_paths, json_text
from probpose.fitting.body import make_body
from probpose.fitting.model import DEFAULT_SMOOTH, PoseFit, Space
from probpose.fitting.observations import Observation, load_observations
from probpose.fitting.results import FitResult
from probpose.models import PoseModel, load_model
from probpose.skeleton import get_skeleton

__all__ = ["assemble_fit", "write_fit", "fit_report"]


def assemble_fit(
    observations: str | Path | Observation,
    prior: str | Path | PoseModel | None = None,
    *,
    skeleton: str | None = None,
    joints: str | None = None,
    rest_joints: str | Path | None = None,
    space: Space = "pose",
    smooth: float | None = None,
    sigma: float | None = None,
    nu: float = 4.0,
) -> PoseFit:
    """The :class:`PoseFit` of ``observations`` (an ``.npz`` read by :func:`load_observations` with
    ``sigma`` and ``nu``, or an :class:`Observation`) with ``prior``: a checkpoint path, a shipped
    name (``"cmu/joint_flow"``), a loaded model, or ``None``/``"none"`` (no prior; then ``skeleton``,
    default ``smplx``, and ``joints``, default ``body+hands``, say what moves). The body is the
    prior's skeleton (the zebra rig for zebra legs) with ``rest_joints`` (SMPL family: a ``(J, 3)``
    ``.npy`` in metres; default the approximate proportions). ``smooth``: the temporal smoothness
    weight (``None``: :data:`~probpose.fitting.model.DEFAULT_SMOOTH` for observations with
    ``sequence`` ids, else 0)."""
    obs = observations if isinstance(observations, Observation) else load_observations(observations, sigma, nu)
    if smooth is None:
        smooth = DEFAULT_SMOOTH if obs.sequence is not None else 0.0
    if prior is None or (isinstance(prior, (str, Path)) and str(prior) == "none"):
        base = get_skeleton(skeleton or "smplx")
        if joints:
            names: Sequence[str] = base.select(joints).joint_names
        else:  # the zebra's legs whole; the SMPL family's body and hands
            names = base.joint_names if base.name == "zebra_legs" else base.select("body+hands").joint_names
        model = None
    else:
        if skeleton or joints:
            raise ProbposeError("`skeleton` and `joints` are for fits without a prior; a model names its joints")
        model = prior if isinstance(prior, PoseModel) else load_model(prior)
        base = get_skeleton(model.skeleton.base_name)
        names = model.modelled_names
    body = make_body(base.name, names, rest_joints)
    return PoseFit(model, body, obs, space=space, smooth=smooth, joint_names=names)


def fit_report(
    fit: PoseFit, result: FitResult, prior: str, observations: str
) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """The arrays of a fit (``pose`` ``(N, J, 3)`` radians, ``orient``, ``transl`` ``(N, 3)``,
    ``points``, per-frame ``residual`` (metres for 3D, pixels for 2D), ``joint_names``, and with a
    posterior ``std_deg`` and ``radius90_deg`` ``(N, J)``), its Markdown report (residual per frame
    in mm or px; posterior per joint) and its JSON summary. ``prior`` and ``observations`` label it."""
    names = list(fit.joint_names)
    arrays: dict[str, Any] = {
        "pose": result.pose.float().numpy(),
        "orient": result.orient.float().numpy(),
        "transl": result.transl.float().numpy(),
        "points": result.points.float().numpy(),
        "residual": result.residual.float().numpy(),
        "joint_names": np.array(names),
    }
    if result.posterior is not None:
        arrays["std_deg"] = result.posterior.std_deg.float().numpy()
        arrays["radius90_deg"] = result.posterior.radius90_deg.float().numpy()
    kind = fit.observation.kind
    unit, scale = ("mm", 1000.0) if kind == "3d" else ("px", 1.0)
    resid = (result.residual * scale).tolist()
    lines = [
        f"# probpose fit: {len(resid)} frames",
        "",
        f"Prior: {prior}; inference: {result.inference}; space: {fit.latent}; observations: {kind} "
        f"({observations}); temporal smoothness {fit.smooth:g} per (mm/frame^2)^2 over "
        f"{_sequences(fit)} sequence(s); {result.seconds:.1f} s.",
        "",
        f"| frame | residual ({unit}) |",
        "|---|---|",
    ]
    lines += [f"| {i} | {r:.2f} |" for i, r in enumerate(resid)]
    if result.posterior is not None:
        std, rad = result.posterior.std_deg.double(), result.posterior.radius90_deg.double()
        lines += [
            "",
            "Posterior per joint, mean over frames (degrees): std of the rotation, radius of the 90% "
            "credible ball about the posterior mean.",
            "",
            "| joint | std (deg) | 90% radius (deg) |",
            "|---|---|---|",
        ]
        per_joint = zip(names, std.mean(0).tolist(), rad.mean(0).tolist(), strict=True)
        lines += [f"| {n} | {a:.2f} | {b:.2f} |" for n, a, b in per_joint]
    summary = {
        "prior": prior,
        "inference": result.inference,
        "space": fit.latent,
        "observations": observations,
        "kind": kind,
        "smooth": fit.smooth,
        "sequences": _sequences(fit),
        "seconds": result.seconds,
        "residual_unit": unit,
        "residual": resid,
        "final_loss": result.losses[-1] if result.losses else None,
    }
    return arrays, "\n".join(lines) + "\n", summary


def _sequences(fit: PoseFit) -> int:
    """The number of sequences of the observation's frames (runs of one ``sequence`` id)."""
    seq = fit.observation.sequence
    return 1 if seq is None else 1 + int((seq[1:] != seq[:-1]).sum())


def write_fit(out: str | Path, fit: PoseFit, result: FitResult, prior: str, observations: str) -> dict[str, Any]:
    """Write :func:`fit_report`'s arrays to ``out`` (``.npz``) and its reports beside it (``.md``,
    ``.json``), all three together or none. Returns the JSON summary."""
    out = Path(out)
    arrays, markdown, summary = fit_report(fit, result, prior, observations)
    with atomic_paths(out, out.with_suffix(".md"), out.with_suffix(".json")) as (tmp_npz, tmp_md, tmp_json):
        with open(tmp_npz, "wb") as fh:
            np.savez(fh, **arrays)
        tmp_md.write_text(markdown)
        tmp_json.write_text(json_text(summary))
    return summary
