"""The one trainer for every model (docs/architecture.md, "Training").

Stochastic variational inference: the loss is Pyro's ``Trace_ELBO`` of the model's
``model``/``guide`` pair, negated and divided by the batch size (nats per pose), minimised by a
torch optimiser over the module's parameters -- Pyro's custom-objective form of SVI -- inside a
Pyro parameter store scoped to the fit (nothing stays registered afterwards). For a likelihood
model the guide is empty and the loss is the NLL. Models with a closed form can be fitted exactly
instead (``training.fit: closed_form``).

Around that: Adam or Pyro's ClippedAdam, step/cosine/plateau schedules, gradient clipping, early
stopping on validation NLL (the best weights are restored), TensorBoard scalars and hparams,
progress (a bar on a terminal, periodic lines in a log), resume. Checkpoints never lose the best
weights: ``checkpoint.pt`` is
written atomically before the first step, whenever validation improves, every
``checkpoint_every`` steps and at the end, and always holds the best weights so far
(``best_model``) beside the resumable state. A non-finite loss or validation NLL stops training
with a message naming that file.

The inner loop makes no host-device synchronisation per step: losses stay on the device and are
read (and checked for NaN/inf) once per validation.

Several processes (``torchrun``; a :class:`~probpose.parallel.Group`) fit one model together as
DistributedDataParallel would: every process starts from process 0's weights, computes the loss
on its part of each global batch (``batch_size / world_size`` poses), and the gradients (with the
loss and the time-budget flag) are averaged in one all-reduce per step, so every process takes the
same optimiser step. In-memory data: every process draws the same global batch indices as one
process would and takes its slice of them (the same data order as one process). A streamed store:
each process reads, shuffles and batches its own contiguous shard. Process 0 validates (the
others receive its result, so early stopping agrees), writes checkpoints and TensorBoard events.
Closed-form fits add their sufficient statistics across the processes.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyro
import torch
from pyro.infer import Trace_ELBO
from pyro.optim.clipped_adam import ClippedAdam
from torch import Tensor

from probpose.data import StoreSplit
from probpose.data.checks import check_not_constant
from probpose.errors import ConfigError, DistributedError, TrainingError
from probpose.evaluation.metrics import Evaluation, EvaluationError, evaluate
from probpose.files import atomic_path
from probpose.models import PoseModel, model_payload, read_checkpoint
from probpose.models.chunks import pose_chunks
from probpose.options import check_device, from_dict
from probpose.parallel import SINGLE, Group
from probpose.progress import progress
from probpose.training.config import TrainingConfig, flatten_dict

__all__ = ["TrainingError", "TrainResult", "Trainer", "save_checkpoint"]

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a fit did: ``steps`` taken, ``best_step``, validation metrics of the kept weights,
    wall-clock ``seconds``, why it stopped, and the checkpoint written (if any)."""

    steps: int
    best_step: int
    val: Evaluation | None
    seconds: float
    stopped: str
    checkpoint: Path | None = None
    history: list[dict] = field(default_factory=list)


def save_checkpoint(path: str | Path, payload: dict) -> Path:
    """``torch.save`` to a temporary file in the same folder, then rename (never a half file)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


_DTYPES = {"float32": torch.float32, "float64": torch.float64}


class Trainer:
    """Fits any :class:`~probpose.models.PoseModel`.

    Args:
        model: the model (moved to ``config.device`` / ``config.dtype``).
        config: :class:`TrainingConfig` (checked: every setting in its range).
        run_dir: where ``checkpoint.pt`` and TensorBoard events go (``None``: nothing is written).
        hparams: the whole experiment config as a dict, stored in checkpoints and logged as
            TensorBoard hparams (flattened to dotted keys).
        tensorboard: write TensorBoard events (needs ``run_dir``).
        checkpoint_every: steps between resumable checkpoints (besides the best-weight ones).
        group: the processes fitting this model together (see the module docstring); the batch
            size must be a multiple of their number.
    """

    def __init__(
        self,
        model: PoseModel,
        config: TrainingConfig,
        run_dir: str | Path | None = None,
        hparams: dict | None = None,
        tensorboard: bool = True,
        checkpoint_every: int = 500,
        group: Group = SINGLE,
    ) -> None:
        self.config = from_dict(TrainingConfig, dataclasses.asdict(config), "training.")
        self.group = group
        if self.config.batch_size % group.world_size:
            raise ConfigError(
                f"training.batch_size: {self.config.batch_size} poses cannot be shared by {group.world_size} "
                "processes; use a multiple of the number of processes"
            )
        if not (isinstance(checkpoint_every, int) and checkpoint_every >= 1):
            raise ConfigError(f"output.checkpoint_every: must be a positive integer, got {checkpoint_every!r}")
        self.device = torch.device(check_device(config.device, "training.device"))
        self.dtype = _DTYPES[config.dtype]
        self.model = model.to(self.device, self.dtype)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.hparams = hparams or {"training": dataclasses.asdict(self.config)}
        self.tensorboard = tensorboard and self.run_dir is not None and group.is_main
        self.checkpoint_every = checkpoint_every
        if config.fit == "closed_form" and not model.has_closed_form:
            raise TrainingError(f"{type(model).__name__} has no closed-form fit; use training.fit=svi")
        self.optimizer = self._make_optimizer()
        self.scheduler = self._make_scheduler()
        self.elbo = Trace_ELBO()
        self.step = 0

    @property
    def checkpoint_path(self) -> Path | None:
        return self.run_dir / "checkpoint.pt" if self.run_dir is not None else None

    # ------------------------------------------------------------------ setup
    def _make_optimizer(self) -> torch.optim.Optimizer:
        c = self.config
        params = [p for p in self.model.parameters() if p.requires_grad]
        if not params:
            return torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=c.lr)  # nothing to train
        if c.optimizer == "clipped_adam":
            clip = c.clip_norm if c.clip_norm is not None else math.inf
            return ClippedAdam(params, lr=c.lr, weight_decay=c.weight_decay, clip_norm=clip)
        return torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay)

    def _make_scheduler(self):
        c = self.config
        if c.schedule == "step":
            return torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=c.step_size, gamma=c.gamma)
        if c.schedule == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=max(c.max_steps, 1))
        if c.schedule == "plateau":
            return torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer, factor=c.gamma, patience=c.plateau_patience
            )
        return None

    def _payload(self, best_state: dict, best_step: int, best_nll: float) -> dict:
        return {
            **model_payload(self.model),
            "best_model": best_state,
            "optimiser": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else {},
            "step": self.step,
            "best_step": best_step,
            "best_val_nll": best_nll,
            "config": self.hparams,
        }

    def _save(self, best_state: dict, best_step: int, best_nll: float) -> Path | None:
        if self.checkpoint_path is None:
            return None
        if not self.group.is_main:
            return self.checkpoint_path
        return save_checkpoint(self.checkpoint_path, self._payload(best_state, best_step, best_nll))

    def _stop_message(self, what: str, best_step: int) -> str:
        where = (
            f"; the best weights so far (step {best_step}) are in {self.checkpoint_path}"
            if self.checkpoint_path is not None and self.checkpoint_path.is_file()
            else ""
        )
        return f"{what}: stopping. Lower training.lr, set training.clip_norm, or check the data{where}"

    # ------------------------------------------------------------------ training
    def loss(self, batch: Tensor) -> Tensor:
        """Negative ELBO per pose (nats) of a batch ``(B, J, 3)``."""
        return self.elbo.differentiable_loss(self.model.model, self.model.guide, batch) / batch.shape[0]

    def fit(
        self, train: Tensor | StoreSplit, val: Tensor | StoreSplit | None = None, resume: str | Path | None = None
    ) -> TrainResult:
        """Fit on training poses ``(N, J, 3)`` -- a tensor, or a :class:`~probpose.data.StoreSplit`
        streamed from disk; validate (and stop early) on ``val`` (at most ``val_poses`` of them).

        Refuses training data with a (nearly) constant modelled dimension, naming the joint.
        ``resume``: a checkpoint written by this trainer to continue from."""
        c = self.config
        names = self.model.skeleton.joint_names
        shape = tuple(train.shape)
        if len(shape) != 3 or shape[1:] != (self.model.num_joints, 3):
            raise TrainingError(f"expected training poses (N, {self.model.num_joints}, 3), got {shape}")
        modelled = list(self.model.modelled)
        g = self.group
        if g.distributed and shape[0] < g.world_size:
            raise TrainingError(f"{shape[0]} training poses cannot be shared by {g.world_size} processes")
        own = _shard(train, g)  # this process's rows (all of them in one process)
        check_not_constant(_columns(own, modelled), [names[j] for j in modelled], group=g)
        val = _subset(val, c.val_poses) if g.is_main else None  # process 0 validates
        val = val.to(self.device, self.dtype) if val is not None and len(val) else None
        has_val = bool(g.total(float(val is not None)) > 0)
        start = time.perf_counter()
        with pyro.get_param_store().scope():
            if c.fit == "closed_form":
                self.model.fit_closed_form(self._chunks(own), g, val_poses=val)
                ev = self._validate(val, has_val, final=True)
                seconds = time.perf_counter() - start
                history = [] if ev is None else [{"step": 0, "seconds": seconds, "val_nll": ev.nll, "val_bpd": ev.bpd}]
                result = TrainResult(0, 0, ev, seconds, "closed form", history=history)
                state = self.model.state_dict()
                result.checkpoint = self._save(state, 0, ev.nll if ev is not None else math.nan)
                return self._finish(result)
            cuda_ids = []
            if self.device.type == "cuda":
                cuda_ids = [self.device.index if self.device.index is not None else torch.cuda.current_device()]
            with torch.random.fork_rng(devices=cuda_ids):
                torch.manual_seed(c.seed + 1_000_003 * g.rank)  # independent noise per process; process 0 as alone
                try:
                    return self._fit_svi(train, val, has_val, resume, start)
                except DistributedError as e:
                    kept = self.checkpoint_path
                    where = f"; the last good checkpoint is {kept}" if kept is not None and kept.is_file() else ""
                    raise DistributedError(f"{e} at step {self.step}{where}") from None

    def _chunks(self, train: Tensor | StoreSplit):
        """The training poses as a chunk source on the trainer's device and dtype."""
        data = train.to(self.device, self.dtype) if isinstance(train, Tensor) else train
        return lambda: (x.to(self.device, self.dtype) for x in pose_chunks(data))

    def _batches(self, train: Tensor | StoreSplit) -> Iterator[Tensor]:
        """This process's training batches forever: uniform draws from a tensor (its slice of the
        global batch), or a seeded shuffle stream of its shard of a store."""
        c, g = self.config, self.group
        local = c.batch_size // g.world_size
        if isinstance(train, StoreSplit):
            shard = _shard(train, g)
            assert isinstance(shard, StoreSplit)
            for batch in shard.batches(local, seed=c.seed + self.step):
                yield batch.to(self.device, self.dtype, non_blocking=True)
            return  # (the stream is endless)
        data = train.to(self.device, self.dtype)
        gen = torch.Generator(device="cpu").manual_seed(c.seed + self.step)
        size = min(c.batch_size, len(data))
        size -= size % g.world_size
        part = slice(g.rank * size // g.world_size, (g.rank + 1) * size // g.world_size)
        while True:
            idx = torch.randint(len(data), (size,), generator=gen)
            yield data[idx[part].to(self.device)]

    def _validate(
        self, val: Tensor | None, has_val: bool, final: bool = False, best_step: int = 0
    ) -> Evaluation | None:
        """Process 0's validation metrics on every process (``None`` without validation data)."""
        if not has_val:
            return None
        ev, failed = None, None
        if val is not None:
            self.model.eval()
            try:
                ev = evaluate(self.model, val, validation=not final)
            except EvaluationError as e:
                failed = TrainingError(self._stop_message(f"validation at step {self.step} failed ({e})", best_step))
            finally:
                self.model.train()
        if self.group.distributed:
            ev, lost = _share_evaluation(self.group, ev)
            if lost and failed is None:
                what = f"validation at step {self.step} failed in process 0"
                failed = TrainingError(self._stop_message(what, best_step))
        if failed is not None:
            raise failed
        return ev

    def _fit_svi(
        self, train: Tensor | StoreSplit, val: Tensor | None, has_val: bool, resume: str | Path | None, start: float
    ) -> TrainResult:
        c, g = self.config, self.group
        best_nll, best_step, best_state = math.inf, 0, None
        history: list[dict] = []
        if resume is not None:
            ck = read_checkpoint(resume, map_location=self.device)
            self.model.load_state_dict(ck["model"])
            self.optimizer.load_state_dict(ck["optimiser"])
            if self.scheduler is not None and ck.get("scheduler"):
                self.scheduler.load_state_dict(ck["scheduler"])
            self.step = int(ck["step"])
            best_nll, best_step, best_state = float(ck["best_val_nll"]), int(ck["best_step"]), ck["best_model"]
            log.info("resumed from %s at step %d", resume, self.step)
        else:
            if g.is_main:
                sample = _subset(train, self.config.init_poses)
                assert sample is not None  # a training split is given
                self.model.initialize(sample.to(self.device, self.dtype))
            g.broadcast_module(self.model)  # every process starts from process 0's weights
            ev = self._validate(val, has_val)
            if ev is not None:
                best_nll = ev.nll
                elapsed = time.perf_counter() - start
                history.append({"step": 0, "seconds": elapsed, "val_nll": ev.nll, "val_bpd": ev.bpd})
            best_state = copy.deepcopy(self.model.state_dict())
            self._save(best_state, 0, best_nll)  # before the first step: a file always exists
        writer = self._writer()
        batches = self._batches(train)
        bad_evals, stopped = 0, "max_steps"
        name = self.model.registry_name or type(self.model).__name__
        bar = progress(c.max_steps, f"train {name}", initial=self.step, enabled=g.is_main)
        params = [p for p in self.model.parameters() if p.requires_grad]
        losses: list[Tensor] = []  # since the last validation, on the device: no sync per step
        first = self.step
        sync_each_step = self.device.type == "cpu"  # free on the CPU: stop at the first bad step
        try:
            while self.step < c.max_steps:
                self.model.set_step(self.step)
                batch = next(batches)
                if c.noise > 0:
                    batch = batch + c.noise * torch.randn_like(batch)
                try:
                    loss = self.loss(batch)
                except (ValueError, RuntimeError):  # e.g. Pyro's argument check, after NaN weights
                    self._check_losses(losses, first, best_step)
                    raise
                if sync_each_step and not g.distributed:
                    self._check_losses([loss.detach()], self.step, best_step)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                out_of_time = c.max_seconds is not None and time.perf_counter() - start > c.max_seconds
                if g.distributed:  # one all-reduce: gradients, the loss and the time-budget flag
                    loss, flag = g.average_gradients(params, loss.detach(), torch.tensor(float(out_of_time)))
                    out_of_time = bool(flag > 0)
                    if sync_each_step:
                        self._check_losses([loss], self.step, best_step)
                if c.clip_norm is not None and c.optimizer == "adam":
                    torch.nn.utils.clip_grad_norm_(params, c.clip_norm)
                self.optimizer.step()
                self.step += 1
                losses.append(loss.detach())
                if self.scheduler is not None and c.schedule != "plateau":
                    self.scheduler.step()
                bar.update(1)
                due = self.step % c.eval_every == 0 or self.step == c.max_steps or out_of_time
                if not due and self.step % self.checkpoint_every != 0:
                    continue
                recent = self._check_losses(losses, first, best_step)  # one transfer per validation
                if writer is not None:
                    for k, value in enumerate(recent.tolist()):
                        writer.add_scalar("train/loss", value, first + k + 1)
                first, losses = self.step, []
                if due:
                    ev = self._validate(val, has_val, best_step=best_step)
                    elapsed = time.perf_counter() - start
                    record = {"step": self.step, "seconds": elapsed, "train_loss": recent[-1].item()}
                    bar.note(loss=f"{recent[-1].item():.3f}")
                    if ev is not None:
                        record.update(val_nll=ev.nll, val_bpd=ev.bpd)
                        bar.note(val_NLL=f"{ev.nll:.3f}")
                        if writer is not None:
                            writer.add_scalar("val/nll", ev.nll, self.step)
                            writer.add_scalar("val/bpd", ev.bpd, self.step)
                        if self.scheduler is not None and c.schedule == "plateau":
                            self.scheduler.step(ev.nll)
                        if ev.nll < best_nll:
                            best_nll, best_step, bad_evals = ev.nll, self.step, 0
                            best_state = copy.deepcopy(self.model.state_dict())
                            self._save(best_state, best_step, best_nll)
                        else:
                            bad_evals += 1
                    else:  # nothing to validate on: the latest weights are the ones kept
                        best_step, best_state = self.step, copy.deepcopy(self.model.state_dict())
                    history.append(record)
                    if c.patience and bad_evals >= c.patience:
                        stopped = f"early stop: no better val NLL for {bad_evals} evaluations"
                        break
                    if out_of_time:
                        stopped = f"time budget of {c.max_seconds:g} s reached"
                        break
                if self.step % self.checkpoint_every == 0:
                    self._save(best_state, best_step, best_nll)
        finally:
            bar.close()
        self.model.load_state_dict(best_state)  # keep the weights with the best validation NLL
        ev = self._validate(val, has_val, final=True, best_step=best_step)
        result = TrainResult(self.step, best_step, ev, time.perf_counter() - start, stopped, history=history)
        result.checkpoint = self._save(best_state, best_step, best_nll)
        return self._finish(result, writer)

    def _check_losses(self, losses: list[Tensor], first: int, best_step: int) -> Tensor:
        """The losses of steps ``first, first + 1, ...`` on the CPU; a non-finite one stops training."""
        recent = torch.stack(losses).cpu() if losses else torch.zeros(0)
        if not torch.isfinite(recent).all():
            k = int((~torch.isfinite(recent)).nonzero()[0])
            raise TrainingError(
                self._stop_message(f"the training loss is {recent[k].item()} at step {first + k}", best_step)
            )
        return recent

    def _finish(self, result: TrainResult, writer=None) -> TrainResult:
        if self.run_dir is None:
            return result
        writer = writer or self._writer()
        if writer is not None:
            nll = result.val.nll if result.val is not None else math.nan
            metrics = {"hparam/val_nll": nll, "hparam/val_bpd": result.val.bpd if result.val else math.nan}
            flat = {
                k: (v if isinstance(v, (int, float, str, bool)) else str(v))
                for k, v in flatten_dict(self.hparams).items()
            }
            writer.add_hparams(flat, metrics, run_name=".")
            writer.close()
        return result

    def _writer(self):
        if not self.tensorboard:
            return None
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(log_dir=str(self.run_dir))


def _shard(poses: Tensor | StoreSplit, group: Group) -> Tensor | StoreSplit:
    """This process's contiguous rows of the training poses (all of them in one process)."""
    if not group.distributed:
        return poses
    if isinstance(poses, StoreSplit):
        return poses.shard(group.rank, group.world_size)
    return poses[group.shard(len(poses))]


_EVALUATION_FIELDS = ("nll", "bpd", "nll_haar", "dim", "n", "exact")


def _share_evaluation(group: Group, ev: Evaluation | None) -> tuple[Evaluation | None, bool]:
    """Process 0's evaluation on every process, and whether process 0 failed to make one."""
    values = torch.full((len(_EVALUATION_FIELDS) + 1,), math.nan, dtype=torch.float64)
    if group.is_main:
        values[-1] = float(ev is None)
        if ev is not None:
            values[:-1] = torch.tensor([float(getattr(ev, k)) for k in _EVALUATION_FIELDS], dtype=torch.float64)
    got = group.broadcast(values).tolist()
    if got[-1]:
        return None, True
    nll, bpd, haar, dim, n, exact = got[:-1]
    return ev if group.is_main else Evaluation(nll, bpd, haar, int(dim), int(n), bool(exact)), False


def _columns(poses: Tensor | StoreSplit, columns: list[int]):
    """The modelled joints of the poses, whole or chunk by chunk."""
    if isinstance(poses, StoreSplit):
        return (c[:, columns] for c in pose_chunks(poses))
    return poses[:, columns]


def _subset(poses: Tensor | StoreSplit | None, n: int) -> Tensor | None:
    """At most ``n`` poses (0: all), evenly spaced, as a tensor."""
    if poses is None:
        return None
    if isinstance(poses, StoreSplit):
        return poses.sample(n) if n else poses.load()
    if n and len(poses) > n:
        return poses[torch.linspace(0, len(poses) - 1, n).long()]
    return poses
