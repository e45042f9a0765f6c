"""AdaIN and the style network: encoder (frozen VGG16 slice), AdaIN, decoder, losses.

``AdaIN(c, s) = sigma(s) (c - mu(c)) / sigma_eps(c) + mu(s)`` per channel over the spatial
dimensions (population variance; ``sigma_eps = sqrt(var + eps)`` guards the division only). The
decoder is trained so that the encoding of its output matches the target
``t = (1 - alpha) c + alpha AdaIN(c, s)`` (content loss, MSE) and the channel means and stds of the
style image at every style tap of the encoder (style loss, MSE of means plus MSE of stds, summed
over taps). Content and style pass through the same encoder normalisation (PASyn-v2 fed the style
un-normalised).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from probpose.style.measures import luma
from probpose.style.vgg import Depth, VGGEncoder

__all__ = [
    "adain",
    "channel_stats",
    "StyleNet",
    "make_decoder",
    "StyleLosses",
    "DecoderKind",
    "DECODERS",
    "detail_layer",
]


def channel_stats(x: Tensor, eps: float = 1e-5) -> tuple[Tensor, Tensor]:
    """Per-channel mean and std ``(N, C, 1, 1)`` over the spatial dimensions of ``(N, C, H, W)``."""
    mean = x.mean((-2, -1), keepdim=True)
    std = (x.var((-2, -1), keepdim=True, unbiased=False) + eps).sqrt()
    return mean, std


def adain(content: Tensor, style: Tensor, eps: float = 1e-5) -> Tensor:
    """Content features ``(N, C, H, W)`` with the style features' (``(N or 1, C, H2, W2)``)
    per-channel mean and std."""
    cm, cs = channel_stats(content, eps)
    sm, ss = channel_stats(style, 0.0)  # the style's own std: eps only guards the division
    return (content - cm) / cs * ss + sm


DecoderKind = Literal["resize", "transposed"]
DECODERS: tuple[str, ...] = ("resize", "transposed")


def make_decoder(depth: Depth, channels: int, kind: DecoderKind = "resize") -> nn.Sequential:
    """The decoder from a ``depth`` slice's features (``channels`` of them) back to RGB.

    ``resize`` (the default): every 2x upsampling is a nearest-neighbour resize followed by 3x3
    convolutions (reflect padding), which cannot produce the checkerboard that transposed
    convolutions with a stride that does not divide the kernel leave (Odena, Dumoulin and Olah,
    "Deconvolution and checkerboard artifacts", Distill 2016). From ``pool2`` (128 channels at H/4):
    conv 128->64, BatchNorm, ReLU, resize, conv 64->32, BatchNorm, ReLU, resize, conv 32->32,
    BatchNorm, ReLU, conv 32->3 (about 0.1 M weights; BatchNorm because the encoder's features are
    in the hundreds: without it the decoder trains slowly or collapses to a constant); deeper
    slices: a mirrored VGG decoder of the same kind.
    ``transposed``: PASyn-v2's (``pool2`` only): ConvTranspose 128->16 k4 s2 p1, BatchNorm, ReLU,
    ConvTranspose 16->3 k4 s2 p1, kept to reproduce it."""
    if kind not in DECODERS:
        raise ValueError(f"decoder must be one of {', '.join(DECODERS)}, got {kind!r}")
    if kind == "transposed":
        if depth != "pool2":
            raise ValueError(f"the transposed (PASyn-v2) decoder is for depth pool2, not {depth}")
        return nn.Sequential(
            nn.ConvTranspose2d(channels, 16, 4, 2, 1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.ConvTranspose2d(16, 3, 4, 2, 1),
        )
    if depth != "pool2":  # the mirrored VGG decoders of the deeper slices, as before
        layers: list[nn.Module] = []
        c = channels
        for _ in range({"relu3_1": 2, "relu4_1": 3}[depth]):
            out = max(c // 2, 32)
            layers += [nn.Conv2d(c, out, 3, padding=1, padding_mode="reflect"), nn.ReLU(), nn.Upsample(scale_factor=2)]
            c = out
        layers += [nn.Conv2d(c, c, 3, padding=1, padding_mode="reflect"), nn.ReLU(), nn.Conv2d(c, 3, 3, padding=1)]
        return nn.Sequential(*layers)

    def conv(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1, padding_mode="reflect"), nn.BatchNorm2d(cout), nn.ReLU()]

    return nn.Sequential(
        *conv(channels, 64),
        nn.Upsample(scale_factor=2),
        *conv(64, 32),
        nn.Upsample(scale_factor=2),
        *conv(32, 32),
        nn.Conv2d(32, 3, 3, padding=1, padding_mode="reflect"),
    )


def detail_layer(images: Tensor, sigma: float) -> Tensor:
    """``images`` ``(N, C, H, W)`` minus their Gaussian blur of std ``sigma`` pixels (reflect
    padding): the detail finer than about ``2 sigma`` pixels (a zebra's stripes at 64x64)."""
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    c = images.shape[1]
    blur = F.pad(images, (radius, radius, radius, radius), mode="reflect")
    blur = F.conv2d(blur, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    blur = F.conv2d(blur, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return images - blur


@dataclass
class StyleLosses:
    content: Tensor
    style: Tensor
    total: Tensor


class StyleNet(nn.Module):
    """Encoder (frozen), AdaIN with ``alpha``, decoder. Images are ``(N, 3, H, W)`` RGB in [0, 1];
    ``H`` and ``W`` must be divisible by the encoder's downsampling (4 or 8)."""

    def __init__(
        self, encoder: VGGEncoder, alpha: float = 0.5, decoder: DecoderKind = "resize", detail: bool = False
    ) -> None:
        super().__init__()
        if not 0 <= alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.encoder = encoder
        self.decoder = make_decoder(encoder.depth, encoder.out_channels, decoder)
        self.decoder_kind = decoder
        self.alpha = alpha
        self.factor = 8 if encoder.depth == "relu4_1" else 4
        self.detail = detail
        self.detail_sigma = self.factor / 2

    def decode(self, target: Tensor, content: Tensor) -> Tensor:
        """The decoder's image of ``target``; with ``detail``, plus the content's luma detail
        (:func:`detail_layer` at ``factor / 2`` pixels): the structure finer than the encoder's
        grid (stripes a few pixels wide), which its features cannot place, is kept from the render
        while the decoder paints the rest."""
        out = self.decoder(target)
        if self.detail:
            out = out + detail_layer(luma(content), self.detail_sigma)
        return out

    def target(self, content: Tensor, style: Tensor, alpha: float | None = None) -> Tensor:
        """``t = (1 - alpha) enc(content) + alpha AdaIN(enc(content), enc(style))``."""
        return self._blend(self.encoder(content), self.encoder(style), alpha)

    def _blend(self, c: Tensor, s: Tensor, alpha: float | None = None) -> Tensor:
        """``(1 - alpha) c + alpha AdaIN(c, s)`` of encoded content and style."""
        a = self.alpha if alpha is None else alpha
        return (1 - a) * c + a * adain(c, s)

    def forward(self, content: Tensor, style: Tensor, alpha: float | None = None) -> Tensor:
        """Stylised images ``(N, 3, H, W)`` (not clamped)."""
        return self.decode(self.target(content, style, alpha), content)

    def losses(
        self, content: Tensor, style: Tensor, content_weight: float = 5.0, style_weight: float = 10.0
    ) -> StyleLosses:
        style_feats = self.encoder.features(style)  # once: its last entry is the AdaIN input too
        t = self._blend(self.encoder(content), style_feats[-1])
        out = self.decode(t, content)
        feats = self.encoder.features(out)
        lc = F.mse_loss(feats[-1], t)
        ls = out.new_zeros(())
        for fo, fs in zip(feats, style_feats, strict=True):
            mo, so = channel_stats(fo)
            ms, ss = channel_stats(fs)
            ls = ls + F.mse_loss(mo, ms.expand_as(mo)) + F.mse_loss(so, ss.expand_as(so))
        return StyleLosses(lc, ls, content_weight * lc + style_weight * ls)
