"""One process of a distributed (or single-process) fit, for tests/test_distributed.py.

Run as ``python tests/distributed_worker.py JOB_JSON``, with ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``/
``MASTER_PORT`` set for a distributed run (gloo on the CPU) and unset for the one-process
reference. The job says which model to fit, on what, and where to write this process's final
state dict (``OUT/rank<R>.pt``). The training data is made here from a fixed seed, so every
process (and the reference) holds the same poses.
"""

import json
import os
import sys
from pathlib import Path

import torch

from probpose.data import StoreSplit
from probpose.errors import ProbposeError
from probpose.models import build_model
from probpose.parallel import from_environment, shutdown
from probpose.skeleton import SMPLX
from probpose.training import Trainer, TrainingConfig

SKEL = SMPLX.select(["left_hip", "left_knee", "left_ankle"])


def poses(n: int, seed: int) -> torch.Tensor:
    """Poses from a known Gaussian: the same tensor in every process."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 3, generator=g) * torch.tensor([0.2, 0.3, 0.1]) + 0.1


def main() -> int:
    job = json.loads(sys.argv[1])
    torch.set_num_threads(1)
    group = from_environment(timeout_s=job.get("timeout", 60))
    torch.manual_seed(0)  # the same initial weights as the reference (process 0's are broadcast anyway)
    model = build_model(job["model"], SKEL, job.get("options", {}))
    config = TrainingConfig(
        fit=job.get("fit", "svi"),
        max_steps=job.get("steps", 20),
        batch_size=job.get("batch", 64),
        eval_every=job.get("eval_every", 10),
        patience=0,
        dtype=job.get("dtype", "float32"),
        lr=1e-2,
        clip_norm=job.get("clip_norm", 10.0),
    )
    train = StoreSplit(job["store"], "train") if "store" in job else poses(job.get("n", 600), 0)
    val = poses(200, 1)
    run_dir = job.get("run_dir")
    try:
        every = job.get("every", 500)
        trainer = Trainer(model, config, run_dir, tensorboard=False, checkpoint_every=every, group=group)
        result = trainer.fit(train, val)
    except ProbposeError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 1
    finally:
        shutdown()
    out = Path(job["out"])
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    torch.save(
        {"state": state, "steps": result.steps, "val_nll": result.val.nll if result.val else None},
        out / f"rank{group.rank}.pt",
    )
    return 0


if __name__ == "__main__":
    code = main()
    # The outputs are written and the process group destroyed. Gloo's worker threads can still
    # abort the interpreter's finalization now and then ("terminate called without an active
    # exception", SIGABRT; the cause discussed in pytorch/pytorch#179291; measured here in about 1 of 4 runs of
    # the 2-process tests under a loaded suite, on the code before this change too), which would
    # fail a run whose results are complete. Leave without finalization, flushing first.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
