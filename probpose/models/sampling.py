"""One sampling job: poses drawn from a trained model (or, from a VAE, frames of a smooth latent
path) written as ``.npy`` (and PASyn's Euler layout for zebra legs). ``probpose sample`` builds a
:class:`SampleRequest` from its flags and prints the :class:`SampleRun`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from probpose.data import axis_angle_to_pasyn
from probpose.errors import ConfigError, DataError, short_repr
from probpose.files import atomic_path, check_output_path
from probpose.models.base import LatentPoseModel, PoseModel, check_latent_step
from probpose.models.io import load_model, resolve_model_path
from probpose.options import MAX_COUNT, MAX_SEED, option, validate
from probpose.skeleton import ZEBRA_LEGS

__all__ = ["SampleRequest", "SampleRun", "run_sample"]


@dataclass
class SampleRequest:
    """What to draw and where to write it.

    Attributes:
        model: a checkpoint, or a shipped prior's name (``cmu/joint_flow``).
        out: the ``.npy`` to write: ``(n, J, 3)`` float32 axis-angle, radians (the suffix is added).
        n: poses, or frames with ``sequence``.
        sequence: VAEs: frames of one smooth path through latent space (decoder means).
        mode: the path: a latent random ``walk`` or ``slerp`` between random latents.
        step: latent step per frame, in (0, 1).
        pasyn: zebra legs: also write ``OUT_pasyn.npy``, ``(n, 36)`` Euler degrees, R = Rz Ry Rx.
        seed: the draws' seed (the global RNG is left as it was).
    """

    model: Path
    out: Path
    n: int = option(3000, ge=1, le=MAX_COUNT)
    sequence: bool = False
    mode: Literal["walk", "slerp"] = "walk"
    step: float = 0.05
    pasyn: bool = False
    seed: int = option(0, ge=0, le=MAX_SEED)

    def __post_init__(self) -> None:
        resolve_model_path(self.model)  # an empty or NUL-bearing name: one line, not "'.' is a folder"
        self.model, self.out = Path(self.model), Path(self.out)
        if not self.out.suffix:
            self.out = self.out.with_suffix(".npy")
        if self.out.suffix != ".npy":
            raise ConfigError(f"out: {short_repr(str(self.out), 60)} must end in .npy (the poses are a NumPy .npy)")
        validate(self)
        if self.sequence:
            check_latent_step(self.step)

    @property
    def pasyn_out(self) -> Path:
        """Where PASyn's layout goes: beside ``out``, ``_pasyn`` added to its name."""
        return self.out.with_name(self.out.stem + "_pasyn.npy")


@dataclass
class SampleRun:
    """The poses drawn ``(n, J, 3)`` radians (float32, CPU), the model and the files written."""

    poses: Tensor
    model: PoseModel
    out: Path
    pasyn_out: Path | None


def run_sample(request: SampleRequest, also_writes: list[tuple[Path, str]] | None = None) -> SampleRun:
    """Draw ``request.n`` poses (VAEs: decoder means) and write them. ``also_writes``: more outputs
    the caller will write from the result (a contact sheet), checked with the others before any
    work."""
    r = request
    outputs = [(r.out, "poses"), *([(r.pasyn_out, "PASyn poses")] if r.pasyn else []), *(also_writes or [])]
    for path, what in outputs:
        check_output_path(path, [r.model], what)
    model = load_model(r.model)
    model.eval()
    names = model.modelled_names
    if r.pasyn and names != list(ZEBRA_LEGS.joint_names):
        listed = f"{', '.join(names[:4])}{', ...' if len(names) > 4 else ''}"
        raise DataError(
            str(r.model),
            "joints",
            f"`pasyn` needs a model of the 12 zebra leg joints in PASyn order; this model has {len(names)} joints "
            f"({listed})",
        )
    if r.sequence and not isinstance(model, LatentPoseModel):
        raise DataError(str(r.model), None, f"`sequence` needs a VAE; this is a {type(model).__name__}")
    gen = torch.Generator().manual_seed(r.seed)
    with torch.random.fork_rng():
        torch.manual_seed(r.seed)
        if r.sequence:
            assert isinstance(model, LatentPoseModel)
            poses = model.sequence(r.n, step=r.step, mode=r.mode, generator=gen)
        else:
            poses = model.sample(r.n)
    poses = poses.detach().float().cpu()
    with atomic_path(r.out) as tmp, open(tmp, "wb") as fh:
        np.save(fh, poses.numpy())
    if r.pasyn:
        euler = axis_angle_to_pasyn(poses).reshape(len(poses), 36).numpy()
        with atomic_path(r.pasyn_out) as tmp, open(tmp, "wb") as fh:
            np.save(fh, euler)
    return SampleRun(poses, model, r.out, r.pasyn_out if r.pasyn else None)
