"""Training throughput in one process and in two (torch.distributed, gloo) on the CPU.

The same SVI steps on the bundled CMU training split (held-out trials out) with the same global
batch: one process with 1 torch thread, one process with 2 threads, two processes with 1 thread
each (each computing half of every batch, gradients averaged by one all-reduce per step). Each
configuration runs the trainer for ``--steps`` steps without validation, three times; the table
holds the median steps/s and poses/s (global batch x steps/s) and the two-process speed-up over
one process with one thread. On a 2-core machine two processes can at best double a 1-thread
process, and compete with the all-reduce for the same two cores.

    python benchmarks/ddp_cpu.py --out benchmarks/results/ddp_cpu
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from probpose.bench import Column, machine_description, markdown_table, write_results

MODELS = {"global_flow": {}, "joint_flow": {}, "vae": {}}


def _worker(job: dict) -> None:
    """One process: train ``job['steps']`` steps, write the wall time (process 0)."""
    from probpose.models import build_model
    from probpose.parallel import from_environment, shutdown
    from probpose.skeleton import get_skeleton
    from probpose.training import Trainer, TrainingConfig

    torch.set_num_threads(job["threads"])
    group = from_environment()
    data = torch.load(job["data"], weights_only=True)
    skeleton = get_skeleton("smplx").select(job["joints"])
    torch.manual_seed(0)
    model = build_model(job["model"], skeleton, MODELS[job["model"]])
    config = TrainingConfig(max_steps=job["steps"], batch_size=job["batch"], eval_every=10**6, patience=0)
    trainer = Trainer(model, config, group=group)
    group.barrier()
    start = time.perf_counter()
    trainer.fit(data)
    group.barrier()
    seconds = time.perf_counter() - start
    shutdown()
    if group.is_main:
        Path(job["result"]).write_text(json.dumps({"seconds": seconds}))


def _run(job: dict, processes: int) -> float:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in range(processes):
        env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
        env["OMP_NUM_THREADS"] = str(job["threads"])
        if processes > 1:
            env.update(RANK=str(rank), WORLD_SIZE=str(processes), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        procs.append(subprocess.Popen([sys.executable, __file__, "--worker", json.dumps(job)], env=env))
    for p in procs:
        if p.wait(timeout=900) != 0:
            raise SystemExit(f"a worker failed: {job}")
    return json.loads(Path(job["result"]).read_text())["seconds"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batches", type=int, nargs="+", default=[256, 2048])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/ddp_cpu"))
    args = ap.parse_args()
    if args.worker:
        _worker(json.loads(args.worker))
        return
    from probpose.data import prepare_data

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = prepare_data(bundled="cmu", workdir=tmp)
        torch.save(data.train, Path(tmp) / "train.pt")
        for model in MODELS:
            for batch in args.batches:
                base = None
                for processes, threads in ((1, 1), (1, 2), (2, 1)):
                    job = {
                        "model": model,
                        "batch": batch,
                        "steps": args.steps,
                        "threads": threads,
                        "data": str(Path(tmp) / "train.pt"),
                        "joints": data.joints,
                        "result": str(Path(tmp) / "result.json"),
                    }
                    times = [_run(job, processes) for _ in range(args.repeats)]
                    sps = args.steps / statistics.median(times)
                    base = base or sps
                    row = {
                        "model": model,
                        "batch": batch,
                        "processes": processes,
                        "threads": threads,
                        "steps_per_s": sps,
                        "poses_per_s": sps * batch,
                        "speedup": sps / base,
                        "seconds": times,
                    }
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    cols = [
        Column("model", "model"), Column("batch", "global batch"), Column("processes", "processes"),
        Column("threads", "threads each"), Column("steps_per_s", "steps/s", "{:.1f}"),
        Column("poses_per_s", "poses/s", "{:,.0f}"), Column("speedup", "vs 1 process x 1 thread", "{:.2f}x"),
    ]  # fmt: skip
    intro = (
        f"Median of {args.repeats} runs of {args.steps} SVI steps on the bundled CMU training split "
        f"({len(data.train):,} poses, D = {3 * data.train.shape[1]}), default model options, Adam; the timer "
        "spans the trainer's fit (initialisation and all steps, no validation) between two barriers."
    )
    write_results(
        args.out,
        "ddp_cpu",
        "One process vs two (gloo) on the CPU",
        intro,
        markdown_table(cols, rows),
        {"rows": rows, "steps": args.steps},
        machine_description("cpu"),
    )


if __name__ == "__main__":
    main()
