"""Speed of the batched per-joint flow against a per-joint loop running the same maths, and of its
two directions.

Both compute log p(x) = sum_j log f_j(u_j | c_j) with the same per-joint (grouped) flows, Gaussian
layer and contexts; the loop makes one flow call per joint, the batched prior one call for all
joints. Timed: a training step (log_prob forward + backward) and log_prob forward alone, medians,
same process, same data. Then the two directions of the bijection, batched over every pose: pose ->
noise (the inverse: every joint in one call) and noise -> pose (the push-forward: one grouped call
per tree level, each autoregressive layer inverted one coordinate per pass), the push-forward also
with the passes as they were before they shared work (every pass the whole network: ``reference``).

    python benchmarks/joint_flow_speed.py --out benchmarks/results/joint_flow_speed_cpu
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from probpose.bench import Column, machine_description, markdown_table, median_seconds, set_threads, write_results
from probpose.distributions.joint_flow import parent_features
from probpose.flows.grouped import GroupedAutoregressive
from probpose.models import JointFlowModel, JointFlowOptions
from probpose.skeleton import get_skeleton


def loop_log_prob(model: JointFlowModel, x: torch.Tensor) -> torch.Tensor:
    """The same density, one flow call per joint."""
    prior = model()
    order = list(prior.transform.order)
    levels = [k for k, level in enumerate(prior.transform.levels) for _ in level for _ in range(3)]
    earlier = torch.tensor([[a > b for b in levels] for a in levels])
    ctx = parent_features(x, model.skeleton.parents)[:, order]
    u = x[:, order].reshape(len(x), -1)
    total = torch.zeros(len(x), dtype=x.dtype, device=x.device)
    if model.gaussian is not None:
        z, log_det = model.gaussian.inverse(u)
        prediction = model.gaussian.mean + z @ (model.gaussian.scale_tril * earlier).T
        ctx = torch.cat([ctx, math.pi * torch.tanh(prediction.view(len(x), -1, 3) / math.pi)], -1)
        u, total = z, total + log_det
    u = u.view(len(x), -1, 3)
    for k, j in enumerate(order):
        total = total + model.flow.log_prob(u[:, k].T[None], torch.tensor([j]), ctx[:, k].T[None])[0]
    return total


def reference_passes(self: GroupedAutoregressive, z, index, context=None):
    """The push-forward's passes before they shared work: the whole network per pass."""
    x = torch.zeros_like(z)
    log_det = torch.zeros_like(z[:, 0])
    for i in self.order.tolist():
        params = self._params(x, index, context)[:, i : i + 1]
        xi, ldi = self._transform(z[:, i : i + 1], params, inverse=True)
        x = torch.cat([x[:, :i], xi, x[:, i + 1 :]], 1)
        log_det = log_det + ldi[:, 0]
    return x, log_det


def time_directions(model: JointFlowModel, x: torch.Tensor, repeats: int, dev: torch.device) -> dict[str, float]:
    """Median seconds of pose -> noise and noise -> pose (now, and with the reference passes)."""
    prior = model()
    (t,) = prior.transforms
    with torch.no_grad():
        z = t.inv(x)
        now = median_seconds(lambda: t(z), repeats, dev)
        inverse = median_seconds(lambda: t.inv(x), repeats, dev)
        shared = GroupedAutoregressive.forward
        GroupedAutoregressive.forward = reference_passes
        try:
            assert torch.allclose(t(z), x, atol=1e-4)
            before = median_seconds(lambda: t(z), repeats, dev)
        finally:
            GroupedAutoregressive.forward = shared
    return {"push_forward": now, "push_forward_reference": before, "inverse": inverse}


def time_model(model: JointFlowModel, x: torch.Tensor, repeats: int, dev: torch.device) -> dict[str, float]:
    """Median seconds of a training step and of a forward pass, batched and looped."""

    def step(f) -> None:
        model.zero_grad(set_to_none=True)
        (-f(x).mean()).backward()

    def fwd(f) -> None:
        with torch.no_grad():
            f(x)

    def loop(v: torch.Tensor) -> torch.Tensor:
        return loop_log_prob(model, v)

    return {
        "batched_step": median_seconds(lambda: step(model.log_prob), repeats, dev),
        "loop_step": median_seconds(lambda: step(loop), repeats, dev),
        "batched_forward": median_seconds(lambda: fwd(model.log_prob), repeats, dev),
        "loop_forward": median_seconds(lambda: fwd(loop), repeats, dev),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--joints", default="body+hands")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 256, 1000])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/joint_flow_speed_cpu"))
    args = ap.parse_args()
    threads = set_threads(args.threads)
    dev = torch.device(args.device)
    skel = get_skeleton("smplx").select(args.joints)
    rows = []
    for batch in args.batches:
        for transform in ("spline", "affine"):
            torch.manual_seed(0)
            model = JointFlowModel(skel, JointFlowOptions(transform=transform)).to(dev)
            g = torch.Generator().manual_seed(0)
            x = (0.3 * torch.randn(batch, skel.num_joints, 3, generator=g)).to(dev)
            model.initialize(x)
            with torch.no_grad():
                for p in model.flow.parameters():
                    p.add_(0.05 * torch.randn_like(p))
                assert torch.allclose(model.log_prob(x), loop_log_prob(model, x), rtol=1e-4, atol=1e-3)
            t = time_model(model, x, args.repeats, dev) | time_directions(model, x, args.repeats, dev)
            row = {
                "transform": transform,
                "joints": skel.num_joints,
                "batch": batch,
                **t,
                "step_speedup": t["loop_step"] / t["batched_step"],
                "forward_speedup": t["loop_forward"] / t["batched_forward"],
                "batched_step_poses_per_s": batch / t["batched_step"],
            }
            rows.append(row)
            ms = {k: v * 1e3 for k, v in t.items()}
            print(
                f"{transform}: training step batched {ms['batched_step']:.1f} ms vs loop {ms['loop_step']:.1f} ms "
                f"-> {row['step_speedup']:.1f}x; forward {row['forward_speedup']:.1f}x",
                flush=True,
            )
    columns = [
        Column("batch", "batch"),
        Column("transform", "transform"),
        Column("batched_step", "batched step ms", lambda r: f"{r['batched_step'] * 1e3:.1f}"),
        Column("loop_step", "loop step ms", lambda r: f"{r['loop_step'] * 1e3:.1f}"),
        Column("step_speedup", "step speed-up", "{:.1f}x"),
        Column("forward_speedup", "forward speed-up", "{:.1f}x"),
        Column("batched_step_poses_per_s", "poses/s (step)", "{:,.0f}"),
        Column("inverse", "pose -> noise ms", lambda r: f"{r['inverse'] * 1e3:.1f}"),
        Column("push_forward", "noise -> pose ms", lambda r: f"{r['push_forward'] * 1e3:.1f}"),
        Column(
            "push_forward_reference",
            "noise -> pose, passes not sharing (ms)",
            lambda r: f"{r['push_forward_reference'] * 1e3:.1f}",
        ),
    ]
    intro = (
        f"J = {skel.num_joints} (D = {3 * skel.num_joints}), joint_flow defaults (grouped autoregressive "
        f"layers, Gaussian layer), medians of {args.repeats}, {threads} thread(s)."
    )
    write_results(
        args.out,
        "joint_flow_speed",
        "Batched per-joint flow vs a per-joint loop (same maths)",
        intro,
        markdown_table(columns, rows),
        {"rows": rows, "threads": threads},
        machine_description(args.device),
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
