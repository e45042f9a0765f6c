"""``probpose bench``: every registered model fitted and evaluated on the same split.

One table: model, parameters, steps, fit time, test NLL (nats/pose), BPD, NLL vs Haar, log_prob
throughput (poses/s, forward and forward+backward), sampling throughput, device, N. Fits are
budgeted in optimisation steps (each model's :func:`~probpose.bench.budgets.bench_budget`), so the same command
gives the same numbers on any machine up to float noise; wall time is reported and an optional
wall-clock cap exists. Each fitted model is saved (``models/NAME.pt``, loadable with
:func:`probpose.models.load_model`). Throughputs are medians at one batch size; compare them
within one run (as ratios), not across machines.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from probpose.bench.budgets import bench_budget
from probpose.bench.timing import per_second
from probpose.data import StoreSplit
from probpose.evaluation import evaluate
from probpose.machine import threads
from probpose.models import LatentPoseModel, build_model, save_model
from probpose.options import check_device
from probpose.progress import Progress, format_seconds
from probpose.reports import Column, markdown_table, write_results
from probpose.skeleton import Skeleton
from probpose.training import Trainer, TrainingConfig

__all__ = ["BenchRow", "bench_models", "format_table", "write_bench"]


@dataclass
class BenchRow:
    model: str
    parameters: int
    steps: int
    fit_seconds: float
    test_nll: float
    bpd: float
    nll_haar: float
    logprob_per_s: float
    logprob_backward_per_s: float
    sample_per_s: float
    device: str
    n_test: int
    n_train: int
    dim: int
    exact: bool
    recon_deg: float | None = None
    elbo_nll: float | None = None
    checkpoint: str | None = None
    history: list[dict] | None = None
    """Validation records of the fit: ``step``, ``seconds``, ``val_nll`` (nats/pose), ..."""


def bench_models(
    names: Sequence[str],
    train: torch.Tensor | StoreSplit,
    val: torch.Tensor | StoreSplit | None,
    test: torch.Tensor,
    skeleton: Skeleton,
    device: str = "cpu",
    batch: int = 1024,
    repeats: int = 3,
    training_overrides: dict | None = None,
    save_dir: str | Path | None = None,
    fit_threads: int | None = 1,
) -> list[BenchRow]:
    """Fit each registered model in ``names`` on ``train`` (early stopping on ``val``) with its
    :func:`~probpose.bench.budgets.bench_budget` settings (``training_overrides`` on top), evaluate on ``test``,
    time it on ``device`` and, with ``save_dir``, save it as ``save_dir/NAME.pt``.

    Fits and scores run with ``fit_threads`` torch threads (default 1; ``None``: the current
    count): a CPU's float reductions depend on the thread count, and SVI amplifies the difference,
    so a fixed count makes the NLLs the same on every run and core count. Timings use the
    caller's thread count."""
    dev = torch.device(check_device(device))
    rows = []
    board = Progress(len(names), "bench", unit="model", interval=math.inf)  # lines at model boundaries only
    svi_steps, svi_seconds = 0, 0.0
    for k, name in enumerate(names):
        budget = _budget(name, training_overrides)
        board.event(
            f"bench: model {k + 1}/{len(names)}: fitting {name}"
            + (f" (up to {budget:,} steps)" if budget else " (closed form)")
        )
        seed = int((training_overrides or {}).get("seed", bench_budget(name).get("seed", 0)))
        cfg = TrainingConfig(**_bench_settings(name, training_overrides, device))
        with threads(fit_threads):
            with torch.random.fork_rng():  # initial weights from the bench's seed, the global RNG restored after
                torch.manual_seed(seed)
                model = build_model(name, skeleton)
            result = Trainer(model, cfg).fit(train, val)  # the trainer moves the model to the device
            model.eval()
            ckpt = save_model(Path(save_dir) / f"{name}.pt", model) if save_dir is not None else None
            with torch.random.fork_rng():  # bounds that sample (IWAE, ELBO) are seeded too
                torch.manual_seed(seed)
                ev = evaluate(model, test)
                recon = elbo = None
                if isinstance(model, LatentPoseModel):
                    recon, elbo = _reconstruction(model, test), _elbo_nll(model, test)
        # a bound with K importance samples costs K decoder passes per pose: time fewer poses
        n_time = batch if ev.exact else max(1, batch // 64)
        reps = (n_time + len(test) - 1) // len(test)
        x = test.repeat(reps, 1, 1)[:n_time].to(**model.factory())

        def forward(model=model, x=x) -> None:
            with torch.no_grad():
                model.log_prob(x)

        def backward(model=model, x=x) -> None:
            model.zero_grad(set_to_none=True)
            model.log_prob(x).sum().backward()

        def sample(model=model) -> None:
            model.sample(batch)

        rows.append(
            BenchRow(
                model=name,
                parameters=model.num_parameters(),
                steps=result.steps,
                fit_seconds=result.seconds,
                test_nll=ev.nll,
                bpd=ev.bpd,
                nll_haar=ev.nll_haar,
                logprob_per_s=per_second(n_time, forward, repeats, dev),
                logprob_backward_per_s=per_second(n_time, backward, repeats, dev),
                sample_per_s=per_second(batch, sample, repeats, dev),
                device=device,
                n_test=len(test),
                n_train=len(train),
                dim=ev.dim,
                exact=ev.exact,
                recon_deg=recon,
                elbo_nll=elbo,
                checkpoint=str(ckpt) if ckpt is not None else None,
                history=result.history,
            )
        )
        board.update(1)
        if result.steps:
            svi_steps += result.steps
            svi_seconds += result.seconds
        budgets = [_budget(n, training_overrides) for n in names[k + 1 :]]
        eta = ""
        if svi_steps and any(budgets):  # from the step rate so far and the step budgets left
            eta = f"; at most about {format_seconds(svi_seconds / svi_steps * sum(budgets))} of fitting left"
        board.event(
            f"bench: {name} done: {result.steps} steps in {format_seconds(result.seconds)}, test NLL {ev.nll:.2f}{eta}"
        )
    board.close()
    return rows


def _bench_settings(name: str, overrides: dict | None, device: str) -> dict:
    """A model's bench budget (:func:`~probpose.bench.budgets.bench_budget`) with ``overrides`` on
    top; ``max_steps`` there caps the budget, never raises it."""
    budget, overrides = bench_budget(name), overrides or {}
    settings = {**budget, **overrides, "device": device}
    if "max_steps" in overrides:
        settings["max_steps"] = min(budget.get("max_steps", 2000), overrides["max_steps"])
    return settings


def _budget(name: str, overrides: dict | None) -> int:
    """The most SVI steps the bench gives a model (0 for a closed-form fit)."""
    settings = _bench_settings(name, overrides, "cpu")
    return 0 if settings.get("fit") == "closed_form" else int(settings.get("max_steps", 2000))


def _reconstruction(model: LatentPoseModel, test: torch.Tensor) -> float:
    """Mean geodesic reconstruction error in degrees."""
    return model.reconstruction_error(test.to(**model.factory())).mean().item()


@torch.no_grad()
def _elbo_nll(model: LatentPoseModel, test: torch.Tensor, samples: int = 100) -> float:
    """-ELBO per pose (nats), an upper bound on NLL looser than the IWAE bound."""
    f = model.factory()
    return -torch.cat([model.elbo(b.to(**f), samples) for b in test.split(256)]).mean().item()


def _nll(row: Mapping[str, Any]) -> str:
    return f"{row['test_nll']:.2f}" + ("" if row["exact"] else " (IWAE bound)")


COLUMNS = [
    Column("model", "model"),
    Column("parameters", "params", "{:,}"),
    Column("steps", "steps"),
    Column("fit_seconds", "fit s", "{:.1f}"),
    Column("test_nll", "test NLL (nats/pose)", _nll),
    Column("elbo_nll", "-ELBO (bound)", "{:.2f}"),
    Column("bpd", "BPD", "{:.4f}"),
    Column("nll_haar", "NLL vs Haar", "{:.2f}"),
    Column("logprob_per_s", "log_prob poses/s", "{:,.0f}"),
    Column("logprob_backward_per_s", "log_prob+grad poses/s", "{:,.0f}"),
    Column("sample_per_s", "sample poses/s", "{:,.0f}"),
    Column("recon_deg", "recon. error (deg)", "{:.2f}"),
    Column("device", "device"),
    Column("n_test", "N test"),
]


def format_table(rows: Sequence[BenchRow]) -> str:
    """The bench's Markdown table."""
    return markdown_table(COLUMNS, [asdict(r) for r in rows])


def write_bench(out_dir: str | Path, rows: Sequence[BenchRow], context: dict) -> tuple[Path, Path]:
    """Write ``bench.md`` and ``bench.json`` (rows, data description, machine) to ``out_dir``."""
    dim = rows[0].dim if rows else "?"
    sizes = f"train {rows[0].n_train} / test {rows[0].n_test}" if rows else "?"
    cap = context.get("fit_seconds_budget")
    steps_cap = context.get("max_steps")
    intro = (
        f"Data: {context.get('data')}; joints {context.get('joints')!r} (D = {dim}); {sizes} poses. "
        "NLL in nats per pose (Lebesgue on axis-angle); BPD = NLL / (D ln 2); NLL vs Haar: with respect to the "
        "normalised Haar measure on SO(3)^J (uniform rotations score 0). VAEs: the importance-weighted bound "
        "(K = 1000), an upper bound on their NLL, and the looser -ELBO bound; recon. error: mean geodesic "
        "angle of the test poses' reconstructions. Throughputs (VAE log_prob: the K = 1000 bound, timed on "
        f"batch/64 poses): medians, batch {context.get('batch')}, {context.get('threads')} torch thread(s); "
        f"fits and NLLs on {context.get('fit_threads', 1)} thread(s). "
        "Fit: each model's bench budget (bench/budgets.py: a budget of optimisation steps, early stopping on "
        "validation)"
        + (f", capped at {cap:g} s of training" if cap else "")
        + (f", at most {steps_cap} steps" if steps_cap else "")
        + f"; seed {context.get('seed', 0)}."
    )
    payload = {"rows": [asdict(r) for r in rows], **{k: v for k, v in context.items() if k != "machine"}}
    md, js = write_results(out_dir, "bench", "probpose bench", intro, format_table(rows), payload, context["machine"])
    nll_time_plot(rows, Path(out_dir) / "bench_nll_time.png")
    return md, js


def nll_time_plot(rows: Sequence[BenchRow], path: str | Path) -> Path | None:
    """Validation NLL against training seconds, a line per model fitted by SVI and a point per
    closed-form fit (VAEs: their validation bound). ``None`` when no row has a validation record."""
    from probpose.plots import curves

    lines: dict[str, tuple[Sequence[float], Sequence[float]]] = {}
    points: dict[str, tuple[float, float]] = {}
    for r in rows:
        hist = [h for h in (r.history or []) if h.get("val_nll") is not None]
        if len(hist) > 1:
            lines[r.model] = ([h["seconds"] for h in hist], [h["val_nll"] for h in hist])
        elif hist:
            points[r.model] = (hist[0]["seconds"], hist[0]["val_nll"])
    if not lines and not points:
        return None
    return curves(
        lines,
        path,
        "training time (s)",
        "validation NLL (nats/pose)",
        "probpose bench: validation NLL while fitting",
        points,
    )
