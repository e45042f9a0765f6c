"""The one trainer for every model (DESIGN.md section 5).

Stochastic variational inference: the loss is Pyro's ``Trace_ELBO`` of the model's
``model``/``guide`` pair, negated and divided by the batch size (nats per pose), minimised by a
torch optimiser over the module's parameters -- Pyro's custom-objective form of SVI. For a
likelihood model the guide is empty and the loss is the NLL. Models with a closed form can be
fitted exactly instead (``training.fit: closed_form``).

Around that: Adam or Pyro's ClippedAdam, step/cosine/plateau schedules, gradient clipping, early
stopping on validation NLL (the best weights are restored), a clear stop on a NaN/inf loss,
TensorBoard scalars and hparams, a tqdm bar on a terminal only, atomic checkpoints
``{model, optimiser, scheduler, step, config, ...}`` that load with ``weights_only=True``, resume.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from pyro.infer import Trace_ELBO
from pyro.optim.clipped_adam import ClippedAdam
from torch import Tensor

from probpose.evaluation.metrics import Evaluation, check_not_constant, evaluate
from probpose.models import PoseModel
from probpose.training.config import TrainingConfig, flatten_dict

__all__ = ["TrainingError", "TrainResult", "Trainer", "save_checkpoint", "load_checkpoint"]

log = logging.getLogger(__name__)


class TrainingError(RuntimeError):
    """Training cannot go on (for example the loss became NaN)."""


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


def save_checkpoint(path: Path, payload: dict) -> Path:
    """``torch.save`` to a temporary file in the same folder, then rename (never a half file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``: tensors and plain containers only."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    return torch.load(path, map_location=map_location, weights_only=True)


_DTYPES = {"float32": torch.float32, "float64": torch.float64}


class Trainer:
    """Fits any :class:`~probpose.models.PoseModel`.

    Args:
        model: the model (moved to ``config.device`` / ``config.dtype``).
        config: :class:`TrainingConfig`.
        run_dir: where checkpoints and TensorBoard events go (``None``: nothing is written).
        hparams: the whole experiment config as a dict, stored in checkpoints and logged as
            TensorBoard hparams (flattened to dotted keys).
        tensorboard: write TensorBoard events (needs ``run_dir``).
        checkpoint_every: steps between resumable checkpoints.
    """

    def __init__(
        self,
        model: PoseModel,
        config: TrainingConfig,
        run_dir: str | Path | None = None,
        hparams: dict | None = None,
        tensorboard: bool = True,
        checkpoint_every: int = 500,
    ) -> None:
        self.config = config
        self.device = torch.device(config.device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise TrainingError("training.device is cuda but no CUDA device is available")
        self.dtype = _DTYPES[config.dtype]
        self.model = model.to(self.device, self.dtype)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.hparams = hparams or {"training": vars(config)}
        self.tensorboard = tensorboard and self.run_dir is not None
        self.checkpoint_every = checkpoint_every
        limits = {"lr": 0, "batch_size": 0, "max_steps": -1, "eval_every": 0, "checkpoint_every": 0}
        for name, low in limits.items():
            value = checkpoint_every if name == "checkpoint_every" else getattr(config, name)
            if not value > low:
                section = "output" if name == "checkpoint_every" else "training"
                raise TrainingError(f"{section}.{name} must be > {low}, got {value}")
        if config.fit == "closed_form" and not model.has_closed_form:
            raise TrainingError(f"{type(model).__name__} has no closed-form fit; use training.fit=svi")
        self.optimizer = self._make_optimizer()
        self.scheduler = self._make_scheduler()
        self.elbo = Trace_ELBO()
        self.step = 0

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
            "model": self.model.state_dict(),
            "best_model": best_state,
            "optimiser": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else {},
            "step": self.step,
            "best_step": best_step,
            "best_val_nll": best_nll,
            "config": self.hparams,
            "skeleton": self.model.skeleton.to_dict(),
        }

    # ------------------------------------------------------------------ training
    def loss(self, batch: Tensor) -> Tensor:
        """Negative ELBO per pose (nats) of a batch ``(B, J, 3)``."""
        return self.elbo.differentiable_loss(self.model.model, self.model.guide, batch) / batch.shape[0]

    def fit(self, train: Tensor, val: Tensor | None = None, resume: str | Path | None = None) -> TrainResult:
        """Fit on training poses ``(N, J, 3)``; validate (and stop early) on ``val``.

        Refuses data with a (nearly) constant dimension, naming the joint. ``resume``: a
        checkpoint written by this trainer to continue from."""
        c = self.config
        names = self.model.skeleton.joint_names
        if train.dim() != 3 or train.shape[1:] != (self.model.num_joints, 3):
            raise TrainingError(f"expected training poses (N, {self.model.num_joints}, 3), got {tuple(train.shape)}")
        modelled = list(self.model.modelled)
        check_not_constant(train[:, modelled], [names[j] for j in modelled])
        train = train.to(self.device, self.dtype)
        val = val.to(self.device, self.dtype) if val is not None and len(val) else None
        start = time.perf_counter()
        if c.fit == "closed_form":
            self.model.fit_closed_form(train)
            result = TrainResult(0, 0, self._validate(val, final=True), time.perf_counter() - start, "closed form")
            return self._finish(result, self.model.state_dict(), 0)

        cuda_ids = []
        if self.device.type == "cuda":
            cuda_ids = [self.device.index if self.device.index is not None else torch.cuda.current_device()]
        with torch.random.fork_rng(devices=cuda_ids):
            torch.manual_seed(c.seed)
            return self._fit_svi(train, val, resume, start)

    def _validate(self, val: Tensor | None, final: bool = False) -> Evaluation | None:
        if val is None:
            return None
        self.model.eval()
        try:
            return evaluate(self.model, val, check=False, validation=not final)
        finally:
            self.model.train()

    def _fit_svi(self, train: Tensor, val: Tensor | None, resume, start: float) -> TrainResult:
        c = self.config
        best_nll, best_step, best_state = math.inf, 0, None
        history: list[dict] = []
        if resume is not None:
            ck = load_checkpoint(resume, map_location=self.device)
            self.model.load_state_dict(ck["model"])
            self.optimizer.load_state_dict(ck["optimiser"])
            if self.scheduler is not None and ck.get("scheduler"):
                self.scheduler.load_state_dict(ck["scheduler"])
            self.step = int(ck["step"])
            best_nll, best_step, best_state = float(ck["best_val_nll"]), int(ck["best_step"]), ck["best_model"]
            log.info("resumed from %s at step %d", resume, self.step)
        else:
            self.model.initialize(train)
        writer = self._writer()
        gen = torch.Generator(device="cpu").manual_seed(c.seed + self.step)
        bad_evals, stopped = 0, "max_steps"
        bar = _progress(c.max_steps, self.step)
        params = [p for p in self.model.parameters() if p.requires_grad]
        try:
            while self.step < c.max_steps:
                self.model.set_step(self.step)
                idx = torch.randint(len(train), (min(c.batch_size, len(train)),), generator=gen)
                loss = self.loss(train[idx.to(self.device)])
                if not torch.isfinite(loss):
                    raise TrainingError(
                        f"loss is {loss.item()} at step {self.step}: stopping. Lower training.lr, set "
                        "training.clip_norm, or check the data"
                        + (f"; the last checkpoint is in {self.run_dir}" if self.run_dir else "")
                    )
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if c.clip_norm is not None and c.optimizer == "adam":
                    torch.nn.utils.clip_grad_norm_(params, c.clip_norm)
                self.optimizer.step()
                self.step += 1
                if self.scheduler is not None and c.schedule != "plateau":
                    self.scheduler.step()
                if writer is not None:
                    writer.add_scalar("train/loss", loss.item(), self.step)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss.item():.3f}")
                out_of_time = c.max_seconds is not None and time.perf_counter() - start > c.max_seconds
                if self.step % c.eval_every == 0 or self.step == c.max_steps or out_of_time:
                    ev = self._validate(val)
                    record = {"step": self.step, "train_loss": loss.item()}
                    if ev is not None:
                        record.update(val_nll=ev.nll, val_bpd=ev.bpd)
                        if writer is not None:
                            writer.add_scalar("val/nll", ev.nll, self.step)
                            writer.add_scalar("val/bpd", ev.bpd, self.step)
                        if self.scheduler is not None and c.schedule == "plateau":
                            self.scheduler.step(ev.nll)
                        if ev.nll < best_nll:
                            best_nll, best_step, bad_evals = ev.nll, self.step, 0
                            best_state = copy.deepcopy(self.model.state_dict())
                        else:
                            bad_evals += 1
                    history.append(record)
                    if c.patience and bad_evals >= c.patience:
                        stopped = f"early stop: no better val NLL for {bad_evals} evaluations"
                        break
                    if out_of_time:
                        stopped = f"time budget of {c.max_seconds:g} s reached"
                        break
                if self.run_dir is not None and self.step % self.checkpoint_every == 0:
                    save_checkpoint(self.run_dir / "checkpoint.pt", self._payload(best_state, best_step, best_nll))
        finally:
            if bar is not None:
                bar.close()
        if best_state is not None:
            self.model.load_state_dict(best_state)  # keep the weights with the best validation NLL
        else:
            best_step = self.step
        result = TrainResult(
            self.step, best_step, self._validate(val, final=True), time.perf_counter() - start, stopped, history=history
        )
        return self._finish(result, best_state or self.model.state_dict(), best_step, writer)

    def _finish(self, result: TrainResult, best_state: dict, best_step: int, writer=None) -> TrainResult:
        if self.run_dir is None:
            return result
        best_nll = result.val.nll if result.val is not None else math.nan
        result.checkpoint = save_checkpoint(
            self.run_dir / "checkpoint.pt", self._payload(best_state, best_step, best_nll)
        )
        writer = writer or self._writer()
        if writer is not None:
            metrics = {"hparam/val_nll": best_nll, "hparam/val_bpd": result.val.bpd if result.val else math.nan}
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


def _progress(total: int, initial: int):
    """A tqdm bar on an interactive terminal only."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc="train", unit="step", leave=False)
