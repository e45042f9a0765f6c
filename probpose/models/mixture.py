"""SMPLify's prior: a mixture of full-covariance Gaussians over the whole pose, fitted by EM (the
single full-covariance Gaussian is :mod:`probpose.models.full_gaussian`).

EM here is exact and chunked: every pass over the data accumulates sufficient statistics (counts,
first and second moments) chunk by chunk, so the memory it needs does not grow with the data. A pass
computes in the model's dtype (a float32 model's EM is about twice as fast; its second moments are
taken about the current means, so nothing cancels) and sums in float64. The start is k-means++
(seeded) and a few Lloyd iterations. Covariances are floored by clipping their eigenvalues at
``min_variance`` -- the exact maximiser of EM's M-step objective under the constraint ``Sigma >=
min_variance I`` -- so the training log-likelihood never decreases (recorded per iteration in
``em_history``; in float32, up to its rounding). EM stops once an iteration gains less than ``tol``
nats per pose (default 1e-3: on the CMU training poses 43 iterations instead of 199 for 1e-6, 0.1
nats of training log-likelihood less). The E step solves every component at once.

**How many components** (``select``, the default): the registered ``gmm`` chooses by blocked
cross-validation over 5 blocks (below; :data:`REGISTRY_DEFAULTS`). With ``folds: 0``, when the
trainer passes validation poses, EM is fitted for K = 1, 2, 4, ... up to ``components``, and the
K with the best mean validation log-likelihood is kept (K = 1 is the single full-covariance
Gaussian's maximum likelihood), so on data like the validation split the mixture is never worse
than one Gaussian beyond noise. A chosen K below ``components`` fills the remaining slots with
copies of its components, their weights shared: the same density, the checkpoint's shapes
unchanged. The choice is ``chosen_components``.

**Blocked cross-validation** (``folds`` >= 2, with ``select``; validation poses not needed): the
training poses, in the order they come (a store keeps whole trials and subjects together), are cut
into ``folds`` contiguous blocks; for K = 1, 2, 4, ... EM is fitted without each block and scored
on it, and the K with the best mean held-out log-likelihood is fitted on all the training poses.
Larger K are tried only while the score improves. A validation split of other trials of the
training performers rewards modelling those performers (on the bundled CMU data it picks K = 4,
2.1 nats/pose worse than one Gaussian on unseen subjects); blocks hold out whole performers
(``benchmarks/gmm_subjects.py``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from probpose.distributions import GaussianMixturePrior
from probpose.errors import ConfigError, TrainingError
from probpose.flows import floored_covariance, moments_to_covariance
from probpose.models.base import PriorModel
from probpose.models.chunks import Chunks, as_chunks
from probpose.models.full_gaussian import CholeskyParameters
from probpose.models.registry import ModelSpec, register
from probpose.options import CHUNK_ROWS, MAX_SEED, MAX_WIDTH, option, validate
from probpose.parallel import SINGLE, Group
from probpose.skeleton import Skeleton

__all__ = ["GMMOptions", "GMMModel", "fit_gmm"]


_BLOCK_ELEMENTS = 1 << 23
"""Largest temporary of the batched E step, in elements (64 MB in float64)."""


def _component_log_prob(x: Tensor, means: Tensor, chol: Tensor) -> Tensor:
    """``log N(x_n; mu_k, L_k L_k^T)``: ``x (n, D)`` -> ``(n, K)`` in ``x``'s dtype, every component
    in one matrix product: ``z = L_k^-1 (x - c) - L_k^-1 (mu_k - c)`` with the inverses and shifts
    computed in float64 (``c``: the means' centre, so that float32 products do not cancel). A
    product with the explicit inverse is 3x faster than the batched triangular solve in float32
    (1.2x in float64) and agrees with it to 1e-4 nats (float32) and 1e-12 (float64)."""
    k, d = means.shape
    lk = chol.to(torch.float64)
    inv = torch.linalg.solve_triangular(lk, torch.eye(d, dtype=lk.dtype, device=lk.device).expand(k, d, d), upper=False)
    centre = means.to(torch.float64).mean(0)
    shift = (inv @ (means.to(torch.float64) - centre).unsqueeze(-1)).squeeze(-1)  # (K, D)
    const = -lk.diagonal(dim1=-2, dim2=-1).log().sum(-1) - 0.5 * d * math.log(2 * math.pi)  # (K,)
    wt = inv.to(x.dtype).reshape(k * d, d).T  # (D, K D)
    shift, const, centre = shift.to(x.dtype), const.to(x.dtype), centre.to(x.dtype)
    rows = max(1, _BLOCK_ELEMENTS // (k * d))  # rows per block: an (rows, K, D) temporary of bounded size
    out = []
    for xb in x.split(rows):
        z = ((xb - centre) @ wt).view(len(xb), k, d) - shift
        out.append(-0.5 * (z * z).sum(-1) + const)
    return torch.cat(out) if out else x.new_zeros(0, k)


def _second_moments(r: Tensor, x: Tensor, centres: Tensor | None = None) -> Tensor:
    """``sum_n r_nk x_n x_n^T`` per component: ``(K, D, D)`` (one matmul per component, no (n, K, D)
    temporary). With ``centres`` ``(K, D)``: ``sum_n r_nk (x_n - c_k)(x_n - c_k)^T`` instead (what a
    float32 pass can sum without cancellation; :func:`_uncentred` turns it back in float64)."""
    out = []
    for k in range(r.shape[1]):
        xc = x if centres is None else x - centres[k]
        out.append((xc * r[:, k : k + 1]).T @ xc)
    return torch.stack(out)


def _uncentred(m2: Tensor, counts: Tensor, s1: Tensor, centres: Tensor) -> Tensor:
    """``sum r x x^T`` ``(K, D, D)`` from the moments about ``centres`` ``(K, D)``, the counts ``(K,)``
    and ``s1 = sum r x`` ``(K, D)`` (float64): ``M2 + c s1^T + s1 c^T - N c c^T``."""
    cs = centres.unsqueeze(-1) * s1.unsqueeze(-2)
    return m2 + cs + cs.transpose(-1, -2) - counts[:, None, None] * centres.unsqueeze(-1) * centres.unsqueeze(-2)


def fit_gmm(
    chunks: Chunks,
    components: int,
    min_variance: float = 1e-6,
    max_iter: int = 200,
    tol: float = 1e-6,
    kmeans_iter: int = 10,
    generator: torch.Generator | None = None,
    group: Group = SINGLE,
    dtype: torch.dtype = torch.float64,
) -> tuple[Tensor, Tensor, Tensor, list[float]]:
    """EM for a Gaussian mixture on flattened poses.

    Args:
        chunks: a source of ``(n, D)`` chunks (called once per pass).
        components: K.
        min_variance: eigenvalue floor of every covariance (rad^2).
        max_iter: EM iterations at most; ``tol``: stop once the mean training log-likelihood per
            pose improves by less than this (nats).
        kmeans_iter: Lloyd iterations after the k-means++ start.
        generator: for k-means++ (the global RNG is not used).
        group: with several processes, each passes its own rows (the processes' rows, in rank
            order, being the data); the sums are added up across them and the k-means++ subsample
            is the same rows as in one process, so every process returns the one-process result
            (to float64 rounding).
        dtype: what each EM pass computes in (the E step, the first and second moments; the
            model's dtype in :class:`GMMModel`): float32 is about twice as fast; the second moments
            are then taken about the current means (no cancellation), and every sum over chunks,
            the M step and the returned parameters are float64 whatever ``dtype``.

    Returns:
        weights ``(K,)``, means ``(K, D)``, covariances ``(K, D, D)`` (float64), and the mean
        training log-likelihood per pose after the start and after each EM iteration.
    """
    gen = generator or torch.Generator().manual_seed(0)
    first, n = group.offset(sum(len(c) for c in chunks()))
    if n < components:
        raise TrainingError(f"a mixture of {components} components needs at least {components} poses, got {n}")
    # k-means++ start on a subsample of at most 20,000 rows: row i is kept when the i-th uniform draw
    # (drawn in blocks of 65,536, whoever holds the row) is below `keep`
    keep = min(1.0, 20000 / n)
    kept = torch.cat([torch.rand(min(65536, n - b), generator=gen) < keep for b in range(0, n, 65536)])
    mine, parts = kept[first:], []
    for c in chunks():
        parts.append(c.double()[mine[: len(c)].to(c.device)])
        mine = mine[len(c) :]
    sub = group.gather_rows(torch.cat(parts))
    if len(sub) < components:
        sub = group.gather_rows(torch.cat([c.double() for c in chunks()]))
    centers = [sub[torch.randint(len(sub), (1,), generator=gen)].squeeze(0)]
    d2 = ((sub - centers[0]) ** 2).sum(-1)
    for _ in range(1, components):
        if d2.sum() > 0:
            pick = torch.multinomial(d2 / d2.sum(), 1, generator=gen)
        else:  # fewer distinct poses than components
            pick = torch.randint(len(sub), (1,), generator=gen)
        centers.append(sub[pick].squeeze(0))
        d2 = torch.minimum(d2, ((sub - centers[-1]) ** 2).sum(-1))
    mu = torch.stack(centers)
    for it in range(kmeans_iter + 1):  # the last pass only collects the hard assignments' statistics
        counts = torch.zeros(components, dtype=torch.float64)
        s1 = torch.zeros_like(mu)
        s2 = torch.zeros(components, mu.shape[1], mu.shape[1], dtype=torch.float64)
        for c in chunks():
            x = c.double()
            label = torch.cdist(x, mu).argmin(-1)
            onehot = torch.nn.functional.one_hot(label, components).double()
            counts += onehot.sum(0)
            s1 += onehot.T @ x
            if it == kmeans_iter:
                s2 += _second_moments(onehot, x)
        counts, s1 = group.sum(counts), group.sum(s1)
        filled = counts > 0
        mu = torch.where(filled[:, None], s1 / counts.clamp_min(1)[:, None], mu)
    s2 = group.sum(s2)
    weights, means, covs = _m_step(counts, s1, s2, mu, min_variance, n)
    history: list[float] = []
    for _ in range(max_iter + 1):
        chol = torch.linalg.cholesky(covs)
        counts = torch.zeros(components, dtype=torch.float64)
        s1 = torch.zeros_like(means)
        s2 = torch.zeros_like(covs)
        total = 0.0
        exact = dtype == torch.float64
        m, lk, lw = means.to(dtype), chol.to(dtype), weights.log().to(dtype)
        for c in chunks():
            x = c.to(dtype)
            lp = _component_log_prob(x, m, lk) + lw
            ll = torch.logsumexp(lp, -1)
            r = torch.exp(lp - ll[:, None])
            total += ll.double().sum().item()
            counts += r.sum(0).double()
            s1 += (r.T @ x).double()
            s2 += _second_moments(r, x, None if exact else m).double()
        counts, s1, s2, total = group.sum(counts), group.sum(s1), group.sum(s2), group.total(total)
        if not exact:
            s2 = _uncentred(s2, counts, s1, m.double())
        history.append(total / n)
        if len(history) > 1 and history[-1] - history[-2] < tol:
            break
        if len(history) == max_iter + 1:
            break
        weights, means, covs = _m_step(counts, s1, s2, means, min_variance, n)
    return weights, means, covs, history


def _m_step(
    counts: Tensor, s1: Tensor, s2: Tensor, previous: Tensor, min_variance: float, n: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Weights, means and floored covariances from the (soft) counts and moments; a component with
    no weight keeps its mean and gets the floor as covariance."""
    alive = counts > 1e-10 * n
    safe = counts.clamp_min(1e-300)
    means, covs = moments_to_covariance(safe, s1, s2)
    means = torch.where(alive[:, None], means, previous)  # a dead component's covariance is replaced below
    eye = torch.eye(means.shape[1], dtype=torch.float64)
    covs = torch.where(alive[:, None, None], covs, min_variance * eye)
    weights = (counts / n).clamp_min(1e-300)
    return weights / weights.sum(), means, floored_covariance(covs, min_variance)


@dataclass
class GMMOptions:
    """``components`` (K, at most, with ``select``: see the module docstring); ``min_variance``:
    eigenvalue floor of every covariance (rad^2);
    ``max_iter`` EM iterations at most, stopping once the training log-likelihood per pose improves
    by less than ``tol`` nats; ``kmeans_iter`` Lloyd iterations after the k-means++ start (seeded
    by ``seed``); ``init_scale``: standard deviation (radians) before a fit; ``folds``: 0 chooses K
    on the validation poses, 2 or more by blocked cross-validation over that many contiguous blocks
    of the training poses (module docstring)."""

    components: int = option(8, ge=1, le=MAX_WIDTH)
    min_variance: float = option(1e-6, gt=0)
    max_iter: int = option(200, ge=1)
    tol: float = option(1e-3, ge=0)
    select: bool = True
    kmeans_iter: int = option(10, ge=0)
    init_scale: float = option(0.5, gt=0)
    seed: int = option(0, ge=0, le=MAX_SEED)
    folds: int = option(0, ge=0, le=MAX_WIDTH)

    def __post_init__(self) -> None:
        validate(self)
        if self.folds == 1:
            raise ConfigError("folds: 0 (choose K on validation poses) or at least 2 blocks, got 1")


REGISTRY_DEFAULTS = {"folds": 5}
"""What the registered ``gmm`` starts from: K by blocked cross-validation over 5 blocks (as the
shipped ``cmu/gmm``), not on validation poses: on the bundled CMU data a validation split of the
training performers' other trials picks K = 4, 2.1 nats/pose worse than one Gaussian on unseen
performers, 5 blocks pick K = 2, 0.44 better (``benchmarks/results/gmm_subjects_cmu/``).
:class:`GMMOptions`' own default stays ``folds: 0`` (checkpoints written before ``folds`` existed
load as fitted)."""


def _block(source: Chunks, lo: int, hi: int, inside: bool) -> Chunks:
    """The flattened rows ``[lo, hi)`` of ``source`` (``inside``) or all the others, as a chunk source."""

    def chunks() -> Iterator[Tensor]:
        off = 0
        for c in source():
            c = c.flatten(1)
            a, b = min(max(lo - off, 0), len(c)), min(max(hi - off, 0), len(c))
            parts = [c[a:b]] if inside else [c[:a], c[b:]]
            yield from (p for p in parts if len(p))
            off += len(c)

    return chunks


class GMMModel(PriorModel):
    """A :class:`~probpose.distributions.GaussianMixturePrior` over all modelled joints, fitted by EM
    (``fit_closed_form``) or by SVI like any model."""

    options: GMMOptions

    has_closed_form = True

    def __init__(self, skeleton: Skeleton, options: GMMOptions | None = None) -> None:
        super().__init__(skeleton)
        self.options = o = options or GMMOptions()
        k, d = o.components, 3 * skeleton.num_joints
        gen = torch.Generator().manual_seed(o.seed)
        self.logits = nn.Parameter(torch.zeros(k))
        self.loc = nn.Parameter(0.1 * torch.randn(k, skeleton.num_joints, 3, generator=gen))
        self.cov = CholeskyParameters(k, d, o.init_scale)
        self.em_history: list[float] = []
        self.selection: dict[int, float] = {}
        self.chosen_components = o.components

    def forward(self, context: Tensor | None = None) -> GaussianMixturePrior:
        if context is not None:
            raise ValueError("GMMModel is not conditional: context must be None")
        return GaussianMixturePrior(self.logits, self.loc, self.cov.scale_tril())

    @torch.no_grad()
    def fit_closed_form(
        self, train_poses: Tensor | Chunks, group: Group = SINGLE, val_poses: Tensor | None = None
    ) -> None:
        """EM from a k-means++ start; with ``select``, the number of components by blocked
        cross-validation (``folds`` >= 2) or on ``val_poses`` ``(M, J, 3)`` (process 0's, under a
        distributed ``group``; module docstring). The mean training log-likelihood per pose after
        each iteration of the kept fit is in ``em_history``, the held-out (or validation)
        log-likelihood per candidate K in ``selection``.
        ``group``: see :func:`fit_gmm`."""
        o = self.options
        source = as_chunks(train_poses)

        def em(k: int, chunks: Chunks) -> tuple[Tensor, Tensor, Tensor, list[float]]:
            gen = torch.Generator().manual_seed(o.seed)
            return fit_gmm(chunks, k, o.min_variance, o.max_iter, o.tol, o.kmeans_iter, gen, group, self.loc.dtype)

        def total_log_lik(fit: tuple[Tensor, Tensor, Tensor, list[float]], chunks: Iterable[Tensor]) -> float:
            w, m, c, _ = fit
            chol, total = torch.linalg.cholesky(c), 0.0
            for x in chunks:
                total += torch.logsumexp(_component_log_prob(x.to(torch.float64), m, chol) + w.log(), -1).sum().item()
            return total

        ladder = sorted({min(2**i, o.components) for i in range(o.components.bit_length() + 1)})
        fits, scores = {}, {}
        if o.select and o.folds >= 2:
            n = sum(len(c) for c in source())  # this process's rows
            count = group.total(float(n))
            if count < 2 * o.folds:
                raise TrainingError(f"{int(count)} training poses are too few for {o.folds} cross-validation blocks")
            bounds = [round(i * n / o.folds) for i in range(o.folds + 1)]
            for k in ladder:
                total = 0.0
                for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
                    fit = em(k, _block(source, lo, hi, inside=False))
                    total += total_log_lik(fit, _block(source, lo, hi, inside=True)())
                scores[k] = group.total(total) / count
                if scores[k] < max(scores.values()):
                    break  # larger K only while the held-out score improves
            best = max(scores, key=lambda k: (scores[k], -k))
            fits[best] = em(best, lambda: (c.flatten(1) for c in source()))
        else:
            have_val = bool(group.total(float(val_poses is not None and len(val_poses) > 0)) > 0)
            candidates = ladder if o.select and have_val else [o.components]
            for k in candidates:
                fits[k] = em(k, lambda: (c.flatten(1) for c in source()))
                if val_poses is not None and len(candidates) > 1:
                    scores[k] = total_log_lik(fits[k], val_poses.flatten(1).split(CHUNK_ROWS)) / len(val_poses)
            best = max(scores, key=lambda k: (scores[k], -k)) if scores else candidates[-1]
        best = int(group.broadcast_text(str(best) if group.is_main else None))
        weights, means, covs, history = fits[best]
        slot = torch.arange(o.components) % best  # the chosen components, repeated to fill every slot
        share = torch.bincount(slot, minlength=best).to(weights)[slot]
        self.logits.copy_((weights[slot] / share).log())
        self.loc.copy_(means[slot].view(o.components, -1, 3))
        self.cov.set_covariances(covs[slot])
        self.em_history = history
        self.selection = scores
        self.chosen_components = best


register(
    ModelSpec(
        "gmm",
        GMMOptions,
        GMMModel,
        "SMPLify's prior: a mixture of up to 8 full-covariance Gaussians over the whole pose, fitted by EM, "
        "the number chosen by blocked cross-validation over 5 blocks of the training poses",
        defaults=REGISTRY_DEFAULTS,
    )
)
