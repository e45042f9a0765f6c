"""Inference for :class:`~probpose.fitting.PoseFit`: MAP (``AutoDelta``), an approximate posterior
(``AutoNormal`` or ``AutoLowRankMultivariateNormal``) and NUTS, with posterior summaries on SO(3).

MAP optimises the guide's per-frame values with Adam. Adam is element-wise, so without the
smoothness factor every frame's optimisation is exactly the one it would have alone: a batch of
frames gives the per-frame results (tested).

Posterior summaries per joint, from pose samples: the mean rotation (the rotation nearest to the
average matrix), the angular standard deviation (root mean square geodesic distance from the
mean, degrees) and the radius of the 90% credible ball around the mean (degrees); a true rotation is
"covered" when its geodesic distance from the mean is within that radius.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from typing import Literal

import pyro
import torch
from pyro.infer import MCMC, NUTS, Trace_ELBO
from pyro.infer.autoguide import (
    AutoDelta,
    AutoLowRankMultivariateNormal,
    AutoNormal,
    init_to_value,
)
from pyro.infer.autoguide.initialization import InitMessenger
from torch import Tensor

from probpose.fitting.model import PoseFit
from probpose.fitting.observations import Joints3D
from probpose.progress import Progress, track
from probpose.rotations import axis_angle_to_matrix, geodesic_distance, matrix_to_axis_angle

log = logging.getLogger(__name__)

__all__ = ["FitResult", "Posterior", "initial_values", "fit_map", "fit_posterior", "fit_nuts", "summarize",
           "mean_rotation", "geodesic_error_deg", "laplace", "frame_mvn_guide",
           "frame_log_joint"]  # fmt: skip


@dataclass
class Posterior:
    """Posterior summaries per frame and joint: ``mean`` ``(N, J, 3)`` axis-angle radians,
    ``std_deg`` and ``radius90_deg`` ``(N, J)`` degrees, and the ``samples`` ``(S, N, J, 3)``."""

    mean: Tensor
    std_deg: Tensor
    radius90_deg: Tensor
    samples: Tensor

    def covers(self, truth: Tensor) -> Tensor:
        """``(N, J)`` bool: the true rotation lies inside the 90% ball."""
        err = geodesic_distance(axis_angle_to_matrix(truth.double()), axis_angle_to_matrix(self.mean.double()))
        return torch.rad2deg(err) <= self.radius90_deg


@dataclass
class FitResult:
    """A fit: ``pose`` ``(N, J, 3)`` axis-angle radians, ``orient`` ``(N, 3)``, ``transl`` ``(N, 3)``
    metres, the observed points it predicts ``(N, K, 3)``, the per-frame ``residual`` (metres for 3D,
    pixels for 2D), the loss history, and the posterior when one was inferred."""

    pose: Tensor
    orient: Tensor
    transl: Tensor
    points: Tensor
    residual: Tensor
    inference: str
    losses: list[float] = field(default_factory=list)
    posterior: Posterior | None = None
    seconds: float = 0.0
    latent: Tensor | None = None
    """The latent site's values (``pose``; ``z`` for VAEs; ``pose_base`` for base-space fits)."""


def _kabsch(src: Tensor, dst: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
    """Per frame the rotation ``R`` ``(N, 3, 3)`` and shift ``c`` ``(N, 3)`` minimising
    ``sum_k w_k |R src_k + c - dst_k|^2`` (``src`` ``(K, 3)``, ``dst`` ``(N, K, 3)``, ``w`` ``(N, K)``)."""
    wsum = w.sum(-1, keepdim=True).clamp_min(1e-9)
    ms = (w.unsqueeze(-1) * src).sum(-2) / wsum
    md = (w.unsqueeze(-1) * dst).sum(-2) / wsum
    a = (src - ms.unsqueeze(-2)) * w.unsqueeze(-1)
    h = a.transpose(-1, -2) @ (dst - md.unsqueeze(-2))
    u, _, vt = torch.linalg.svd(h)
    d = torch.sign(torch.linalg.det(vt.transpose(-1, -2) @ u.transpose(-1, -2)))
    fix = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], -1))
    r = vt.transpose(-1, -2) @ fix @ u.transpose(-1, -2)
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
    latent = torch.zeros((n,) + fit.latent_shape(), dtype=dt)
    if fit.latent == "pose" and fit.prior is not None:
        with torch.no_grad(), pyro.poutine.block(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # a fixed start; the caller's RNG is restored after
            mean = fit.prior().sample((512,)).mean(0)
        latent = mean.to(dt).expand_as(latent).clone()
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


def _own(values: dict[str, Tensor]) -> dict[str, Tensor]:
    """Fresh copies: the optimisers update the guide's parameters in place, and a guide built from
    a caller's tensor (``init``, an observation's ``init_orient``) would otherwise share its
    storage, changing the caller's tensor, and two sites started from one tensor would be one."""
    return {k: v.detach().clone() for k, v in values.items()}


def _root(fit: PoseFit, values: dict[str, Tensor]) -> dict[str, Tensor]:
    """The latent values NUTS and the guides see (without the root when it is known)."""
    if fit.known_root:
        return {k: v for k, v in values.items() if k not in ("orient", "transl")}
    return values


def _with_root(fit: PoseFit, values: dict[str, Tensor]) -> dict[str, Tensor]:
    if fit.known_root:
        return {**values, "orient": fit.observation.init_orient, "transl": fit.observation.init_transl}
    return values


def _finish(fit: PoseFit, values: dict[str, Tensor], inference: str, losses: list[float],
            posterior: Posterior | None, seconds: float) -> FitResult:  # fmt: skip
    with torch.no_grad():
        pose = fit.pose_of(values[fit.latent]).detach()
        points = fit.points(pose, values["orient"], values["transl"]).detach()
        residual = fit.observation.residual(points)
    return FitResult(pose, values["orient"].detach(), values["transl"].detach(), points, residual, inference, losses,
                     posterior, seconds, values[fit.latent].detach())  # fmt: skip


def _lbfgs(loss_fn, params: list[Tensor], steps: int, progress: bool, desc: str) -> list[float]:
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=20, history_size=50, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-9, tolerance_change=1e-12)  # fmt: skip
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


def _frame_lbfgs(fit: PoseFit, values: dict[str, Tensor], steps: int, progress: bool, history: int = 10,
                 rtol: float | None = None) -> tuple[dict[str, Tensor], list[float]]:  # fmt: skip
    """MAP per frame with a batched L-BFGS: every frame has its own curvature history (``history``
    pairs), search direction and backtracking (Armijo) line search, all frames evaluated in one
    batched call of the model; a frame stops once its objective changes by less than ``rtol``
    (relative; default 1e-10 in float64, 1e-6 in float32) or its gradient vanishes, and is then no
    longer evaluated. ``steps``: iterations (each about one batched evaluation of the frames still
    moving). Returns the values at the end and the total objective after each iteration."""
    x = _flat(values).clone()
    n, d = x.shape
    dt = x.dtype
    rtol = rtol if rtol is not None else (1e-10 if dt == torch.float64 else 1e-6)

    def evaluate(xs: Tensor, idx: Tensor) -> tuple[Tensor, Tensor]:
        xs = xs.detach().requires_grad_(True)
        sub = fit.select(idx) if len(idx) < n else fit
        f = -frame_log_joint(sub, _split(xs, values))
        (g,) = torch.autograd.grad(f.sum(), xs)
        return f.detach(), g

    every = torch.arange(n)
    f, g = evaluate(x, every)
    s_hist = torch.zeros(history, n, d, dtype=dt)
    y_hist = torch.zeros(history, n, d, dtype=dt)
    rho = torch.zeros(history, n, dtype=dt)  # 0: an empty slot (its terms vanish)
    slot = torch.zeros(n, dtype=torch.long)
    moving = torch.isfinite(f) & (g.abs().amax(-1) > 0)
    losses = [float(f.sum())]
    bar = Progress(steps, "MAP", unit="iteration", enabled=progress)
    for _ in range(steps):
        idx = moving.nonzero().squeeze(-1)
        if len(idx) == 0:
            break
        gi = g[idx]
        # two-loop recursion, per frame, newest pair first
        q = gi.clone()
        order = [(slot[idx] - 1 - k) % history for k in range(history)]
        alphas = []
        for k in order:
            sk, yk, rk = s_hist[k, idx], y_hist[k, idx], rho[k, idx]
            a = rk * (sk * q).sum(-1)
            q -= a.unsqueeze(-1) * yk
            alphas.append(a)
        # initial inverse Hessian gamma I: s'y / y'y of the newest pair; without one, a first step
        # of length at most 1 (as torch's L-BFGS)
        rn = rho[order[0], idx]
        has = rn > 0
        yy = y_hist[order[0], idx].square().sum(-1).clamp_min(torch.finfo(dt).tiny)
        gamma = torch.where(has, 1.0 / torch.where(has, rn, 1.0) / yy, 1.0 / gi.abs().sum(-1).clamp_min(1.0))
        r = gamma.unsqueeze(-1) * q
        for k, a in zip(reversed(order), reversed(alphas), strict=True):
            b = rho[k, idx] * (y_hist[k, idx] * r).sum(-1)
            r += (a - b).unsqueeze(-1) * s_hist[k, idx]
        direction = -r
        slope = (gi * direction).sum(-1)
        bad = ~(slope < 0)
        if bad.any():  # not a descent direction: steepest descent, history forgotten
            direction[bad] = -gi[bad]
            slope[bad] = -gi[bad].square().sum(-1)
            rho[:, idx[bad]] = 0.0
        # backtracking (Armijo), only the frames whose step is not yet accepted are evaluated again
        t = torch.ones(len(idx), dtype=dt)
        f_new, g_new = f[idx].clone(), g[idx].clone()
        todo = torch.arange(len(idx))
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
        w = slot[idx]
        s_hist[w[keep], idx[keep]] = s_new[keep]
        y_hist[w[keep], idx[keep]] = y_new[keep]
        rho[w[keep], idx[keep]] = 1.0 / sy_new[keep]
        slot[idx[keep]] = (w[keep] + 1) % history
        change = (f[idx] - f_new).abs()
        x[idx] = x[idx] + step
        f[idx], g[idx] = f_new, g_new
        done = (change <= rtol * f_new.abs().clamp_min(1.0)) | (g_new.abs().amax(-1) <= 1e-12) | (t == 0)
        moving[idx[done]] = False
        losses.append(float(f.sum()))
        bar.update(1)
        bar.note(frames_moving=int(moving.sum()))
    bar.close()
    return _split(x, values), losses


def _optimise(loss_fn, params: list[Tensor], steps: int, lr: float, progress: bool, desc: str) -> list[float]:
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


def fit_map(fit: PoseFit, steps: int = 500, lr: float = 0.05, init: dict[str, Tensor] | None = None,
            progress: bool = False,
            optimizer: Literal["lbfgs", "frame-lbfgs", "joint-lbfgs", "adam"] = "lbfgs") -> FitResult:  # fmt: skip
    """MAP: the latents maximising ``log p(obs, latents)``, the objective of SVI with ``AutoDelta``
    (the negative ELBO of a delta guide is ``-log p(obs, latents)``).

    ``optimizer``: ``"frame-lbfgs"`` (:func:`_frame_lbfgs`: an L-BFGS per frame, batched;
    ``steps`` iterations), ``"joint-lbfgs"`` (torch's L-BFGS over all frames' ``AutoDelta``
    parameters at once, ``steps // 20`` outer steps of 20 iterations), ``"adam"`` (SVI with
    ``AutoDelta``, ``steps`` Adam steps, ``lr`` with cosine decay); ``"lbfgs"`` picks
    ``frame-lbfgs`` when frames are independent (``smooth = 0``), else ``joint-lbfgs``."""
    import time

    start = time.perf_counter()
    values = _own(_root(fit, init or initial_values(fit)))
    if optimizer not in ("lbfgs", "frame-lbfgs", "joint-lbfgs", "adam"):
        raise ValueError(f"optimizer must be 'lbfgs', 'frame-lbfgs', 'joint-lbfgs' or 'adam', got {optimizer!r}")
    if optimizer == "lbfgs":
        optimizer = "frame-lbfgs" if fit.smooth == 0 else "joint-lbfgs"
    if optimizer == "frame-lbfgs":
        if fit.smooth > 0:
            raise ValueError("frame-lbfgs needs independent frames (smooth = 0); use joint-lbfgs")
        with fit.frozen_prior():
            out, losses = _frame_lbfgs(fit, values, steps, progress)
        return _finish(fit, _with_root(fit, out), "MAP (L-BFGS per frame)", losses, None,
                       time.perf_counter() - start)  # fmt: skip
    with pyro.get_param_store().scope(), fit.frozen_prior():
        guide = AutoDelta(fit.model, init_loc_fn=init_to_value(values=values))
        guide()
        elbo = Trace_ELBO()
        params = list(guide.parameters())
        loss_fn = lambda: elbo.differentiable_loss(fit.model, guide)  # noqa: E731
        if optimizer == "joint-lbfgs":
            losses = _lbfgs(loss_fn, params, steps, progress, "MAP")
        else:
            losses = _optimise(loss_fn, params, steps, lr, progress, "MAP")
        with torch.no_grad():
            out = _with_root(fit, {k: v.detach() for k, v in guide.median().items()})
    name = "AutoDelta, L-BFGS" if optimizer == "joint-lbfgs" else "AutoDelta, Adam"
    return _finish(fit, out, f"MAP ({name})", losses, None, time.perf_counter() - start)


def summarize(samples: Tensor) -> Posterior:
    """Posterior summaries of pose samples ``(S, N, J, 3)`` (see the module docstring)."""
    rot = axis_angle_to_matrix(samples.double())
    mean = mean_rotation(rot)
    dist_deg = torch.rad2deg(geodesic_distance(rot, mean.unsqueeze(0)))  # (S, N, J)
    std = dist_deg.square().mean(0).sqrt()
    radius = torch.quantile(dist_deg, 0.9, dim=0)
    return Posterior(matrix_to_axis_angle(mean), std, radius, samples)


def mean_rotation(rot: Tensor) -> Tensor:
    """The rotation nearest (Frobenius) to the average of ``rot`` ``(S, ..., 3, 3)`` over ``S``."""
    u, _, vt = torch.linalg.svd(rot.mean(0))
    d = torch.sign(torch.linalg.det(u @ vt))
    fix = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], -1))
    return u @ fix @ vt


def _flat(values: dict[str, Tensor]) -> Tensor:
    """The sites' values (frames first) as one detached vector per frame ``(N, D)``; :func:`_split`
    inverts it."""
    return torch.cat([v.detach().reshape(v.shape[0], -1) for v in values.values()], -1)


def _log_joint(fit: PoseFit, values: dict[str, Tensor]) -> Tensor:
    """``log p(obs, latents)`` (a scalar, nats; the smoothness factor included) at ``values``."""
    return pyro.poutine.trace(pyro.poutine.condition(fit.model, data=values)).get_trace().log_prob_sum()


def _split(vec: Tensor, values: dict[str, Tensor]) -> dict[str, Tensor]:
    """Per-frame flat vectors ``(..., N, D)`` back to the sites' shapes (``values`` gives them)."""
    out, off = {}, 0
    for k, v in values.items():
        sh = tuple(v.shape[1:])
        size = int(torch.tensor(sh).prod()) if sh else 1
        out[k] = vec[..., off : off + size].reshape(vec.shape[:-1] + sh)
        off += size
    return out


def laplace(fit: PoseFit, values: dict[str, Tensor], step: float = 1e-4, min_precision: float = 1e-6,
            method: Literal["autograd", "differences"] = "autograd") -> tuple[Tensor, Tensor]:  # fmt: skip
    """The Laplace approximation at ``values`` (a MAP), per frame: the Hessian ``H_n`` ``(N, D, D)``
    of ``-log p(obs, latents)`` in frame ``n``'s flat latent vector (the sites of ``values`` in
    order: pose or z, then the root unless known) and the covariance's Cholesky factor
    ``(N, D, D)`` of ``H_n^-1``.

    Without the smoothness factor the log joint is a sum over frames, so the Hessian is exactly
    block-diagonal and one batched Hessian-vector product per coordinate gives all frames' blocks.
    ``method="autograd"``: double backward (exact through splines too: their fused backward
    re-derives itself with autograd when recorded, ``probpose/flows/spline.py``); ``"differences"``:
    central differences of gradients (``step`` in the latent's units), which across the kinks of
    ReLU conditioners are noise, so only for smooth models. Eigenvalues
    are taken by absolute value and floored at ``min_precision``: flat directions (a joint neither
    the prior nor the data constrain) get a wide but finite spread, and a point that is not a
    strict minimum gets the local curvature's magnitude (both are logged). With ``smooth > 0``
    the smoothness factor's curvature is left out (its terms cancel in the batched products; the
    guide is per frame)."""
    base = _flat(values)
    n, d = base.shape

    def grad(x: Tensor, create_graph: bool = False) -> Tensor:
        with pyro.poutine.block(), fit.frozen_prior():
            nlp = -_log_joint(fit, _split(x, values))
        (g,) = torch.autograd.grad(nlp, x, create_graph=create_graph)
        return g

    if method == "autograd":
        x = base.clone().requires_grad_(True)
        g = grad(x, create_graph=True)
        hess = torch.stack([torch.autograd.grad(g[:, i].sum(), x, retain_graph=True)[0] for i in range(d)], -2)
    elif method == "differences":
        cols = []
        for i in range(d):
            e = torch.zeros(d, dtype=base.dtype)
            e[i] = step
            plus = grad((base + e).requires_grad_(True))
            minus = grad((base - e).requires_grad_(True))
            cols.append((plus - minus) / (2 * step))  # (N, D): column i of each block
        hess = torch.stack(cols, -1)
    else:
        raise ValueError(f"method must be 'autograd' or 'differences', got {method!r}")
    hess = 0.5 * (hess + hess.transpose(-1, -2)).detach()
    # H^-1 = A A^T with A = V diag(|lambda|^-1/2); its Cholesky factor from the QR of A^T (stable
    # however wide the eigenvalues' range), in float64
    evals, evecs = torch.linalg.eigh(hess.double())
    bad = evals < min_precision
    if bad.any():
        log.info("laplace: %d of %d Hessian eigenvalues below %g (most negative %.3g) taken by absolute value "
                 "and floored", int(bad.sum()), evals.numel(), min_precision, float(evals.min()))  # fmt: skip
    a = evecs * evals.abs().clamp_min(min_precision).rsqrt().unsqueeze(-2)
    r = torch.linalg.qr(a.transpose(-1, -2)).R
    tril = r.transpose(-1, -2)
    tril = tril * torch.sign(torch.diagonal(tril, dim1=-2, dim2=-1)).unsqueeze(-2)  # positive diagonal
    return hess, tril.to(base.dtype)


def frame_mvn_guide(fit: PoseFit, values: dict[str, Tensor], init_scale: float | Tensor = 0.05):
    """A guide with a full-covariance Gaussian per frame over that frame's latents (pose or z, and
    the root unless known), independent across frames (the posterior's own structure without the
    smoothness factor). Like Pyro's ``AutoMultivariateNormal`` (an auxiliary vector, then ``Delta``
    sites), but block-diagonal over the frames plate: ``N`` covariances of ``D x D`` instead of one
    of ``ND x ND``.

    Parameterised relative to a fixed per-frame factor ``L0`` ``(N, D, D)`` (``init_scale``: e.g.
    :func:`laplace`'s Cholesky factors, or a number times the identity): ``loc = values + L0 shift``
    and ``scale_tril = L0 M`` with ``shift`` ``(N, D)`` starting at 0 and ``M`` lower-triangular
    with a positive diagonal starting at the identity. The learnt parameters are then of order one
    whatever the posterior's scales (degrees for a finger, millimetres for the root), so one
    learning rate suits them all; parameterised directly, Adam's steps of about ``lr`` per entry
    are far larger than Cholesky entries of 1e-3 and the covariance drifts."""
    import pyro.distributions as dist
    from pyro.distributions import constraints

    loc0 = _flat(values)
    n, d = loc0.shape
    if isinstance(init_scale, Tensor):
        base = init_scale.detach().to(loc0).expand(n, d, d).clone()
    else:
        base = init_scale * torch.eye(d, dtype=loc0.dtype).expand(n, d, d).clone()

    def guide() -> dict[str, Tensor]:
        shift = pyro.param("frame_shift", torch.zeros_like(loc0))
        factor = pyro.param("frame_factor", torch.eye(d, dtype=loc0.dtype).expand(n, d, d).clone(),
                            constraint=constraints.lower_cholesky)  # fmt: skip
        loc = loc0 + (base @ shift.unsqueeze(-1)).squeeze(-1)
        with pyro.plate("frames", n, dim=-1):
            vec = pyro.sample("_frame_latent", dist.MultivariateNormal(loc, scale_tril=base @ factor),
                              infer={"is_auxiliary": True})  # fmt: skip
            parts = _split(vec, values)
            out = {k: pyro.sample(k, dist.Delta(v, event_dim=values[k].dim() - 1)) for k, v in parts.items()}
        return out

    return guide


def fit_posterior(fit: PoseFit, guide: Literal["normal", "lowrank", "mvn", "laplace"] = "mvn", steps: int = 600,
                  lr: float = 0.02, particles: int = 8, samples: int = 500, map_steps: int = 300,
                  progress: bool = False, generator_seed: int = 0) -> FitResult:  # fmt: skip
    """An approximate posterior: MAP first (``map_steps``), then one of

    - ``"mvn"`` (default): :func:`frame_mvn_guide`, a full covariance per frame, started at the MAP
      and its Laplace covariance (:func:`laplace`), then fitted by SVI;
    - ``"laplace"``: the Laplace approximation itself (no SVI; ``steps`` unused);
    - ``"normal"``: Pyro's ``AutoNormal`` (mean-field; under-disperses correlated joint chains);
    - ``"lowrank"``: ``AutoLowRankMultivariateNormal`` (rank 8);

    the SVI guides fitted with ``particles`` samples per step and Adam (``lr``, cosine decay);
    ``samples`` poses drawn from the guide give :class:`Posterior`. The result's pose is the
    posterior mean rotation."""
    import time

    start = time.perf_counter()
    if guide not in ("normal", "lowrank", "mvn", "laplace"):
        raise ValueError(f"guide must be 'normal', 'lowrank', 'mvn' or 'laplace', got {guide!r}")
    first = fit_map(fit, steps=map_steps, progress=progress)
    values = _own(_root(fit, {fit.latent: first.latent, "orient": first.orient, "transl": first.transl}))
    tril = laplace(fit, values)[1] if guide in ("mvn", "laplace") else None
    with pyro.get_param_store().scope(), fit.frozen_prior():
        if guide == "normal":
            g = AutoNormal(fit.model, init_loc_fn=init_to_value(values=values), init_scale=0.05)
        elif guide in ("mvn", "laplace"):
            g = frame_mvn_guide(fit, values, init_scale=tril)
        else:
            g = AutoLowRankMultivariateNormal(fit.model, init_loc_fn=init_to_value(values=values), init_scale=0.05,
                                              rank=8)  # fmt: skip
        g()
        params = [pyro.param(k).unconstrained() for k in pyro.get_param_store().keys()]
        elbo = Trace_ELBO(num_particles=particles, vectorize_particles=False)
        losses = [] if guide == "laplace" else _optimise(lambda: elbo.differentiable_loss(fit.model, g), params,
                                                          steps, lr, progress, "posterior")  # fmt: skip
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(generator_seed)
            draws = [g() for _ in range(samples)]
    with torch.no_grad():
        lat = torch.stack([d[fit.latent] for d in draws])
        poses = fit.pose_of(lat.reshape((-1,) + lat.shape[2:])).reshape(lat.shape[:2] + (fit.num_joints, 3))
        post = summarize(poses)
        draws = [_with_root(fit, d) for d in draws]
        orient = torch.stack([d["orient"] for d in draws]).mean(0)
        transl = torch.stack([d["transl"] for d in draws]).mean(0)
    names = {"normal": "AutoNormal, SVI", "lowrank": "AutoLowRankMultivariateNormal, SVI",
             "mvn": "per-frame full Gaussian from Laplace, SVI", "laplace": "Laplace at the MAP"}
    name = names[guide]
    res = _finish(fit, {fit.latent: _latent_for_pose(fit, post.mean, lat), "orient": orient, "transl": transl},
                  f"posterior ({name})", first.losses + losses, post, time.perf_counter() - start)  # fmt: skip
    res.pose = post.mean.to(res.pose)
    return res


def _latent_for_pose(fit: PoseFit, mean_pose: Tensor, draws: Tensor) -> Tensor:
    """A latent whose pose is used for the result's points: the mean pose in pose space, the mean
    latent otherwise (the points are then those of the mean latent's pose)."""
    if fit.latent == "pose":
        return mean_pose.to(draws)
    return draws.mean(0)


def _whitened(fit: PoseFit, values: dict[str, Tensor], tril: Tensor):
    """The fit's model in whitened coordinates: a flat per-frame site ``_white`` ``u`` ``(N, D)``
    and latents ``values + tril u`` (a linear map: the density changes by a constant), the log
    joint entering as a factor. With ``tril`` from :func:`laplace` the posterior in ``u`` is close
    to a standard normal, which NUTS explores with one step size."""
    import pyro.distributions as dist
    from pyro.distributions import constraints

    loc = _flat(values)
    n, d = loc.shape

    def model() -> Tensor:
        with pyro.plate("frames", n, dim=-1):
            u = pyro.sample("_white", dist.ImproperUniform(constraints.real, torch.Size(), torch.Size((d,))))
        x = loc + (tril @ u.unsqueeze(-1)).squeeze(-1)
        with pyro.poutine.block():
            log_joint = _log_joint(fit, _split(x, values))
        pyro.factor("_log_joint", log_joint)
        return x

    return model


def fit_nuts(fit: PoseFit, samples: int = 300, warmup: int = 300, init: dict[str, Tensor] | None = None,
             progress: bool = False, seed: int = 0, max_tree_depth: int = 8,
             precondition: bool = True) -> FitResult:  # fmt: skip
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
        init = {fit.latent: first.latent, "orient": first.orient, "transl": first.transl}
    init = _own(_root(fit, init))
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
                draws = _split(_flat(init) + (tril @ draws["_white"].unsqueeze(-1)).squeeze(-1), init)
            draws = _with_root(fit, draws)
    with torch.no_grad():
        lat = draws[fit.latent]
        poses = fit.pose_of(lat.reshape((-1,) + lat.shape[2:])).reshape(lat.shape[:2] + (fit.num_joints, 3))
        post = summarize(poses)
        orient, transl = draws["orient"], draws["transl"]
        if not fit.known_root:
            orient, transl = orient.mean(0), transl.mean(0)
        values = {fit.latent: _latent_for_pose(fit, post.mean, lat), "orient": orient, "transl": transl}
    name = "NUTS, Laplace-whitened" if precondition else "NUTS"
    res = _finish(fit, values, f"posterior ({name})", [], post, time.perf_counter() - start)
    res.pose = post.mean.to(res.pose)
    return res


def geodesic_error_deg(pose: Tensor, truth: Tensor) -> Tensor:
    """``(..., J)`` geodesic angle between fitted and true rotations, degrees."""
    return torch.rad2deg(geodesic_distance(axis_angle_to_matrix(pose.double()), axis_angle_to_matrix(truth.double())))

