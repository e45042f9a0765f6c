"""A contact sheet of rendered frames with their keypoints and skeleton drawn on top."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from probpose.kinematics.rig import Rig

__all__ = ["contact_sheet"]

VISIBLE, OCCLUDED = (40, 220, 60), (255, 150, 0)


def contact_sheet(
    rig: Rig,
    rgba: np.ndarray,
    keypoints: np.ndarray,
    frames: list[int],
    columns: int = 4,
    cell: int = 192,
    background: tuple[int, int, int] = (96, 104, 112),
    labels: list[int] | None = None,
) -> Image.Image:
    """``rgba`` ``(N, H, W, 4)`` uint8 and ``keypoints`` ``(N, K, 3)`` (pixels, visibility) -> an RGB
    sheet of the chosen ``frames``, each scaled (nearest neighbour) to about ``cell`` pixels, over a
    flat background; green dots: visible keypoints, orange: occluded, none: outside the image.
    ``labels``: the frame numbers to print on the tiles (default: ``frames``)."""
    labels = list(frames) if labels is None else labels
    h, w = rgba.shape[1:3]
    scale = max(1, round(cell / max(h, w)))
    cw, ch = w * scale, h * scale
    rows = (len(frames) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * cw, rows * ch), background)
    for n, f in enumerate(frames):
        img = Image.fromarray(rgba[f], "RGBA").resize((cw, ch), Image.Resampling.NEAREST)
        tile = Image.new("RGB", (cw, ch), background)
        tile.paste(img, (0, 0), img)
        draw = ImageDraw.Draw(tile)
        kp = keypoints[f]
        for a, b in rig.keypoint_edges:
            if kp[a, 2] > 0 and kp[b, 2] > 0:
                draw.line(
                    [(kp[a, 0] * scale, kp[a, 1] * scale), (kp[b, 0] * scale, kp[b, 1] * scale)],
                    fill=(230, 60, 60),
                    width=max(1, scale // 3),
                )
        r = max(2, scale // 2)
        for x, y, v in kp:
            if v > 0:
                colour = VISIBLE if v == 2 else OCCLUDED
                draw.ellipse([x * scale - r, y * scale - r, x * scale + r, y * scale + r], fill=colour)
        draw.text((4, 2), f"frame {labels[n]}", fill=(255, 255, 255))
        sheet.paste(tile, ((n % columns) * cw, (n // columns) * ch))
    return sheet
