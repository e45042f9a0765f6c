"""Speed of our rational-quadratic spline against normflows' and nflows', side by side in one run.

Two settings, the same maths in each row (the spline functions agree to 1e-6 in float64,
tests/test_spline.py), only the spline implementation differs:

- **coupling, D = 153** (a global flow over SMPL-X body + hands): K = 4 spline couplings with the
  same MLP conditioner (2 x 64 ReLU, 8 bins, tail bound 5), batch 512. Rows: ours
  (:class:`probpose.flows.RQSCoupling`), normflows' ``PiecewiseRationalQuadraticCoupling`` and
  nflows' ``PiecewiseRationalQuadraticCouplingTransform`` with that conditioner, and normflows'
  ``CoupledRationalQuadraticSpline`` as shipped (a 2-block ResidualNet conditioner and an extra
  spline on the passive half), which probpose used before.
- **per-joint flow, D = 3 x 51 joints**: probpose's ``joint_flow`` (K = 2 autoregressive splines
  per joint, grouped weights) with its spline function replaced by normflows' or nflows' (with
  the parameter transposition those need), batch 512.

Timed: a training step (log_prob forward + backward, median) and log_prob alone; poses/s.

    pip install -e ".[bench]"; python benchmarks/spline_speed.py --out benchmarks/results/spline_speed_cpu
"""

from __future__ import annotations

import argparse
from pathlib import Path
from unittest import mock

import torch
from torch import nn

import probpose.flows.grouped as grouped
from probpose.bench import Column, machine_description, markdown_table, median_seconds, set_threads, write_results
from probpose.flows import MLP, FlowStack, RQSCoupling
from probpose.models import build_model
from probpose.skeleton import SMPLX

D, K, HIDDEN, BINS, BOUND = 153, 4, 64, 8, 5.0


class _Conditioner(nn.Module):
    """Our MLP with the (inputs, context) signature normflows' and nflows' couplings call."""

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.mlp = MLP(d_in, d_out, HIDDEN, 2, zero_last=False)
        self.hidden_features = HIDDEN  # read by normflows and nflows (they scale the bin logits by it)

    def forward(self, inputs, context=None):
        return self.mlp(inputs)


def _mask(k: int) -> torch.Tensor:
    m = torch.zeros(D, dtype=torch.bool)
    m[(k % 2) :: 2] = True
    return m


def ours():
    flow = FlowStack(D, [RQSCoupling(_mask(k), 0, HIDDEN, 2, BINS, BOUND) for k in range(K)])
    return flow, lambda x: flow.log_prob(x)


def normflows_same():
    from normflows.flows.neural_spline.coupling import PiecewiseRationalQuadraticCoupling

    layers = nn.ModuleList(
        PiecewiseRationalQuadraticCoupling(
            (~_mask(k)).long(), _Conditioner, num_bins=BINS, tails="linear", tail_bound=BOUND
        )
        for k in range(K)
    )

    def log_prob(x):
        total = 0
        for layer in layers:
            x, ld = layer(x)
            total = total + ld
        return total - 0.5 * (x * x).sum(-1)

    return layers, log_prob


def normflows_shipped():
    import normflows as nf

    layers = nn.ModuleList(
        nf.flows.CoupledRationalQuadraticSpline(D, 2, HIDDEN, num_bins=BINS, tail_bound=BOUND, reverse_mask=bool(k % 2))
        for k in range(K)
    )

    def log_prob(x):
        total = 0
        for layer in reversed(layers):
            x, ld = layer.inverse(x)
            total = total + ld
        return total - 0.5 * (x * x).sum(-1)

    return layers, log_prob


def nflows_same():
    from nflows.transforms.base import CompositeTransform
    from nflows.transforms.coupling import PiecewiseRationalQuadraticCouplingTransform

    t = CompositeTransform(
        [
            PiecewiseRationalQuadraticCouplingTransform(
                (~_mask(k)).long(), _Conditioner, num_bins=BINS, tails="linear", tail_bound=BOUND
            )
            for k in range(K)
        ]
    )

    def log_prob(x):
        z, ld = t(x)
        return ld - 0.5 * (z * z).sum(-1)

    return t, log_prob


COUPLINGS = {
    "probpose": ours,
    "normflows (same conditioner)": normflows_same,
    "nflows (same conditioner)": nflows_same,
    "normflows CoupledRationalQuadraticSpline (as shipped)": normflows_shipped,
}


def _foreign_spline(kind: str):
    """A stand-in for probpose's packed spline that calls normflows' or nflows' implementation."""
    if kind == "normflows":
        from normflows.utils.splines import unconstrained_rational_quadratic_spline as fn
    else:
        from nflows.transforms.splines.rational_quadratic import unconstrained_rational_quadratic_spline as fn

    def packed(x, params, inverse=False, tail_bound=3.0, param_dim=-1, **_):
        p = params.movedim(param_dim, -1)
        k = (p.shape[-1] + 1) // 3
        w, h, d = p.split([k, k, k - 1], -1)
        return fn(x, w, h, d, inverse=inverse, tails="linear", tail_bound=tail_bound)

    return packed


def time_pair(module: nn.Module, log_prob, x: torch.Tensor, repeats: int) -> tuple[float, float]:
    def step() -> None:
        module.zero_grad(set_to_none=True)
        (-log_prob(x).mean()).backward()

    def forward() -> None:
        with torch.no_grad():
            log_prob(x)

    return median_seconds(step, repeats), median_seconds(forward, repeats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/spline_speed_cpu"))
    args = ap.parse_args()
    threads = set_threads(args.threads)
    torch.manual_seed(0)
    rows = []
    x = 0.8 * torch.randn(args.batch, D)
    for name, make in COUPLINGS.items():
        try:
            module, log_prob = make()
        except ImportError as e:
            print(f"{name}: not installed ({e}); pip install -e '.[bench]'")
            continue
        with torch.no_grad():  # random, non-identity splines: the same work as a trained flow's
            for p in module.parameters():
                p.add_(0.05 * torch.randn_like(p))
        step, fwd = time_pair(module, log_prob, x, args.repeats)
        rows.append(
            {
                "setting": f"coupling, D = {D}",
                "implementation": name,
                "step_ms": step * 1e3,
                "forward_ms": fwd * 1e3,
                "step_poses_per_s": args.batch / step,
                "forward_poses_per_s": args.batch / fwd,
            }
        )
        print(f"{name:<55} step {step * 1e3:7.1f} ms  log_prob {fwd * 1e3:7.1f} ms", flush=True)
    skel = SMPLX.select("body+hands")
    poses = 0.3 * torch.randn(args.batch, skel.num_joints, 3)
    model = build_model("joint_flow", skel)
    model.initialize(poses)
    with torch.no_grad():
        for p in model.flow.parameters():
            p.add_(0.05 * torch.randn_like(p))
    for name in ("probpose", "normflows", "nflows"):
        try:
            patch = (
                mock.patch.object(grouped, "rq_spline_packed", _foreign_spline(name))
                if name != "probpose"
                else mock.patch.object(grouped, "rq_spline_packed", grouped.rq_spline_packed)
            )
        except ImportError as e:
            print(f"{name}: not installed ({e})")
            continue
        with patch:
            step, fwd = time_pair(model, model.log_prob, poses, args.repeats)
        rows.append(
            {
                "setting": f"joint flow, D = 3 x {skel.num_joints}",
                "implementation": f"{name} spline",
                "step_ms": step * 1e3,
                "forward_ms": fwd * 1e3,
                "step_poses_per_s": args.batch / step,
                "forward_poses_per_s": args.batch / fwd,
            }
        )
        print(f"joint flow, {name + ' spline':<43} step {step * 1e3:7.1f} ms  log_prob {fwd * 1e3:7.1f} ms", flush=True)
    for r in rows:
        ref = next(q for q in rows if q["setting"] == r["setting"] and q["implementation"].startswith("probpose"))
        r["step_vs_probpose"] = r["step_ms"] / ref["step_ms"]
    columns = [
        Column("setting", "setting"),
        Column("implementation", "spline"),
        Column("step_ms", "training step ms", "{:.1f}"),
        Column("forward_ms", "log_prob ms", "{:.1f}"),
        Column("step_poses_per_s", "poses/s (step)", "{:,.0f}"),
        Column("forward_poses_per_s", "poses/s (log_prob)", "{:,.0f}"),
        Column("step_vs_probpose", "step time vs probpose", "{:.2f}x"),
    ]
    intro = (
        f"Batch {args.batch}, medians of {args.repeats}, {threads} thread(s), float32. Couplings: K = {K}, "
        f"MLP conditioner 2 x {HIDDEN} ReLU, {BINS} bins, tail bound {BOUND:g}. Joint flow: probpose's "
        "defaults."
    )
    write_results(
        args.out,
        "spline_speed",
        "Rational-quadratic spline: probpose vs normflows vs nflows",
        intro,
        markdown_table(columns, rows),
        {"rows": rows, "batch": args.batch, "threads": threads},
        machine_description("cpu"),
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
