"""Keypoint ground truth from an animation and its renders: 2D keypoints with COCO visibility,
PASyn's ``blender_gt`` layout, and a COCO keypoints annotation file.

Visibility (COCO): 0 = outside the image (or behind the camera); 2 = seen: the ray from the
camera through the keypoint first meets the keypoint's own body part (its bone, or a bone joined
at the keypoint) or a surface no nearer than the keypoint's own body radius in front of it, *and*
the pixel that contains the keypoint is not transparent in the render; 1 = inside the image but
not seen: another part of the body is in front of it, or its pixel shows nothing (a keypoint on a
limb thinner than a pixel, at this resolution).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from probpose.kinematics.camera import Camera
from probpose.kinematics.forward import Posed
from probpose.kinematics.rig import Rig
from probpose.synthesis.render import Frames, cast_rays

__all__ = ["keypoints_2d", "blender_gt", "coco_annotations", "COCO_LICENCE_NOTE"]

COCO_LICENCE_NOTE = (
    "Leg poses come from (or from a model trained on) the PASyn zebra pose data, "
    "ostadabbas/Prior-aware-Synthetic-Data-Generation-PASyn-, which states 'non-commercial purpose only'."
)


def keypoints_2d(rig: Rig, posed: Posed, cam: Camera, frames: Frames) -> tuple[Tensor, Tensor]:
    """Keypoints of ``N`` posed, filmed and rendered frames: (``(N, K, 3)`` pixels x, y (origin
    top-left, y down, sub-pixel) and COCO visibility; ``(N, K, 3)`` world positions in metres)."""
    world = rig.keypoints_of(posed)
    pix, z = cam.project(world)
    x, y = pix[..., 0], pix[..., 1]
    w, h = cam.width, cam.height
    inside = (z > 0) & (x >= 0) & (x < w) & (y >= 0) & (y < h)
    safe = torch.where(inside.unsqueeze(-1), pix, torch.full_like(pix, 0.5))
    front_depth, front_bone = cast_rays(rig, posed, cam, safe)
    i = x.floor().long().clamp(0, w - 1)
    j = y.floor().long().clamp(0, h - 1)
    f = torch.arange(len(x), device=x.device).unsqueeze(1)
    drawn = frames.rgba[f, j, i, 3] > 0
    owners = torch.zeros(len(rig.keypoints), rig.num_bones, dtype=torch.bool, device=x.device)
    _, radii = rig.ellipsoids
    tol = torch.zeros(len(rig.keypoints), dtype=z.dtype, device=x.device)
    for k, bones in enumerate(rig.keypoint_owners):
        owners[k, list(bones)] = True
        tol[k] = max(float(radii[b, [0, 2]].max()) for b in bones)
    kidx = torch.arange(len(rig.keypoints), device=x.device).expand_as(front_bone)
    own = owners[kidx, front_bone.clamp_min(0)] & (front_bone >= 0)
    seen = drawn & (front_bone >= 0) & (own | (front_depth.to(z) >= z - tol))
    vis = torch.where(inside, torch.where(seen, 2, 1), 0).to(z)
    return torch.stack([x, y, vis], -1), world


def blender_gt(keypoints: Tensor, width: int, height: int) -> np.ndarray:
    """PASyn-v2's ``blender_gt.npy`` layout ``(N, 2K)`` int64 from keypoints ``(N, K, >=2)`` (pixels,
    origin top-left): with normalised view coordinates ``u = x / W``, ``v = 1 - y / H`` (Blender's
    ``world_to_camera_view``, origin bottom-left), ``x_gt = round(u * W)``, ``y_gt = H - round(v * H)``,
    rounding half to even as Python's ``round`` does. No visibility, as in PASyn."""
    kp = keypoints[..., :2].detach().cpu().double().numpy()
    u = kp[..., 0] / width
    v = 1.0 - kp[..., 1] / height
    gx = np.round(u * width)
    gy = height - np.round(v * height)
    return np.stack([gx, gy], -1).reshape(len(kp), -1).astype(np.int64)


def coco_annotations(
    rig: Rig,
    keypoints: Tensor,
    boxes: np.ndarray,
    areas: np.ndarray,
    file_names: list[str],
    sequence: Tensor,
    description: str,
    width: int,
    height: int,
    crop: Tensor | None = None,
) -> dict:
    """A COCO keypoints dataset: one image and one annotation per frame.

    ``keypoints`` ``(N, K, 3)`` (pixels, visibility) become ``[x, y, v]`` triples, with ``x = y = 0``
    where ``v = 0`` as COCO specifies; ``boxes`` ``(N, 4)`` ``[x, y, w, h]`` and ``areas`` ``(N,)``
    (pixels) are the rendered silhouette's; the category lists the keypoint names and the skeleton
    edges (1-based). ``crop`` ``(N, 4)`` (x0, y0, x1, y1), if given, is recorded per image as
    ``crop_window``: the window of the tracking camera's image (its pixels) that the frame shows."""
    kp = keypoints.detach().cpu().double().numpy()
    images, annotations = [], []
    for n in range(len(kp)):
        image = {
            "id": n + 1,
            "file_name": file_names[n],
            "width": int(width),
            "height": int(height),
            "frame": n,
            "sequence": int(sequence[n]),
        }
        if crop is not None:
            image["crop_window"] = [round(float(c), 3) for c in crop[n]]
        images.append(image)
        v = kp[n, :, 2].astype(np.int64)
        xy = np.where(v[:, None] > 0, kp[n, :, :2], 0.0)
        triples = []
        for (x, y), vis in zip(xy.tolist(), v.tolist(), strict=True):
            triples += [round(x, 3), round(y, 3), vis]
        annotations.append(
            {
                "id": n + 1,
                "image_id": n + 1,
                "category_id": 1,
                "iscrowd": 0,
                "keypoints": triples,
                "num_keypoints": int((v > 0).sum()),
                "bbox": [int(b) for b in boxes[n]],
                "area": int(areas[n]),
            }
        )
    category = {
        "id": 1,
        "name": "zebra",
        "supercategory": "animal",
        "keypoints": [k.name for k in rig.keypoints],
        "skeleton": [[a + 1, b + 1] for a, b in rig.keypoint_edges],
    }
    return {
        "info": {"description": description, "version": "1.0", "contributor": "probpose synth"},
        "licenses": [{"id": 1, "name": "non-commercial (PASyn zebra poses)", "url": "", "note": COCO_LICENCE_NOTE}],
        "images": images,
        "annotations": annotations,
        "categories": [category],
    }
