"""Several processes fitting one model (torch.distributed, gloo on the CPU): the same steps as one
process, closed forms that add up exactly, a killed process, disagreeing processes, shards.

Every multi-process case starts real processes (``tests/distributed_worker.py`` or torchrun) with a
timeout, so a hang fails the test instead of blocking the suite."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from probpose.data import StoreSplit
from probpose.data.checks import column_std
from probpose.data.store import write_store
from probpose.errors import ConfigError
from probpose.models import build_model
from probpose.parallel import SINGLE, Group
from probpose.skeleton import SMPLX
from probpose.training import Trainer, TrainingConfig

WORKER = Path(__file__).with_name("distributed_worker.py")
SKEL = SMPLX.select(["left_hip", "left_knee", "left_ankle"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(rank: int | None, world: int, port: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).parents[1]))
    if rank is not None:
        env.update(
            RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
        )
    return env


def _start(job: dict, world: int) -> list[subprocess.Popen]:
    """``world`` worker processes (0: one process without a group)."""
    port = _free_port()
    ranks = [None] if world == 0 else list(range(world))
    return [
        subprocess.Popen(
            [sys.executable, str(WORKER), json.dumps(job)],
            env=_env(r, world, port),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in ranks
    ]


def _run(job: dict, world: int, timeout: float = 120) -> list[dict]:
    procs = _start(job, world)
    errors = []
    for p in procs:
        try:
            _, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail(f"a worker hung: {job}")
        if p.returncode != 0:
            errors.append(err)
    assert not errors, "\n".join(errors)
    out = Path(job["out"])
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(max(world, 1))]


def _assert_states_close(a: dict, b: dict, rtol: float, atol: float) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if a[k].is_floating_point():
            torch.testing.assert_close(a[k], b[k], rtol=rtol, atol=atol, msg=lambda m, k=k: f"{k}: {m}")
        else:
            assert torch.equal(a[k], b[k]), k


# ---------------------------------------------------------------------- SVI
@pytest.mark.parametrize(
    "model,options",
    [("global_flow", {"K": 2, "hidden": 16}), ("joint_flow", {"K": 1, "hidden": 8}), ("gaussian_full", {})],
)
def test_two_processes_take_the_same_steps_as_one(tmp_path, model, options):
    """In-memory data: both processes draw the global batch of 64 (seed 0) and take 32 each; the
    averaged gradient is the one-process gradient, so after 20 Adam steps the weights agree with
    one process's to float32 rounding (float64 here: to 1e-9)."""
    job = {"model": model, "options": options, "steps": 20, "batch": 64, "dtype": "float64"}
    one = _run({**job, "out": str(tmp_path / "one")}, 0)[0]
    two = _run({**job, "out": str(tmp_path / "two")}, 2)
    _assert_states_close(two[0]["state"], two[1]["state"], rtol=0, atol=0)  # identical in both processes
    _assert_states_close(two[0]["state"], one["state"], rtol=1e-9, atol=1e-9)
    assert two[0]["val_nll"] == two[1]["val_nll"] and abs(two[0]["val_nll"] - one["val_nll"]) < 1e-8
    assert two[0]["steps"] == one["steps"] == 20
    # and training moved the weights: the comparison is not between two untouched initialisations
    torch.manual_seed(0)
    start = build_model(model, SKEL, options).double().state_dict()
    assert any(not torch.allclose(start[k], one["state"][k]) for k in start if start[k].is_floating_point())


def test_a_vae_trains_in_two_processes_with_its_own_noise_each(tmp_path):
    """A VAE's ELBO draws latents: each process its own (seed + rank), so the run is not the
    one-process run, but both processes hold the same weights after every step."""
    job = {"model": "vae", "options": {"z_dim": 4, "hidden": 16}, "steps": 15, "batch": 32}
    two = _run({**job, "out": str(tmp_path / "two")}, 2)
    _assert_states_close(two[0]["state"], two[1]["state"], rtol=0, atol=0)


# ---------------------------------------------------------------------- closed forms
def _store(tmp_path: Path, n: int = 5003) -> Path:
    """A store of ``n`` poses from a known two-component mixture (synthetic: equality tests only)."""
    from probpose.data.poseset import PoseSet, SequenceInfo
    from probpose.data.splits import Split

    g = np.random.default_rng(0)
    mix = np.where(g.random((n, 1, 1)) < 0.3, -0.4, 0.3)
    x = (mix + g.normal(size=(n, 3, 3)) * [0.2, 0.3, 0.1]).astype(np.float32)
    ps = PoseSet(SKEL, x, np.ones(3, bool), np.zeros(n, np.int64), np.arange(n), [SequenceInfo("s", "s", None)])
    idx = {"train": np.arange(n - 200), "val": np.arange(n - 200, n - 100), "test": np.arange(n - 100, n)}
    return write_store(tmp_path / "data.h5", ps, Split(idx, {"rule": "test"}))


@pytest.mark.parametrize("model", ["gaussian", "gaussian_full", "gmm"])
def test_closed_form_fits_across_two_processes_equal_one_to_1e10(tmp_path, model):
    """Each process reads its own shard of a streamed store (rows [0, N/2) and [N/2, N)); the
    sufficient statistics are added across processes; float64 weights equal one process's to 1e-10."""
    store = _store(tmp_path)
    options = {"components": 3, "max_iter": 30} if model == "gmm" else {}
    job = {"model": model, "options": options, "fit": "closed_form", "dtype": "float64", "store": str(store)}
    one = _run({**job, "out": str(tmp_path / "one")}, 0)[0]
    two = _run({**job, "out": str(tmp_path / "two")}, 2)
    for r in range(2):
        _assert_states_close(two[r]["state"], one["state"], rtol=0, atol=1e-10)


# ---------------------------------------------------------------------- failures
def test_a_killed_process_stops_the_others_with_a_clear_error_and_keeps_the_checkpoint(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    job = {
        "model": "global_flow",
        "options": {"K": 2, "hidden": 16},
        "steps": 10**6,
        "batch": 64,
        "eval_every": 5,
        "every": 5,
        "run_dir": str(run),
        "out": str(tmp_path / "out"),
        "timeout": 30,
    }
    procs = _start(job, 2)
    ck = run / "checkpoint.pt"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:  # wait until training has gone past a few checkpoints
        if ck.is_file() and torch.load(ck, weights_only=True)["step"] >= 10:
            break
        time.sleep(0.2)
    else:
        for p in procs:
            p.kill()
        pytest.fail("no checkpoint after step 10 within 90 s")
    procs[1].send_signal(signal.SIGKILL)
    try:
        _, err = procs[0].communicate(timeout=60)
    except subprocess.TimeoutExpired:
        procs[0].kill()
        pytest.fail("process 0 did not stop within 60 s of process 1's death")
    procs[1].wait()
    assert procs[0].returncode == 1
    assert "process 0 of 2" in err and "another process stopped" in err and f"last good checkpoint is {ck}" in err
    assert "Traceback" not in err
    kept = torch.load(ck, weights_only=True)  # the file is whole
    assert kept["step"] >= 10 and set(kept["best_model"]) == set(kept["model"])


def _train_cli(tmp_path: Path, overrides: list[list[str]], timeout: float = 240) -> list[subprocess.CompletedProcess]:
    """``probpose train`` in len(overrides) processes started by hand (as torchrun would)."""
    port, world = _free_port(), len(overrides)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "probpose",
                "train",
                "--config",
                "gaussian_prior",
                *(a for o in extra for a in ("--override", o)),
            ],
            cwd=tmp_path,
            env={**_env(r, world, port), "PROBPOSE_DIST_TIMEOUT": "60"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r, extra in enumerate(overrides)
    ]
    out = []
    for p in procs:
        o, e = p.communicate(timeout=timeout)
        out.append(subprocess.CompletedProcess(p.args, p.returncode, o, e))
    return out


def test_processes_started_with_different_configs_refuse_to_train(tmp_path):
    common = ["training.max_steps=5", "output.tensorboard=false"]
    results = _train_cli(tmp_path, [common + ["training.lr=1e-2"], common + ["training.lr=2e-2"]])
    for r, res in enumerate(results):
        assert res.returncode == 1, res.stderr
        assert f"process {r} of 2: the processes disagree on the config" in res.stderr
        assert "Traceback" not in res.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_torchrun_trains_once_and_writes_one_run(tmp_path):
    """The README's command, ``torchrun --standalone --nproc_per_node 2 -m probpose train --config
    joint_flow`` (5 steps): one run folder, one report, metrics say 2 processes."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "probpose",
        "train",
        "--config",
        "joint_flow",
        "--override",
        "training.max_steps=5",
        "--override",
        "output.tensorboard=false",
    ]
    res = subprocess.run(cmd, cwd=tmp_path, env=_env(None, 1, 0), capture_output=True, text=True, timeout=400)
    assert res.returncode == 0, res.stderr[-8000:]
    assert res.stdout.count("wrote runs/joint_flow") == 1
    assert "trained by 2 processes (global batch 256)" in res.stdout
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["joint_flow"]
    metrics = json.loads((tmp_path / "runs" / "joint_flow" / "metrics.json").read_text())
    assert metrics["processes"] == 2 and metrics["steps"] == 5


# ---------------------------------------------------------------------- in one process
def test_shards_cover_the_store_in_order_and_batches_stay_in_their_shard(tmp_path):
    store = _store(tmp_path, n=1003)
    whole = StoreSplit(store, "train")
    shards = [whole.shard(r, 3) for r in range(3)]
    assert [len(s) for s in shards] == [267, 268, 268] and sum(len(s) for s in shards) == len(whole)
    torch.testing.assert_close(torch.cat([s.load() for s in shards]), whole.load(), rtol=0, atol=0)
    rows = {tuple(r.flatten().tolist()) for r in shards[1].load()}
    batches = shards[1].batches(50, seed=3, block_rows=64, buffer_rows=256)
    seen = torch.cat([next(batches) for _ in range(12)])  # more than one pass over the shard
    assert all(tuple(r.flatten().tolist()) in rows for r in seen)
    assert len(shards[1].sample(10)) == 10


def test_column_std_of_shards_is_the_std_of_the_whole():
    x = torch.randn(101, 3, 3, dtype=torch.float64) * 3 + 100
    n, std = column_std([x])
    torch.testing.assert_close(std, x.std(0), rtol=1e-12, atol=0)
    assert n == 101


def test_the_batch_must_split_evenly_over_the_processes():
    model = build_model("gaussian", SKEL)
    with pytest.raises(ConfigError, match="100 poses cannot be shared by 3 processes"):
        Trainer(model, TrainingConfig(batch_size=100), group=Group(0, 3))
    assert SINGLE.shard(10) == slice(0, 10) and Group(1, 3).shard(10) == slice(3, 6)
