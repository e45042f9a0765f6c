"""Our affine coupling flow against the same architecture in zuko, nflows and Pyro's transforms.

Architecture everywhere: D = 153 (SMPL-X body + hands), K = 8 affine coupling blocks, each an MLP
with two hidden layers of 256 ReLU units predicting shift and log-scale for half of the
dimensions, alternating halves, standard-normal base; no ActNorm (the peers have none). Timed:
log_prob forward (no grad) and forward + backward, batch 512, medians of `--repeats`, all in one
process on the same data. The peers are an optional extra: pip install -e ".[bench]".

    python benchmarks/peers.py --out benchmarks/results/peers_cpu
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

from probpose.bench import Column, machine_description, markdown_table, median_seconds, set_threads, write_results
from probpose.models import GlobalFlowModel, GlobalFlowOptions
from probpose.skeleton import get_skeleton

D, K, H = 153, 8, 256


def ours():
    skel = get_skeleton("smplx").select("body+hands")
    m = GlobalFlowModel(
        skel, GlobalFlowOptions(K=K, hidden=H, layers=2, mixing="none", use_actnorm=False, gaussian_layer=False)
    )
    return m, lambda x: m.flow.log_prob(x)


def zuko_flow():
    import zuko

    f = zuko.flows.RealNVP(D, transforms=K, hidden_features=(H, H))
    return f, lambda x: f().log_prob(x)


def nflows_flow():
    from nflows.distributions.normal import StandardNormal
    from nflows.flows.base import Flow
    from nflows.transforms.base import CompositeTransform
    from nflows.transforms.coupling import AffineCouplingTransform

    class Net(nn.Module):
        def __init__(self, i: int, o: int) -> None:
            super().__init__()
            self.mlp = nn.Sequential(nn.Linear(i, H), nn.ReLU(), nn.Linear(H, H), nn.ReLU(), nn.Linear(H, o))

        def forward(self, x, context=None):
            return self.mlp(x)

    def net(i, o):
        return Net(i, o)

    layers = []
    for k in range(K):
        mask = torch.zeros(D)
        mask[k % 2 :: 2] = 1
        layers.append(AffineCouplingTransform(mask, net))
    f = Flow(CompositeTransform(layers), StandardNormal([D]))
    return f, lambda x: f.log_prob(x)


def pyro_flow():
    import pyro.distributions as dist
    from pyro.distributions.transforms import AffineCoupling, Permute
    from pyro.nn import DenseNN

    split = D // 2
    layers, modules = [], nn.ModuleList()
    swap = torch.cat([torch.arange(split, D), torch.arange(split)])
    for k in range(K):
        coupling = AffineCoupling(split, DenseNN(split, [H, H], param_dims=[D - split, D - split]))
        modules.append(coupling)
        layers.append(coupling)
        if k < K - 1:
            layers.append(Permute(swap))  # alternate which half is transformed
    base = dist.Normal(torch.zeros(D), torch.ones(D)).to_event(1)
    d = dist.TransformedDistribution(base, layers)
    return modules, lambda x: d.log_prob(x)


PEERS = {"probpose": ours, "zuko": zuko_flow, "nflows": nflows_flow, "pyro": pyro_flow}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/peers_cpu"))
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    threads = set_threads(args.threads)
    rows = []
    for name, make in PEERS.items():
        try:
            module, log_prob = make()
        except ImportError as e:
            print(f"{name}: not installed ({e}); pip install -e '.[bench]'")
            continue
        # distinct fresh data per call: Pyro transforms cache the last input
        xs = [torch.randn(args.batch, D) * 0.3 for _ in range(4)]
        it = iter(range(10**9))

        def fwd(log_prob=log_prob, xs=xs, it=it) -> None:
            with torch.no_grad():
                log_prob(xs[next(it) % 4].clone())

        def fwd_bwd(module=module, log_prob=log_prob, xs=xs, it=it) -> None:
            for p in module.parameters():
                p.grad = None
            (-log_prob(xs[next(it) % 4].clone()).mean()).backward()

        params = sum(p.numel() for p in module.parameters())
        t_f, t_b = median_seconds(fwd, args.repeats), median_seconds(fwd_bwd, args.repeats)
        rows.append(
            {
                "library": name,
                "parameters": params,
                "forward_ms": t_f * 1e3,
                "forward_backward_ms": t_b * 1e3,
                "forward_poses_per_s": args.batch / t_f,
                "forward_backward_poses_per_s": args.batch / t_b,
            }
        )
        print(f"{name:<9} params {params:>9,}  forward {t_f * 1e3:7.1f} ms  forward+backward {t_b * 1e3:7.1f} ms")
    fastest = min(r["forward_backward_ms"] for r in rows)
    for r in rows:
        r["forward_backward_vs_fastest"] = r["forward_backward_ms"] / fastest
    columns = [
        Column("library", "library"),
        Column("parameters", "params", "{:,}"),
        Column("forward_ms", "log_prob ms", "{:.1f}"),
        Column("forward_backward_ms", "log_prob+backward ms", "{:.1f}"),
        Column("forward_backward_poses_per_s", "poses/s (fwd+bwd)", "{:,.0f}"),
        Column("forward_backward_vs_fastest", "vs fastest", "{:.2f}x"),
    ]
    intro = (
        f"D = {D}, K = {K} blocks, MLP 2 x {H} ReLU, batch {args.batch}, medians of {args.repeats}, "
        f"{threads} thread(s)."
    )
    write_results(
        args.out,
        "peers",
        "Affine coupling flow: probpose vs peers (same architecture)",
        intro,
        markdown_table(columns, rows),
        {"rows": rows, "batch": args.batch, "threads": threads},
        machine_description("cpu"),
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
