"""The processes one fit is spread over: torch's own distributed engine, or just this process.

``torchrun --nproc_per_node N -m probpose train ...`` starts N processes with ``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` set; :func:`from_environment` joins them into
one process group (``gloo`` on the CPU, ``nccl`` on CUDA) and returns a :class:`Group`. Code that
fits a model takes a group and calls its collectives; with the default :data:`SINGLE` group they
are no-ops, so the one-process path is the same code (docs/architecture.md, "Training").

Every collective runs under the group's timeout, and a failure (a peer that died, a peer that
disagrees) becomes a :class:`~probpose.errors.DistributedError` naming this rank instead of a
backend traceback. No collective here pickles: tensors only.
"""

from __future__ import annotations

import datetime
import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import Tensor

from probpose.errors import DistributedError

__all__ = ["Group", "SINGLE", "DEFAULT_TIMEOUT_S", "from_environment", "shutdown"]

MAX_WORLD_SIZE = 65536
"""The most processes one group may have (``WORLD_SIZE``)."""
MAX_TIMEOUT_S = 7 * 24 * 3600.0
"""The longest process-group timeout, seconds (a week): longer overflows torch's timer."""

DEFAULT_TIMEOUT_S = 600.0
"""Seconds a collective waits for the other processes before giving up (``PROBPOSE_DIST_TIMEOUT``
overrides it): long enough for rank 0 to import a data set or validate while the others wait."""

T = TypeVar("T")


@dataclass(frozen=True)
class Group:
    """``world_size`` processes, this one being ``rank`` (0 is the main one: it writes files and
    reports). ``device``: where collectives put their tensors (``cuda`` for NCCL)."""

    rank: int = 0
    world_size: int = 1
    device: str = "cpu"

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, n: int) -> slice:
        """This process's contiguous share of ``n`` rows (shares differ by at most one row and
        follow rank order, so concatenating them in rank order gives the rows in order)."""
        return slice(n * self.rank // self.world_size, n * (self.rank + 1) // self.world_size)

    # ------------------------------------------------------------------ collectives
    def _run(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except (RuntimeError, ValueError) as e:  # DistBackendError, a closed socket, a timeout
            reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise DistributedError(
                f"process {self.rank} of {self.world_size}: {what} failed -- another process stopped, was "
                f"killed or timed out ({reason})"
            ) from None

    def sum(self, tensor: Tensor) -> Tensor:
        """The elementwise sum of ``tensor`` over the processes (in place; also returned)."""
        if self.distributed:
            moved = tensor.to(self.device)
            self._run("summing across processes", lambda: dist.all_reduce(moved))
            if moved is not tensor:
                tensor.copy_(moved)
        return tensor

    def total(self, value: float) -> float:
        """A Python number summed over the processes (in float64)."""
        return float(self.sum(torch.tensor([value], dtype=torch.float64))[0]) if self.distributed else value

    def any(self, flag: bool) -> bool:
        """True on every process if ``flag`` is true on any."""
        return self.total(float(flag)) > 0 if self.distributed else flag

    def broadcast(self, tensor: Tensor, src: int = 0) -> Tensor:
        """``src``'s ``tensor`` on every process (in place; also returned)."""
        if self.distributed:
            moved = tensor.to(self.device)
            self._run("receiving from process 0", lambda: dist.broadcast(moved, src))
            if moved is not tensor:
                tensor.copy_(moved)
        return tensor

    def broadcast_text(self, text: str | None) -> str:
        """Process 0's ``text`` on every process (others pass ``None``)."""
        if not self.distributed:
            assert text is not None
            return text
        data = (text or "").encode()
        size = self.broadcast(torch.tensor([len(data)], dtype=torch.int64))
        buf = torch.zeros(int(size[0]), dtype=torch.uint8)
        if self.is_main:
            buf.copy_(torch.frombuffer(bytearray(data), dtype=torch.uint8))
        return bytes(self.broadcast(buf).tolist()).decode()

    def gather_rows(self, rows: Tensor) -> Tensor:
        """Every process's ``rows`` ``(n_r, ...)`` concatenated in rank order ``(sum n_r, ...)``, on
        every process."""
        if not self.distributed:
            return rows
        counts = self._counts(len(rows))
        most = int(counts.max())
        padded = torch.zeros((most, *rows.shape[1:]), dtype=rows.dtype, device=self.device)
        padded[: len(rows)] = rows
        parts = [torch.empty_like(padded) for _ in range(self.world_size)]
        self._run("gathering rows", lambda: dist.all_gather(parts, padded))
        return torch.cat([p[: int(c)] for p, c in zip(parts, counts, strict=True)]).to(rows.device)

    def _counts(self, n: int) -> Tensor:
        """Every process's ``n`` ``(world_size,)``."""
        counts = torch.zeros(self.world_size, dtype=torch.int64)
        counts[self.rank] = n
        return self.sum(counts)

    def offset(self, n: int) -> tuple[int, int]:
        """This process's first global row and the total, when each process holds ``n`` rows in rank order."""
        if not self.distributed:
            return 0, n
        counts = self._counts(n)
        return int(counts[: self.rank].sum()), int(counts.sum())

    def average_gradients(self, params: Iterable[Tensor], *extra: Tensor) -> Tensor:
        """Average the gradients of ``params`` over the processes in one all-reduce (a missing
        gradient counts as zeros), together with ``extra`` values; returns ``extra`` averaged.

        This is what DistributedDataParallel does for a module, written for Pyro's loss: with the
        same local batch size everywhere, the averaged gradient is the gradient of the loss on the
        union of the batches."""
        params = list(params)
        if not self.distributed:
            return torch.stack([e.reshape(()) for e in extra]) if extra else torch.zeros(0)
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        dtype = params[0].dtype if params else torch.float64
        flat = torch.cat([g.reshape(-1) for g in grads] + [e.detach().reshape(1).to(dtype) for e in extra])
        self.sum(flat).div_(self.world_size)
        k = 0
        for p, g in zip(params, grads, strict=True):
            n = g.numel()
            if p.grad is None:
                p.grad = flat[k : k + n].view_as(p).clone()
            else:
                p.grad.copy_(flat[k : k + n].view_as(p))
            k += n
        return flat[k:]

    def broadcast_module(self, module: torch.nn.Module) -> None:
        """Process 0's parameters and buffers on every process (as DDP does when it wraps a module)."""
        if self.distributed:
            with torch.no_grad():
                for t in module.state_dict().values():
                    if t.dtype == torch.bool:  # not every backend moves booleans
                        t.copy_(self.broadcast(t.to(torch.uint8)).bool())
                    else:
                        self.broadcast(t)

    def check_same(self, what: str, text: str) -> None:
        """Refuse to go on unless every process holds the same ``text`` (a config, a data set's
        identity): its SHA-256 is compared across processes."""
        if not self.distributed:
            return
        digest = torch.tensor(list(hashlib.sha256(text.encode()).digest()), dtype=torch.int64)
        mine = digest.clone()
        self.broadcast(digest)
        differs = self.any(not torch.equal(mine, digest))
        if differs:
            raise DistributedError(
                f"process {self.rank} of {self.world_size}: the processes disagree on {what}; start every "
                "process with the same arguments, files and environment"
            )

    def barrier(self, what: str = "waiting for the other processes") -> None:
        if self.distributed:
            self._run(what, lambda: self.sum(torch.zeros(1)))


SINGLE = Group()
"""This process alone: every collective is a no-op."""


def from_environment(device: str = "cpu", timeout_s: float | None = None) -> Group:
    """The group torchrun (or any launcher setting ``RANK`` and ``WORLD_SIZE``) started this
    process in, joined with ``gloo`` (``nccl`` when ``device`` is CUDA); :data:`SINGLE` when the
    variables are absent or ``WORLD_SIZE`` is 1. ``timeout_s``: see :data:`DEFAULT_TIMEOUT_S`."""
    env = os.environ
    if "WORLD_SIZE" not in env or "RANK" not in env:
        return SINGLE
    try:
        world, rank = int(env["WORLD_SIZE"]), int(env["RANK"])
    except ValueError:
        raise DistributedError(f"RANK={env['RANK']!r} and WORLD_SIZE={env['WORLD_SIZE']!r} must be integers") from None
    if not 1 <= world <= MAX_WORLD_SIZE:
        raise DistributedError(f"WORLD_SIZE={env['WORLD_SIZE'][:30]!r} must be an integer in [1, {MAX_WORLD_SIZE:,}]")
    if not 0 <= rank < world:
        raise DistributedError(f"RANK={rank} must lie in [0, WORLD_SIZE={world})")
    if world == 1:
        return SINGLE
    if timeout_s is None:
        raw = env.get("PROBPOSE_DIST_TIMEOUT", str(DEFAULT_TIMEOUT_S))
        try:
            timeout_s = float(raw)
        except ValueError:
            raise DistributedError(f"PROBPOSE_DIST_TIMEOUT={raw!r} must be a number of seconds") from None
    if not 0 < timeout_s <= MAX_TIMEOUT_S:
        raise DistributedError(
            f"the process-group timeout (PROBPOSE_DIST_TIMEOUT) must be in (0, {MAX_TIMEOUT_S:g}] seconds, "
            f"got {timeout_s:g}"
        )
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.set_device(int(env.get("LOCAL_RANK", rank)) % max(torch.cuda.device_count(), 1))
    if not dist.is_initialized():
        group = Group(rank, world, "cuda" if cuda else "cpu")
        group._run(
            "joining the process group",
            lambda: dist.init_process_group(
                "nccl" if cuda else "gloo",
                rank=rank,
                world_size=world,
                timeout=datetime.timedelta(seconds=timeout_s),
            ),
        )
    return Group(dist.get_rank(), dist.get_world_size(), "cuda" if cuda else "cpu")


def shutdown() -> None:
    """Leave the process group (if this process joined one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
