"""The protocol every inference method shares (MAP, Laplace, the SVI guides, NUTS): a method
starts from :func:`initial_values`, takes its own copies of the sites it infers
(:func:`own_copies` of :func:`free_sites`), may work on them as one flat vector per frame
(:func:`flatten_sites` / :func:`unflatten_sites`) scored by :func:`log_joint` or
:func:`frame_log_joint`, may run :func:`adam_loop`, puts a known root back
(:func:`with_known_root`) and ends with :func:`finish`, which builds the
:class:`~probpose.fitting.results.FitResult`. A new inference method is a module using these
(docs/architecture.md, "Fitting").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pyro
import torch
from torch import Tensor

from probpose.fitting.model import PoseFit
from probpose.fitting.observations import Joints3D
from probpose.fitting.results import FitResult, Posterior
from probpose.progress import track
from probpose.rotations import matrix_to_axis_angle, nearest_rotation

__all__ = [
    "initial_values",
    "own_copies",
    "free_sites",
    "with_known_root",
    "flatten_sites",
    "unflatten_sites",
    "log_joint",
    "frame_log_joint",
    "latent_for_pose",
    "adam_loop",
    "finish",
]


def _kabsch(src: Tensor, dst: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
    """Per frame the rotation ``R`` ``(N, 3, 3)`` and shift ``c`` ``(N, 3)`` minimising
    ``sum_k w_k |R src_k + c - dst_k|^2`` (``src`` ``(K, 3)``, ``dst`` ``(N, K, 3)``, ``w`` ``(N, K)``)."""
    wsum = w.sum(-1, keepdim=True).clamp_min(1e-9)
    ms = (w.unsqueeze(-1) * src).sum(-2) / wsum
    md = (w.unsqueeze(-1) * dst).sum(-2) / wsum
    a = (src - ms.unsqueeze(-2)) * w.unsqueeze(-1)
    h = a.transpose(-1, -2) @ (dst - md.unsqueeze(-2))
    r = nearest_rotation(h.transpose(-1, -2))  # h = U S V^T: R = V diag(1, 1, d) U^T
    return r, md - (r @ ms.unsqueeze(-1)).squeeze(-1)


def initial_values(fit: PoseFit) -> dict[str, Tensor]:
    """Starting values of the latent sites: the pose at the prior's centre (zero latent for VAEs and
    base space, the mean of 512 prior samples in pose space, zero without a prior); the root from
    the observation's ``init_orient``/``init_transl`` when given, else for 3D observations the
    rigid alignment (Kabsch) of the body at that pose to the visible points, else zero rotation and
    a point 3 m in front of each camera."""
    obs = fit.observation
    n = obs.num_frames
    dt = fit.dtype
    latent = fit.parameterisation.start(n)
    with torch.no_grad():
        pose = fit.pose_of(latent).to(dt)
        zero = torch.zeros(n, 3, dtype=dt)
        if obs.init_orient is not None and obs.init_transl is not None:
            orient, transl = obs.init_orient.to(dt), obs.init_transl.to(dt)
        elif isinstance(obs, Joints3D):
            src = fit.points(pose, zero, zero)  # (N, K, 3)
            r, c = _kabsch(src[0].double(), obs.points.double(), obs.mask.double())
            orient = matrix_to_axis_angle(r).to(dt)
            moved = fit.points(pose, orient, zero)
            m = obs.mask.to(dt).unsqueeze(-1)
            transl = ((obs.points.to(dt) - moved) * m).sum(1) / m.sum(1).clamp_min(1)
            few = obs.mask.sum(-1) < 3
            orient[few] = 0.0
            del c
        else:
            orient = zero.clone()
            centre = -(obs.R.transpose(-1, -2) @ obs.t.unsqueeze(-1)).squeeze(-1)
            transl = (centre + 3.0 * obs.R[:, 2, :]).to(dt)
    return {fit.latent: latent, "orient": orient, "transl": transl}


def own_copies(values: dict[str, Tensor]) -> dict[str, Tensor]:
    """Fresh copies: the optimisers update the guide's parameters in place, and a guide built from
    a caller's tensor (``init``, an observation's ``init_orient``) would otherwise share its
    storage, changing the caller's tensor, and two sites started from one tensor would be one."""
    return {k: v.detach().clone() for k, v in values.items()}


def free_sites(fit: PoseFit, values: dict[str, Tensor]) -> dict[str, Tensor]:
    """The sites an inference method infers: ``values`` without the root (``orient``,
    ``transl``) when the observation gives it."""
    if fit.known_root:
        return {k: v for k, v in values.items() if k not in ("orient", "transl")}
    return values


def with_known_root(fit: PoseFit, values: dict[str, Tensor]) -> dict[str, Tensor]:
    """``values`` with the observation's given root (``orient``, ``transl`` ``(N, 3)``) put back
    when it is known (the inverse of :func:`free_sites`)."""
    if fit.known_root:
        orient, transl = fit.observation.init_orient, fit.observation.init_transl
        assert orient is not None and transl is not None  # a known root is a given one
        return {**values, "orient": orient, "transl": transl}
    return values


def finish(
    fit: PoseFit,
    values: dict[str, Tensor],
    inference: str,
    losses: list[float],
    posterior: Posterior | None,
    seconds: float,
) -> FitResult:
    """The :class:`~probpose.fitting.results.FitResult` of ``values`` (every site, frames first):
    the pose, the root, the body's points and their residual to the observation; ``inference``
    names the method, ``losses`` its trace, ``seconds`` its wall time."""
    with torch.no_grad():
        pose = fit.pose_of(values[fit.latent]).detach()
        points = fit.points(pose, values["orient"], values["transl"]).detach()
        residual = fit.observation.residual(points)
    return FitResult(
        pose,
        values["orient"].detach(),
        values["transl"].detach(),
        points,
        residual,
        inference,
        losses,
        posterior,
        seconds,
        values[fit.latent].detach(),
    )


def frame_log_joint(fit: PoseFit, values: dict[str, Tensor]) -> Tensor:
    """``log p(obs, latents)`` per frame ``(N,)`` (nats) at ``values`` (the latent sites' values,
    frames first): the model conditioned on them, each site's log density summed over its event.
    Without the smoothness factor (which couples frames) these sum to the model's log joint, the
    objective of MAP with ``AutoDelta``."""
    if fit.smooth > 0:
        raise ValueError("the log joint does not split over frames with smooth > 0")
    tr = pyro.poutine.trace(pyro.poutine.condition(fit.model, data=values)).get_trace()
    tr.compute_log_prob()
    n = fit.observation.num_frames
    total = torch.zeros(n, dtype=fit.dtype)
    for site in tr.nodes.values():
        if site["type"] == "sample":
            total = total + site["log_prob"].expand(n)
    return total


def flatten_sites(values: dict[str, Tensor]) -> Tensor:
    """The sites' values (frames first) as one detached vector per frame ``(N, D)``; :func:`unflatten_sites`
    inverts it."""
    return torch.cat([v.detach().reshape(v.shape[0], -1) for v in values.values()], -1)


def log_joint(fit: PoseFit, values: dict[str, Tensor]) -> Tensor:
    """``log p(obs, latents)`` (a scalar, nats; the smoothness factor included) at ``values``."""
    total = pyro.poutine.trace(pyro.poutine.condition(fit.model, data=values)).get_trace().log_prob_sum()
    assert isinstance(total, Tensor)  # the model has sites
    return total


def unflatten_sites(vec: Tensor, values: dict[str, Tensor]) -> dict[str, Tensor]:
    """Per-frame flat vectors ``(..., N, D)`` back to the sites' shapes (``values`` gives them)."""
    out, off = {}, 0
    for k, v in values.items():
        sh = tuple(v.shape[1:])
        size = int(torch.tensor(sh).prod()) if sh else 1
        out[k] = vec[..., off : off + size].reshape(vec.shape[:-1] + sh)
        off += size
    return out


def latent_for_pose(fit: PoseFit, mean_pose: Tensor, draws: Tensor) -> Tensor:
    """A latent whose pose is used for the result's points: the mean pose in pose space, the mean
    latent otherwise (the points are then those of the mean latent's pose)."""
    if fit.latent == "pose":
        return mean_pose.to(draws)
    return draws.mean(0)


def adam_loop(
    loss_fn: Callable[[], Tensor], params: Sequence[Tensor], steps: int, lr: float, progress: bool, desc: str
) -> list[float]:
    """``steps`` Adam steps on ``loss_fn()`` over ``params`` (cosine schedule from ``lr`` to
    ``lr / 20``); the losses, one per step."""
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=lr / 20)
    losses = []
    for _ in track(range(steps), desc, enabled=progress):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    return losses
