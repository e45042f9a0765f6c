"""MAP: the latents maximising ``log p(obs, latents)``, the objective of SVI with ``AutoDelta``.

By default an L-BFGS per frame, batched (frames without the smoothness factor are independent,
so a batch of frames gives the per-frame results: tested); with smoothness, one L-BFGS over all
frames; ``optimizer="adam"`` is SVI with ``AutoDelta`` and Adam.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import pyro
import torch
from pyro.infer import Trace_ELBO
from pyro.infer.autoguide import AutoDelta, init_to_value
from torch import Tensor

from probpose.fitting.latents import BasePose
from probpose.fitting.model import PoseFit
from probpose.fitting.observations import Joints3D
from probpose.fitting.results import FitResult
from probpose.fitting.values import (
    adam_loop,
    finish,
    flatten_sites,
    frame_log_joint,
    free_sites,
    initial_values,
    own_copies,
    unflatten_sites,
    with_known_root,
)
from probpose.progress import Progress, track

__all__ = ["fit_map", "fully_observed"]


def _lbfgs(loss_fn, params: Sequence[Tensor], steps: int, progress: bool, desc: str) -> list[float]:
    opt = torch.optim.LBFGS(
        params,
        lr=1.0,
        max_iter=20,
        history_size=50,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-9,
        tolerance_change=1e-12,
    )
    losses: list[float] = []

    def closure() -> Tensor:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        return loss

    for _ in track(range(max(1, steps // 20)), desc, unit="iteration", enabled=progress):
        loss = opt.step(closure)
        losses.append(float(loss.detach()))
        if len(losses) > 1 and abs(losses[-2] - losses[-1]) <= 1e-9 * max(1.0, abs(losses[-1])):
            break
    return losses


def _frame_lbfgs(
    fit: PoseFit,
    values: dict[str, Tensor],
    steps: int,
    progress: bool,
    history: int = 50,
    rtol: float | None = None,
    extra: Callable[[dict[str, Tensor]], Tensor] | None = None,
) -> tuple[dict[str, Tensor], list[float]]:
    """MAP per frame with a batched L-BFGS: every frame has its own curvature history (``history``
    pairs; 50, as torch's L-BFGS here: with 10, 300 iterations left the fitting tasks' frames 0.8-28
    nats/frame short of their optimum and behind torch's L-BFGS run on each frame alone,
    benchmarks/results/fitting_batch_vs_frame_cmu/), search direction and backtracking (Armijo) line
    search, all frames evaluated in one batched call of the model; a frame stops once its objective
    changes by less than ``rtol`` (relative; default 1e-10 in float64, 1e-6 in float32) or its
    gradient vanishes, and is then no longer evaluated. ``steps``: iterations (each about one
    batched evaluation of the frames still moving). ``extra``: a log density ``(N',)`` of the
    frames' values added to the model's log joint (the base-space prior term when the model is the
    flat one, :func:`fit_map`). Returns the values at the end and the total objective after each
    iteration."""
    x = flatten_sites(values).clone()
    n, d = x.shape
    dt = x.dtype
    dev: dict[str, Any] = {"dtype": dt, "device": x.device}
    rtol = rtol if rtol is not None else (1e-10 if dt == torch.float64 else 1e-6)

    def evaluate(xs: Tensor, idx: Tensor) -> tuple[Tensor, Tensor]:
        xs = xs.detach().requires_grad_(True)
        sub = fit.select(idx) if len(idx) < n else fit
        site_values = unflatten_sites(xs, values)
        f = -frame_log_joint(sub, site_values)
        if extra is not None:
            f = f - extra(site_values)
        (g,) = torch.autograd.grad(f.sum(), xs)
        return f.detach(), g

    every = torch.arange(n, device=x.device)
    f, g = evaluate(x, every)
    # the curvature pairs: slot ``it % history`` of every frame is written at iteration ``it``, an
    # empty slot (rho = 0: its terms vanish) where a frame's pair is rejected, so that the newest
    # pair sits at one index for all frames and the two-loop recursion works on views
    s_hist = torch.zeros(history, n, d, **dev)
    y_hist = torch.zeros(history, n, d, **dev)
    rho = torch.zeros(history, n, **dev)
    gamma = torch.zeros(n, **dev)  # s'y / y'y of each frame's newest accepted pair; 0: none yet
    moving = torch.isfinite(f) & (g.abs().amax(-1) > 0)
    losses = [float(f.sum())]
    bar = Progress(steps, "MAP", unit="iteration", enabled=progress)
    for it in range(steps):
        idx = moving.nonzero().squeeze(-1)
        if len(idx) == 0:
            break
        everyone = len(idx) == n
        gi = g if everyone else g[idx]
        hs, hy, hr = (s_hist, y_hist, rho) if everyone else (s_hist[:, idx], y_hist[:, idx], rho[:, idx])
        # two-loop recursion, per frame, newest pair first
        q = gi.clone()
        order = [(it - 1 - k) % history for k in range(min(it, history))]
        alphas = []
        for k in order:
            a = hr[k] * torch.linalg.vecdot(hs[k], q)
            q -= a.unsqueeze(-1) * hy[k]
            alphas.append(a)
        # initial inverse Hessian gamma I; without a pair yet, a first step of length at most 1
        # (as torch's L-BFGS)
        gam = gamma if everyone else gamma[idx]
        r = torch.where(gam > 0, gam, 1.0 / gi.abs().sum(-1).clamp_min(1.0)).unsqueeze(-1) * q
        for k, a in zip(reversed(order), reversed(alphas), strict=True):
            b = hr[k] * torch.linalg.vecdot(hy[k], r)
            r += (a - b).unsqueeze(-1) * hs[k]
        direction = -r
        slope = (gi * direction).sum(-1)
        bad = ~(slope < 0)
        if bad.any():  # not a descent direction: steepest descent, history forgotten
            direction[bad] = -gi[bad]
            slope[bad] = -gi[bad].square().sum(-1)
            rho[:, idx[bad]] = 0.0
            gamma[idx[bad]] = 0.0
        # backtracking (Armijo), only the frames whose step is not yet accepted are evaluated again
        t = torch.ones(len(idx), **dev)
        f_new, g_new = f[idx].clone(), g[idx].clone()
        todo = torch.arange(len(idx), device=x.device)
        for _ in range(30):
            fi, gi_new = evaluate(x[idx[todo]] + t[todo, None] * direction[todo], idx[todo])
            ok = torch.isfinite(fi) & (fi <= f[idx[todo]] + 1e-4 * t[todo] * slope[todo])
            f_new[todo[ok]], g_new[todo[ok]] = fi[ok], gi_new[ok]
            # the minimum of the quadratic through f(0), f'(0) and f(t), kept within [t / 10, t / 2]
            excess = (fi - f[idx[todo]] - slope[todo] * t[todo]).nan_to_num(nan=torch.inf)
            shrink = (-slope[todo] * t[todo] / (2 * excess)).clamp(0.1, 0.5)
            todo, shrink = todo[~ok], shrink[~ok]
            if len(todo) == 0:
                break
            t[todo] *= shrink
        t[todo] = 0.0  # no decrease found: the frame stops where it is
        step = t.unsqueeze(-1) * direction
        s_new, y_new = step, g_new - g[idx]
        sy_new = (s_new * y_new).sum(-1)
        keep = sy_new > 1e-10 * y_new.square().sum(-1).clamp_min(torch.finfo(dt).tiny)
        w = it % history
        s_hist[w, idx] = s_new
        y_hist[w, idx] = y_new
        rho[w, idx] = torch.where(keep, 1.0 / torch.where(keep, sy_new, 1.0), 0.0)
        gamma[idx] = torch.where(keep, sy_new / y_new.square().sum(-1).clamp_min(torch.finfo(dt).tiny), gamma[idx])
        change = (f[idx] - f_new).abs()
        x[idx] = x[idx] + step
        f[idx], g[idx] = f_new, g_new
        done = (change <= rtol * f_new.abs().clamp_min(1.0)) | (g_new.abs().amax(-1) <= 1e-12) | (t == 0)
        moving[idx[done]] = False
        losses.append(float(f.sum()))
        bar.update(1)
        bar.note(frames_moving=int(moving.sum()))
    bar.close()
    return unflatten_sites(x, values), losses


def fully_observed(fit: PoseFit) -> Tensor:
    """``(N,)`` bool: the frames whose observation is 3D points with every point seen."""
    obs = fit.observation
    if isinstance(obs, Joints3D):
        return obs.mask.all(-1)
    return torch.zeros(obs.num_frames, dtype=torch.bool)


FRAME_CHUNK = 16_384
"""Frames per batched L-BFGS call at most: independent frames beyond it are fitted chunk after
chunk (the curvature history alone holds ``2 x 50 x frames x D`` numbers: 0.9 GB in float64 for
this many SMPL-X body frames)."""

_Run = Callable[[PoseFit, dict[str, Tensor]], tuple[dict[str, Tensor], list[float]]]


def _in_parts(
    fit: PoseFit, values: dict[str, Tensor], parts: Sequence[Tensor], runs: Sequence[_Run]
) -> tuple[dict[str, Tensor], list[float]]:
    """Independent frames fitted in parts: ``runs[i]`` on the frames ``parts[i]`` (index tensors
    covering every frame once); the values put back in frame order, the total objective per
    iteration summed over the parts (a finished part's last value held)."""
    outs = [run(fit.select(idx), {k: v[idx] for k, v in values.items()}) for idx, run in zip(parts, runs, strict=True)]
    out = {k: torch.empty_like(v) for k, v in values.items()}
    for idx, (part, _) in zip(parts, outs, strict=True):
        for k, v in part.items():
            out[k][idx] = v
    histories = [o[1] for o in outs]
    longest = max(len(h) for h in histories)
    return out, [sum(h[min(i, len(h) - 1)] for h in histories) for i in range(longest)]


def _frame_map(
    fit: PoseFit, values: dict[str, Tensor], steps: int, progress: bool, coordinates: str
) -> tuple[dict[str, Tensor], list[float]]:
    """:func:`_frame_lbfgs` in the coordinates ``coordinates`` picks (:func:`fit_map`): over the
    latent, or in a flow's base space over the pose with the base-space objective; ``"auto"``
    splits the frames between the two (each frame's optimum does not depend on the others')."""
    n = fit.observation.num_frames
    if n > FRAME_CHUNK:
        parts = list(torch.arange(n).split(FRAME_CHUNK))
        run: _Run = lambda f, v: _frame_map(f, v, steps, progress, coordinates)  # noqa: E731
        return _in_parts(fit, values, parts, [run] * len(parts))
    latent = fit.parameterisation
    if not isinstance(latent, BasePose) or coordinates == "latent":
        return _frame_lbfgs(fit, values, steps, progress)
    if coordinates == "auto":
        over_pose = fully_observed(fit)
        if not over_pose.all():
            if not over_pose.any():
                return _frame_lbfgs(fit, values, steps, progress)
            parts = [over_pose.nonzero().squeeze(-1), (~over_pose).nonzero().squeeze(-1)]
            return _in_parts(
                fit, values, parts, [lambda f, v: _frame_map(f, v, steps, progress, "pose"),
                                     lambda f, v: _frame_map(f, v, steps, progress, "latent")],
            )  # fmt: skip
    flat = PoseFit(None, fit.body, fit.observation, joint_names=fit.joint_names, known_root=fit.known_root)
    with torch.no_grad():
        at_pose = {"pose": latent.pose_of(values[fit.latent]), **values}
    del at_pose[fit.latent]
    pose_out, losses = _frame_lbfgs(
        flat, at_pose, steps, progress, extra=lambda v: latent.base_log_prob_of_pose(v["pose"])
    )
    with torch.no_grad():
        out = {fit.latent: latent.latent_of(pose_out.pop("pose")), **pose_out}
    return out, losses


def fit_map(
    fit: PoseFit,
    steps: int = 500,
    lr: float = 0.05,
    init: dict[str, Tensor] | None = None,
    progress: bool = False,
    optimizer: Literal["lbfgs", "frame-lbfgs", "joint-lbfgs", "adam"] = "lbfgs",
    coordinates: Literal["auto", "pose", "latent"] = "auto",
) -> FitResult:
    """MAP: the latents maximising ``log p(obs, latents)``, the objective of SVI with ``AutoDelta``
    (the negative ELBO of a delta guide is ``-log p(obs, latents)``).

    ``optimizer``: ``"frame-lbfgs"`` (:func:`_frame_lbfgs`: an L-BFGS per frame, batched;
    ``steps`` iterations), ``"joint-lbfgs"`` (torch's L-BFGS over all frames' ``AutoDelta``
    parameters at once, ``steps // 20`` outer steps of 20 iterations), ``"adam"`` (SVI with
    ``AutoDelta``, ``steps`` Adam steps, ``lr`` with cosine decay); ``"lbfgs"`` picks
    ``frame-lbfgs`` when frames are independent (``smooth = 0``), else ``frame-lbfgs`` without the
    smoothness factor and then ``joint-lbfgs`` with it from there.

    ``coordinates`` (``frame-lbfgs`` in a flow's base space): ``"latent"`` runs the L-BFGS over
    the flow's noise; ``"pose"`` runs it over the pose with the base-space objective,
    ``log N(flow^-1(pose)) + log p(obs | pose, root)``
    (:meth:`~probpose.fitting.latents.BasePose.base_log_prob_of_pose`), and returns the noise of
    the optimum: the same maximisers, through the flow's inverse (one batched call) instead of its
    push-forward (level by level for the joint flow); ``"auto"`` (default) takes ``"pose"`` for the
    frames of 3D points that observe every point and ``"latent"`` for the others (two batches).
    Measured (docs/benchmarks.md, "Fitting a whole recording" and the fitting tasks): with every
    point observed, ``"pose"`` is 4.4x faster and converges where ``"latent"`` does not (1,000 CMU
    frames with ``cmu/joint_flow``: 24.4 s and 7.42 mm against 106.7 s and 9.69 mm); with points
    hidden, ``"latent"`` is better, because a hidden joint does not follow its moving parents in the
    pose's coordinates as it does in the noise's, and L-BFGS corrects that slowly (CMU's unseen
    arm: 378.4 mm against 244.5 after 300 iterations). Other spaces and optimisers ignore it.

    Example:
        >>> import torch
        >>> from probpose.fitting import Joints3D, PoseFit, fit_map, make_body
        >>> from probpose.models import load_model
        >>> prior = load_model("cmu/gaussian_full")
        >>> body = make_body("smplx", prior.modelled_names)
        >>> zero = torch.zeros(2, 3, dtype=torch.float64)
        >>> truth = prior().sample((2,)).double()  # two poses, radians
        >>> points = body.points(truth, zero, zero)  # their 55 points, metres
        >>> fit = PoseFit(prior, body, Joints3D(points, torch.ones(2, 55, dtype=torch.bool), sigma=0.01))
        >>> result = fit_map(fit, steps=100)
        >>> result.pose.shape, bool(result.residual.max() < 0.01)  # poses (N, J, 3); residual in metres
        (torch.Size([2, 21, 3]), True)
    """
    import time

    start = time.perf_counter()
    values = own_copies(free_sites(fit, init or initial_values(fit)))
    if optimizer not in ("lbfgs", "frame-lbfgs", "joint-lbfgs", "adam"):
        raise ValueError(f"optimizer must be 'lbfgs', 'frame-lbfgs', 'joint-lbfgs' or 'adam', got {optimizer!r}")
    if coordinates not in ("auto", "pose", "latent"):
        raise ValueError(f"coordinates must be 'auto', 'pose' or 'latent', got {coordinates!r}")
    if optimizer == "lbfgs":
        if fit.smooth > 0:  # each frame's own MAP first (cheap, batched), then all frames together
            first = fit_map(fit.without_smoothness(), steps, init=init, progress=progress, coordinates=coordinates)
            assert first.latent is not None  # every MAP reports its latent
            init = {fit.latent: first.latent, "orient": first.orient, "transl": first.transl}
            values = own_copies(free_sites(fit, init))
            optimizer = "joint-lbfgs"
        else:
            optimizer = "frame-lbfgs"
    if optimizer == "frame-lbfgs":
        if fit.smooth > 0:
            raise ValueError("frame-lbfgs needs independent frames (smooth = 0); use joint-lbfgs")
        with fit.frozen_prior():
            out, losses = _frame_map(fit, values, steps, progress, coordinates)
        return finish(
            fit, with_known_root(fit, out), "MAP (L-BFGS per frame)", losses, None, time.perf_counter() - start
        )
    with pyro.get_param_store().scope(), fit.frozen_prior():
        guide = AutoDelta(fit.model, init_loc_fn=init_to_value(values=values))
        guide()
        elbo = Trace_ELBO()
        params = list(guide.parameters())
        loss_fn = lambda: elbo.differentiable_loss(fit.model, guide)  # noqa: E731
        if optimizer == "joint-lbfgs":
            losses = _lbfgs(loss_fn, params, steps, progress, "MAP")
        else:
            losses = adam_loop(loss_fn, params, steps, lr, progress, "MAP")
        with torch.no_grad():
            out = with_known_root(fit, {k: v.detach() for k, v in guide.median().items()})
    name = "AutoDelta, L-BFGS" if optimizer == "joint-lbfgs" else "AutoDelta, Adam"
    return finish(fit, out, f"MAP ({name})", losses, None, time.perf_counter() - start)
