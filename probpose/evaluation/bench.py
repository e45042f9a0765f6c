"""``probpose bench``: every registered model fitted and evaluated on the same split.

One table: model, parameters, fit time, test NLL (nats/pose), BPD, NLL vs Haar, log_prob
throughput (poses/s, forward and forward+backward), sampling throughput, device, N. Written as
Markdown and JSON with a description of the machine. Throughputs are medians of repeated runs at
one batch size; compare them within one run (as ratios), not across machines.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

from probpose.evaluation.metrics import evaluate
from probpose.models import PoseModel
from probpose.skeleton import Skeleton

__all__ = ["BenchRow", "machine_description", "bench_models", "format_table", "write_results"]


@dataclass
class BenchRow:
    model: str
    parameters: int
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


def machine_description(device: str) -> dict:
    """CPU, thread count, library versions and (for CUDA) the GPU."""
    import numpy
    import pyro

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    desc = {
        "date_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pyro": pyro.__version__,
        "numpy": numpy.__version__,
        "device": device,
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        desc["gpu"] = torch.cuda.get_device_name(torch.device(device))
        desc["cuda"] = torch.version.cuda
    return desc


def _median_rate(fn: Callable[[], None], n: int, device: torch.device, repeats: int) -> float:
    """Poses per second: ``n`` / median wall time of ``fn`` over ``repeats`` runs (after a warm-up)."""

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return n / statistics.median(times)


def bench_models(
    names: Sequence[str],
    train: torch.Tensor,
    val: torch.Tensor,
    test: torch.Tensor,
    skeleton: Skeleton,
    device: str = "cpu",
    batch: int = 1024,
    repeats: int = 3,
    training_overrides: dict | None = None,
) -> list[BenchRow]:
    """Fit each registered model in ``names`` on ``train`` (early stopping on ``val``) with its
    registry ``bench_training`` settings, evaluate on ``test`` and time it on ``device``."""
    from probpose.training.config import TrainingConfig
    from probpose.training.registry import build_model, get_model_spec
    from probpose.training.trainer import Trainer

    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda, but no CUDA device is available")
    rows = []
    for name in names:
        spec = get_model_spec(name)
        model = build_model(name, skeleton)
        cfg = TrainingConfig(**{**spec.bench_training, **(training_overrides or {}), "device": device})
        result = Trainer(model, cfg).fit(train, val)  # the trainer moves the model to the device
        model.eval()
        ev = evaluate(model, test)
        # a bound with K importance samples costs K decoder passes per pose: time fewer poses
        n_time = batch if ev.exact else max(1, batch // 64)
        reps = (n_time + len(test) - 1) // len(test)
        x = test.repeat(reps, 1, 1)[:n_time].to(dev, next(model.parameters()).dtype)

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
                fit_seconds=result.seconds,
                test_nll=ev.nll,
                bpd=ev.bpd,
                nll_haar=ev.nll_haar,
                logprob_per_s=_median_rate(forward, n_time, dev, repeats),
                logprob_backward_per_s=_median_rate(backward, n_time, dev, repeats),
                sample_per_s=_median_rate(sample, batch, dev, repeats),
                device=device,
                n_test=len(test),
                n_train=len(train),
                dim=ev.dim,
                exact=ev.exact,
                recon_deg=_reconstruction(model, test),
                elbo_nll=_elbo_nll(model, test),
            )
        )
    return rows


def _reconstruction(model: PoseModel, test: torch.Tensor) -> float | None:
    """Mean geodesic reconstruction error in degrees, for models that reconstruct (VAEs)."""
    if not hasattr(model, "reconstruction_error"):
        return None
    p = next(model.parameters())
    return model.reconstruction_error(test.to(p.device, p.dtype)).mean().item()


@torch.no_grad()
def _elbo_nll(model: PoseModel, test: torch.Tensor, samples: int = 100) -> float | None:
    """-ELBO per pose (nats), an upper bound on NLL looser than the IWAE bound, for VAEs."""
    if not hasattr(model, "elbo"):
        return None
    p = next(model.parameters())
    return -torch.cat([model.elbo(b.to(p.device, p.dtype), samples) for b in test.split(256)]).mean().item()


_COLUMNS = [
    ("model", "model", "{}"),
    ("parameters", "params", "{:,}"),
    ("fit_seconds", "fit s", "{:.2f}"),
    ("test_nll", "test NLL (nats/pose)", "{:.2f}{}"),
    ("elbo_nll", "-ELBO (bound)", "{:.2f}"),
    ("bpd", "BPD", "{:.4f}"),
    ("nll_haar", "NLL vs Haar", "{:.2f}"),
    ("logprob_per_s", "log_prob poses/s", "{:,.0f}"),
    ("logprob_backward_per_s", "log_prob+grad poses/s", "{:,.0f}"),
    ("sample_per_s", "sample poses/s", "{:,.0f}"),
    ("recon_deg", "recon. error (deg)", "{:.2f}"),
    ("device", "device", "{}"),
    ("n_test", "N test", "{}"),
]


def format_table(rows: Sequence[BenchRow]) -> str:
    """A Markdown table of the rows."""
    head = "| " + " | ".join(title for _, title, _ in _COLUMNS) + " |"
    sep = "|" + "|".join("---" for _ in _COLUMNS) + "|"

    def cell(r: BenchRow, key: str, fmt: str) -> str:
        value = getattr(r, key)
        if value is None:
            return "-"
        if key == "test_nll":  # a VAE's NLL is the IWAE bound: an upper bound, marked
            return fmt.format(value, "" if r.exact else " (IWAE bound)")
        return fmt.format(value)

    body = ["| " + " | ".join(cell(r, key, fmt) for key, _, fmt in _COLUMNS) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def write_results(out_dir: str | Path, rows: Sequence[BenchRow], context: dict) -> tuple[Path, Path]:
    """Write ``bench.md`` and ``bench.json`` (rows, data description, machine) to ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md = out / "bench.md"
    js = out / "bench.json"
    lines = [
        "# probpose bench",
        "",
        f"Data: {context.get('data')}; joints {context.get('joints')!r} (D = {rows[0].dim if rows else '?'}); "
        f"train {rows[0].n_train if rows else '?'} / test {rows[0].n_test if rows else '?'} poses.",
        "NLL in nats per pose (Lebesgue on axis-angle); BPD = NLL / (D ln 2); NLL vs Haar: with respect to the "
        "normalised Haar measure on SO(3)^J (uniform rotations score 0). VAEs: the importance-weighted bound "
        "(K = 1000), an upper bound on their NLL, and the looser -ELBO bound; recon. error: mean geodesic "
        "angle of the test poses' reconstructions. Throughputs (VAE log_prob: the K = 1000 bound, timed on "
        "batch/64 poses): medians, batch "
        f"{context.get('batch')}. Fit: each model's registry settings, early stopping on validation, "
        f"at most {context.get('fit_seconds_budget', 0):g} s of training (0 = no limit).",
        "",
        format_table(rows),
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in context["machine"].items()),
        "",
    ]
    md.write_text("\n".join(lines))
    js.write_text(json.dumps({"rows": [asdict(r) for r in rows], **context}, indent=2))
    return md, js
