"""Image folders for style transfer: listing, checked loading, random crops, compositing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from probpose.errors import DataError
from probpose.files import input_file
from probpose.options import MAX_IMAGE_PIXELS

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageBank",
    "list_images",
    "read_rgba",
    "read_rgb",
    "random_crop",
    "composite",
    "to_uint8",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def list_images(path: str | Path, what: str) -> list[Path]:
    """An image file, or the images in a folder (sorted by name; a ``probpose synth`` folder's
    ``frames/``). A folder with no images, or a file that is not one, is a :class:`DataError`."""
    p = Path(path)
    if p.is_dir() and (p / "frames").is_dir() and (p / "manifest.json").is_file():
        p = p / "frames"
    if not p.is_dir() and p.exists():
        input_file(p, what)  # a FIFO or device is refused, not waited on
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            raise DataError(str(p), None, f"not an image ({', '.join(IMAGE_SUFFIXES)}) for the {what}")
        return [p]
    if not p.is_dir():
        raise DataError(str(p), None, f"no such file or folder ({what})")
    files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(str(p), None, f"holds no images ({', '.join(IMAGE_SUFFIXES)}) for the {what}")
    return files


def _header(path: Path) -> Image.Image:
    """An image opened but not decoded (only its header read), refused if it declares more than
    :data:`~probpose.options.MAX_IMAGE_PIXELS` pixels."""
    input_file(path, "image")
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # probpose's own limit, checked below, replaces PIL's warning and error
    try:
        im = Image.open(path)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(str(path), None, f"not a readable image ({type(e).__name__})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous
    w, h = im.size
    if w * h > MAX_IMAGE_PIXELS:
        im.close()
        raise DataError(
            str(path),
            None,
            f"declares {w:,} x {h:,} pixels, more than the {MAX_IMAGE_PIXELS:,} "
            "probpose decodes (PROBPOSE_MAX_IMAGE_PIXELS)",
        )
    return im


def _open(path: Path) -> Image.Image:
    """Open and decode an image (its size checked first, see :func:`_header`)."""
    im = _header(path)
    try:
        im.load()
    except (OSError, SyntaxError, ValueError) as e:
        raise DataError(str(path), None, f"not a readable image ({type(e).__name__})") from None
    return im


def _array(im: Image.Image, mode: str) -> np.ndarray:
    """``(H, W, C)`` float32 in [0, 1] in ``mode`` (``RGB`` or ``RGBA``). 16- and 32-bit grey
    images are scaled by their own depth (PIL's ``convert`` would clip them to white)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        full = 65535.0 if im.mode.startswith("I;16") or im.mode == "I" else 1.0
        grey = np.clip(np.asarray(im, dtype=np.float32) / full, 0.0, 1.0)
        planes = [grey] * 3 + ([np.ones_like(grey)] if mode == "RGBA" else [])
        return np.stack(planes, -1)
    return np.asarray(im.convert(mode), dtype=np.float32) / 255.0


def read_rgba(path: Path) -> tuple[Tensor, Tensor]:
    """``(3, H, W)`` RGB premultiplied by alpha and ``(1, H, W)`` alpha, float32 in [0, 1]."""
    t = torch.from_numpy(_array(_open(path), "RGBA")).permute(2, 0, 1)
    return t[:3] * t[3:], t[3:]


def read_rgb(path: Path) -> Tensor:
    """``(3, H, W)`` float32 RGB in [0, 1]."""
    return torch.from_numpy(_array(_open(path), "RGB")).permute(2, 0, 1).contiguous()


class ImageBank:
    """Images read lazily, each decoded once, on first use, and kept as 8-bit ``(3, H, W)`` (a
    quarter of float32's memory): style photographs and backgrounds drawn at random many times."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = list(paths)
        self._decoded: dict[int, Tensor] = {}
        for p in self.paths:  # every header checked now (cheap), before any work is done
            _header(p).close()

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> Tensor:
        """Image ``i`` as ``(3, H, W)`` float32 RGB in [0, 1]."""
        if i not in self._decoded:
            self._decoded[i] = (read_rgb(self.paths[i]) * 255).round().to(torch.uint8)
        return self._decoded[i].float() / 255.0


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
