"""Image folders for style transfer: listing, checked loading, random crops, compositing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from probpose.errors import DataError

__all__ = ["IMAGE_SUFFIXES", "list_images", "read_rgba", "read_rgb", "random_crop", "composite", "to_uint8"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def list_images(path: str | Path, what: str) -> list[Path]:
    """An image file, or the images in a folder (sorted by name; a ``probpose synth`` folder's
    ``frames/``). A folder with no images, or a file that is not one, is a :class:`DataError`."""
    p = Path(path)
    if p.is_dir() and (p / "frames").is_dir() and (p / "manifest.json").is_file():
        p = p / "frames"
    if p.is_file():
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            raise DataError(str(p), None, f"not an image ({', '.join(IMAGE_SUFFIXES)}) for the {what}")
        return [p]
    if not p.is_dir():
        raise DataError(str(p), None, f"no such file or folder ({what})")
    files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(str(p), None, f"holds no images ({', '.join(IMAGE_SUFFIXES)}) for the {what}")
    return files


def _open(path: Path) -> Image.Image:
    try:
        im = Image.open(path)
        im.load()
        return im
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(str(path), None, f"not a readable image ({type(e).__name__})") from None


def read_rgba(path: Path) -> tuple[Tensor, Tensor]:
    """``(3, H, W)`` RGB premultiplied by alpha and ``(1, H, W)`` alpha, float32 in [0, 1]."""
    arr = np.asarray(_open(path).convert("RGBA"), dtype=np.float32) / 255.0
    t = torch.from_numpy(arr).permute(2, 0, 1)
    return t[:3] * t[3:], t[3:]


def read_rgb(path: Path) -> Tensor:
    """``(3, H, W)`` float32 RGB in [0, 1]."""
    arr = np.asarray(_open(path).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def random_crop(image: Tensor, height: int, width: int, generator: torch.Generator) -> Tensor:
    """A random ``height`` x ``width`` crop of ``(3, H, W)``, after scaling the image up (keeping its
    aspect) when it is smaller."""
    _, h, w = image.shape
    scale = max(height / h, width / w, 1.0)
    if scale > 1.0:
        size = (max(height, round(h * scale)), max(width, round(w * scale)))
        image = torch.nn.functional.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]
        _, h, w = image.shape
    y = int(torch.randint(0, h - height + 1, (1,), generator=generator))
    x = int(torch.randint(0, w - width + 1, (1,), generator=generator))
    return image[:, y : y + height, x : x + width]


def composite(subject: Tensor, alpha: Tensor, background: Tensor) -> Tensor:
    """``alpha * subject + (1 - alpha) * background`` (straight ``subject``, ``alpha`` ``(..., 1, H, W)``)."""
    return alpha * subject + (1 - alpha) * background


def to_uint8(image: Tensor) -> np.ndarray:
    """``(C, H, W)`` in [0, 1] -> ``(H, W, C)`` uint8."""
    return (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
