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

from dataclasses import dataclass

from torch import Tensor, nn
from torch.nn import functional as F

from probpose.style.vgg import Depth, VGGEncoder

__all__ = ["adain", "channel_stats", "StyleNet", "make_decoder", "StyleLosses"]


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


def make_decoder(depth: Depth, channels: int) -> nn.Sequential:
    """``pool2``: PASyn-v2's decoder (ConvTranspose 128->16 k4 s2 p1, BatchNorm, ReLU, ConvTranspose
    16->3 k4 s2 p1); deeper slices: a mirrored VGG decoder (nearest upsampling and 3x3 convolutions)."""
    if depth == "pool2":
        return nn.Sequential(
            nn.ConvTranspose2d(channels, 16, 4, 2, 1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.ConvTranspose2d(16, 3, 4, 2, 1),
        )  # fmt: skip
    layers: list[nn.Module] = []
    c = channels
    ups = {"relu3_1": 2, "relu4_1": 3}[depth]
    for _ in range(ups):
        out = max(c // 2, 32)
        layers += [nn.Conv2d(c, out, 3, padding=1, padding_mode="reflect"), nn.ReLU(), nn.Upsample(scale_factor=2)]
        c = out
    layers += [nn.Conv2d(c, c, 3, padding=1, padding_mode="reflect"), nn.ReLU(), nn.Conv2d(c, 3, 3, padding=1)]
    return nn.Sequential(*layers)


@dataclass
class StyleLosses:
    content: Tensor
    style: Tensor
    total: Tensor


class StyleNet(nn.Module):
    """Encoder (frozen), AdaIN with ``alpha``, decoder. Images are ``(N, 3, H, W)`` RGB in [0, 1];
    ``H`` and ``W`` must be divisible by the encoder's downsampling (4 or 8)."""

    def __init__(self, encoder: VGGEncoder, alpha: float = 0.5) -> None:
        super().__init__()
        if not 0 <= alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.encoder = encoder
        self.decoder = make_decoder(encoder.depth, encoder.out_channels)
        self.alpha = alpha
        self.factor = 8 if encoder.depth == "relu4_1" else 4

    def target(self, content: Tensor, style: Tensor, alpha: float | None = None) -> Tensor:
        """``t = (1 - alpha) enc(content) + alpha AdaIN(enc(content), enc(style))``."""
        a = self.alpha if alpha is None else alpha
        c = self.encoder(content)
        s = self.encoder(style)
        return (1 - a) * c + a * adain(c, s)

    def forward(self, content: Tensor, style: Tensor, alpha: float | None = None) -> Tensor:
        """Stylised images ``(N, 3, H, W)`` (not clamped)."""
        return self.decoder(self.target(content, style, alpha))

    def losses(self, content: Tensor, style: Tensor, content_weight: float = 5.0,
               style_weight: float = 10.0) -> StyleLosses:  # fmt: skip
        t = self.target(content, style)
        out = self.decoder(t)
        feats = self.encoder.features(out)
        lc = F.mse_loss(feats[-1], t)
        ls = out.new_zeros(())
        for fo, fs in zip(feats, self.encoder.features(style), strict=True):
            mo, so = channel_stats(fo)
            ms, ss = channel_stats(fs)
            ls = ls + F.mse_loss(mo, ms.expand_as(mo)) + F.mse_loss(so, ss.expand_as(so))
        return StyleLosses(lc, ls, content_weight * lc + style_weight * ls)
