"""``probpose synth``: leg poses -> animated, filmed, rendered zebra frames with keypoint ground
truth, 3D joints, cameras, poses, a COCO file, a BVH, a preview and a manifest, in one folder.

The folder is written beside its destination under a temporary name and renamed when complete, so
a failure or an interruption leaves no partial output (and an existing folder untouched).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from probpose import __version__
from probpose.data.formats.pasyn import axis_angle_to_pasyn, check_pasyn_degrees, load_pasyn, pasyn_to_axis_angle
from probpose.data.npz import read_npy
from probpose.errors import CheckpointError, DataError, ProbposeError
from probpose.files import atomic_folder, check_output_folder, input_file, json_text, sha256
from probpose.kinematics.camera import Camera
from probpose.kinematics.forward import Posed
from probpose.kinematics.rig import ZEBRA_RIG, Rig
from probpose.options import MAX_COUNT, MAX_PIXELS, MAX_SEED, check_device, option, validate
from probpose.plots import spread_frames
from probpose.progress import Progress
from probpose.rotations import canonical_axis_angle, matrix_to_axis_angle
from probpose.synthesis.animation import SceneOptions, animate
from probpose.synthesis.bvh import write_bvh
from probpose.synthesis.groundtruth import COCO_LICENCE_NOTE, blender_gt, coco_annotations, keypoints_2d
from probpose.synthesis.preview import contact_sheet
from probpose.synthesis.render import render

__all__ = ["LegSource", "load_leg_poses", "legs_from_model", "synthesize", "SynthResult", "SynthRequest", "run_synth"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LegSource:
    """Where the leg poses came from (recorded in the manifest)."""

    kind: Literal["file", "model"]
    path: str
    sha256: str
    layout: str


@dataclass(frozen=True)
class SynthResult:
    out: Path
    n_frames: int
    seconds: float
    inside_fraction: float
    visibility: dict[int, int]


def load_leg_poses(path: str | Path, rig: Rig = ZEBRA_RIG) -> tuple[Tensor, LegSource]:
    """Leg poses from a file -> (``(n, L, 3)`` float64 axis-angle radians, source).

    Accepted: ``.npy`` of PASyn Euler angles in degrees (``(n, 36)``, or ``(n, 39)`` with PASyn's
    three placeholder columns first), or probpose's ``(n, L, 3)`` axis-angle radians (what
    ``probpose sample`` writes); a PASyn ``.npz`` with ``poses`` ``(n, 39)``/``(n, 36)`` degrees.
    PASyn angles compose ``R = Rz Ry Rx`` in the bone's frame."""
    p = input_file(path, "leg poses")
    nl = rig.legs.num_joints
    if p.suffix == ".npz":
        ps = load_pasyn(p)
        if list(ps.skeleton.joint_names) != list(rig.legs.joint_names):
            raise DataError(str(p), "poses", "not PASyn zebra leg poses")
        return torch.from_numpy(ps.poses).double(), LegSource("file", p.name, sha256(p), "pasyn npz, degrees")
    if p.suffix != ".npy":
        raise DataError(str(p), None, "expected a .npy or PASyn .npz file of leg poses")
    arr = read_npy(p)
    expected = (
        f"(n, {3 * nl}) PASyn Euler degrees, (n, {3 * nl + 3}) with PASyn's placeholder columns, "
        f"or (n, {nl}, 3) axis-angle radians"
    )
    if not np.issubdtype(arr.dtype, np.floating) and not np.issubdtype(arr.dtype, np.integer):
        raise DataError(str(p), None, f"expected numbers, got dtype {arr.dtype}")
    if len(arr) == 0:
        raise DataError(str(p), None, "holds no poses")
    if not np.all(np.isfinite(arr)):
        raise DataError(str(p), None, "holds NaN or infinite values")
    if arr.ndim == 2 and arr.shape[1] in (3 * nl, 3 * nl + 3):
        euler = arr[:, -3 * nl :].astype(np.float64).reshape(len(arr), nl, 3)
        check_pasyn_degrees(euler, p)
        if np.abs(euler).max() <= np.pi + 1e-6:
            log.warning("%s: every angle is within +-pi: PASyn angles are degrees; are these radians?", p)
        legs = torch.from_numpy(pasyn_to_axis_angle(euler)).double()
        return legs, LegSource("file", p.name, sha256(p), f"pasyn {arr.shape[1]} columns, degrees")
    if arr.ndim == 3 and arr.shape[1:] == (nl, 3):
        angle = np.linalg.norm(arr.astype(np.float64), axis=-1)
        if angle.max() > 2 * np.pi + 1e-6:
            row = int(np.flatnonzero(angle.max(-1) > 2 * np.pi + 1e-6)[0])
            raise DataError(
                str(p),
                None,
                f"row {row}: axis-angle rotations of {angle.max():.4g} radians, more than "
                "a full turn (2 pi): not axis-angle radians",
            )
        legs = canonical_axis_angle(torch.from_numpy(arr.astype(np.float64)))
        return legs, LegSource("file", p.name, sha256(p), "axis-angle radians")
    raise DataError(str(p), None, f"shape {arr.shape}: expected {expected}")


def legs_from_model(
    path: str | Path, n_frames: int, generator: torch.Generator, step: float = 0.05, rig: Rig = ZEBRA_RIG
) -> tuple[Tensor, LegSource]:
    """A smooth leg-pose sequence ``(n_frames, L, 3)`` from a trained leg-VAE checkpoint."""
    from probpose.models import LatentPoseModel, check_latent_step, load_model  # lazy: the models stack is heavy

    check_latent_step(step)
    p = Path(path)
    model = load_model(p)
    names = list(model.modelled_names)
    if names != list(rig.legs.joint_names):
        raise CheckpointError(
            str(p),
            "joints",
            f"not a zebra leg model: it models {len(names)} joints "
            f"({', '.join(names[:4])}{', ...' if len(names) > 4 else ''}); synth needs the {rig.legs.num_joints} "
            f"PASyn leg joints ({', '.join(rig.legs.joint_names[:3])}, ...)",
        )
    if not isinstance(model, LatentPoseModel):
        raise CheckpointError(
            str(p),
            "model_name",
            f"{type(model).__name__} is not a VAE: synth draws a smooth latent sequence; "
            "sample poses with `probpose sample` and pass them as `poses`",
        )
    model.eval()
    with torch.no_grad():
        legs = model.sequence(n_frames, step=step, mode="walk", generator=generator)
    source = LegSource("model", p.name, sha256(p), "leg VAE sequence")
    return canonical_axis_angle(legs.detach().double().cpu()), source


def _write_png(path: Path, rgba: np.ndarray) -> None:
    Image.fromarray(rgba, "RGBA").save(path, compress_level=1)


def _save(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as fh:
        np.save(fh, array)


FILES = {
    "frames/NNNNNN.png": "RGBA renders, transparent background",
    "keypoints_2d.npy": "(N, 19, 3) float32: x, y in pixels (origin top-left corner, y down), COCO visibility",
    "blender_gt.npy": "(N, 38) int64: PASyn-v2's layout, x = round(u W), y = H - round(v H), 19 keypoints",
    "keypoints_3d.npy": "(N, 19, 3) float32 world positions of the keypoints (metres)",
    "joints_3d.npy": "(N, 27, 3) float32 world positions of the 27 bones' heads (pivots; metres)",
    "cameras.npz": "K (N, 3, 3), R (N, 3, 3), t (N, 3): X_cam = R X_world + t (OpenCV); "
    "width, height, fps, sequence (N,); framing; scene_K (N, 3, 3) the tracking camera's intrinsics and "
    "crop (N, 4) the window (x0, y0, x1, y1) of its image that K frames (K = crop_intrinsics(scene_K, crop, width))",
    "poses.npy": "(N, 12, 3) float32 leg joint rotations, axis-angle radians, PASyn leg order",
    "poses_pasyn.npy": "(N, 36) float64 leg Euler angles in degrees, (x, y, z) per joint, R = Rz Ry Rx (PASyn)",
    "rig_pose.npz": "rotations (N, 27, 3) every bone's local axis-angle (radians, in its rest frame); "
    "root_rotation (N, 3) axis-angle, root_position (N, 3) metres: model -> world",
    "coco.json": "COCO keypoints: images, annotations (keypoints, num_keypoints, bbox, area), categories",
    "animation.bvh": "the whole rig, BVH, metres, y up, Zrotation Yrotation Xrotation",
    "preview.png": "contact sheet of frames with keypoints (green visible, orange occluded) and bones",
    "manifest.json": "this description",
}


def synthesize(
    legs: Tensor,
    out: str | Path,
    width: int = 64,
    height: int = 64,
    seed: int = 0,
    scene: SceneOptions | None = None,
    texture: Literal["stripes", "plain"] = "stripes",
    device: str | torch.device = "cpu",
    overwrite: bool = False,
    source: LegSource | None = None,
    rig: Rig = ZEBRA_RIG,
    progress: bool = True,
) -> SynthResult:
    """Animate, film, render and label ``legs`` ``(N, L, 3)`` (axis-angle radians) into ``out``.

    The animation (paths, non-leg motion, cameras) is drawn from ``torch.Generator`` seeded with
    ``seed``: the same inputs give the same arrays and images."""
    start = time.perf_counter()
    if width < 1 or height < 1:
        raise ProbposeError(f"image size must be positive, got {width}x{height}")
    if width * height > MAX_PIXELS:
        limit = f"{MAX_PIXELS:,} pixels a frame (probpose.options.MAX_PIXELS)"
        raise ProbposeError(f"image size {width}x{height} exceeds {limit}")
    if legs.ndim != 3 or len(legs) < 1 or legs.shape[1:] != (rig.legs.num_joints, 3):
        raise ProbposeError(f"legs must be (N >= 1, {rig.legs.num_joints}, 3), got {tuple(legs.shape)}")
    device = torch.device(check_device(device))
    out = check_output_folder(out, overwrite=overwrite)
    scene = scene or SceneOptions()
    gen = torch.Generator().manual_seed(seed)
    n = len(legs)
    anim = animate(rig, legs.double().cpu(), width, height, scene, gen)
    with atomic_folder(out, overwrite=overwrite) as tmp:
        (tmp / "frames").mkdir()
        names = [f"frames/{i:06d}.png" for i in range(n)]
        preview_at = spread_frames(n, 12)
        kp2d = torch.empty(n, len(rig.keypoints), 3, dtype=torch.float64)
        kp3d = torch.empty(n, len(rig.keypoints), 3, dtype=torch.float64)
        boxes = np.zeros((n, 4), dtype=np.int64)
        areas = np.zeros(n, dtype=np.int64)
        preview_rgba = {}
        chunk = max(1, (1 << 19) // (width * height))
        posed_dev = Posed(anim.posed.rotations.to(device), anim.posed.positions.to(device))
        cam = anim.camera
        bar = Progress(n, "synth", unit="frame", enabled=progress)
        with ThreadPoolExecutor(max_workers=2) as pool, bar:
            pending: list[Future] = []
            for s in range(0, n, chunk):
                sl = slice(s, min(n, s + chunk))
                cam_s = Camera(cam.K[sl].to(device), cam.R[sl].to(device), cam.t[sl].to(device), width, height)
                posed_s = Posed(posed_dev.rotations[sl], posed_dev.positions[sl])
                frames = render(rig, posed_s, cam_s, texture=texture)
                k2, k3 = keypoints_2d(rig, posed_s, cam_s, frames)
                kp2d[sl], kp3d[sl] = k2.cpu(), k3.cpu()
                rgba = frames.rgba.cpu().numpy()
                alpha = rgba[..., 3] > 0
                for i in range(len(rgba)):
                    rows, cols = np.nonzero(alpha[i])
                    if len(rows):
                        x0, y0 = cols.min(), rows.min()
                        boxes[s + i] = (x0, y0, cols.max() + 1 - x0, rows.max() + 1 - y0)
                        areas[s + i] = len(rows)
                    if s + i in preview_at:
                        preview_rgba[s + i] = rgba[i]
                for f in pending:
                    f.result()
                pending = [pool.submit(_write_png, tmp / names[s + i], rgba[i]) for i in range(len(rgba))]
                bar.update(len(rgba))
            for f in pending:
                f.result()
        kp2d_np = kp2d.float().numpy()
        _save(tmp / "keypoints_2d.npy", kp2d_np)
        _save(tmp / "blender_gt.npy", blender_gt(kp2d, width, height))
        _save(tmp / "keypoints_3d.npy", kp3d.float().numpy())
        _save(tmp / "joints_3d.npy", anim.posed.positions.float().cpu().numpy())
        np.savez(
            tmp / "cameras.npz",
            K=cam.K.cpu().numpy(),
            R=cam.R.cpu().numpy(),
            t=cam.t.cpu().numpy(),
            width=np.int64(width),
            height=np.int64(height),
            fps=np.float64(scene.fps),
            sequence=anim.sequence.cpu().numpy(),
            framing=np.str_(scene.framing),
            scene_K=anim.scene_K.cpu().numpy(),
            crop=anim.crop.cpu().numpy(),
        )
        _save(tmp / "poses.npy", anim.legs.float().cpu().numpy())
        _save(tmp / "poses_pasyn.npy", axis_angle_to_pasyn(anim.legs.cpu()).reshape(n, -1).numpy())
        np.savez(
            tmp / "rig_pose.npz",
            rotations=matrix_to_axis_angle(anim.rotations.cpu()).float().numpy(),
            root_rotation=matrix_to_axis_angle(anim.root_rotation.cpu()).float().numpy(),
            root_position=anim.root_position.float().cpu().numpy(),
        )
        coco = coco_annotations(
            rig,
            kp2d,
            boxes,
            areas,
            names,
            anim.sequence.cpu(),
            f"probpose synth: {n} frames of the {rig.name} rig, {width}x{height}, seed {seed}, framing {scene.framing}",
            width,
            height,
            anim.crop.cpu(),
        )
        (tmp / "coco.json").write_text(json.dumps(coco))
        write_bvh(tmp / "animation.bvh", rig, anim.posed, scene.fps)
        picks = [f for f in preview_at if f in preview_rgba]
        sheet = contact_sheet(
            rig, np.stack([preview_rgba[f] for f in picks]), kp2d_np[picks], list(range(len(picks))), labels=picks
        )
        sheet.save(tmp / "preview.png")
        vis = kp2d_np[..., 2].astype(np.int64)
        counts = {v: int((vis == v).sum()) for v in (0, 1, 2)}
        inside = float((vis > 0).mean())
        manifest = {
            "probpose_version": __version__,
            "frames": n,
            "width": width,
            "height": height,
            "fps": scene.fps,
            "seed": seed,
            "texture": texture,
            "sequences": int(anim.sequence.max()) + 1,
            "leg_source": dataclasses.asdict(source) if source else None,
            "scene": dataclasses.asdict(scene),
            "rig": {
                "name": rig.name,
                "bones": list(rig.names),
                "parents": list(rig.skeleton.parents),
                "leg_joints": list(rig.legs.joint_names),
                "units": "metres",
                "proportions": "chosen (a plains zebra of about 1.3 m at the withers), not measured",
            },
            "keypoints": [k.name for k in rig.keypoints],
            "skeleton_edges": [list(e) for e in rig.keypoint_edges],
            "conventions": {
                "world": "metres, y up, ground plane y = 0",
                "camera": "OpenCV pinhole: x right, y down, z forward; X_cam = R X_world + t",
                "pixels": "origin at the top-left corner of the top-left pixel, y down, sub-pixel floats",
                "visibility": "COCO: 0 outside the image, 1 inside but occluded (depth and bone buffers), 2 visible",
                "leg_rotations": "axis-angle radians in each bone's rest frame; "
                "PASyn columns (x, y, z) degrees, R = Rz Ry Rx",
            },
            "visibility_counts": counts,
            "inside_fraction": inside,
            "files": FILES,
            "licence": COCO_LICENCE_NOTE,
        }
        (tmp / "manifest.json").write_text(json_text(manifest) + "\n")
    seconds = time.perf_counter() - start
    log.info("synth: %d frames %dx%d in %.1f s (%.0f frames/s)", n, width, height, seconds, n / seconds)
    return SynthResult(Path(out), n, seconds, inside, counts)


@dataclass
class SynthRequest:
    """One synthesis job, as ``probpose synth`` takes it: leg poses from a file (``poses``) or a leg
    VAE's smooth latent walk (``model``), ``n_frames`` of them (default: every pose of the file;
    3000 from a model), rendered ``width`` x ``height`` pixels into the folder ``out``. Scene
    settings (``fps``, ``sequence_frames``, ``fov`` in degrees, ``framing``, ``fill_min`` and
    ``fill_max``) are :class:`SceneOptions`'; ``step`` is the latent step per frame in (0, 1)."""

    out: Path
    poses: Path | None = None
    model: Path | None = None
    n_frames: int | None = option(None, ge=1, le=MAX_COUNT)
    width: int = option(64, ge=1)
    height: int = option(64, ge=1)
    overwrite: bool = False
    seed: int = option(0, ge=0, le=MAX_SEED)
    texture: Literal["stripes", "plain"] = "stripes"
    device: str = "cpu"
    step: float = 0.05
    scene: SceneOptions = dataclasses.field(default_factory=SceneOptions)

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if (self.poses is None) == (self.model is None):
            raise ProbposeError("give leg poses (`poses`) or a leg VAE (`model`), not both or neither")
        validate(self)  # the frame's pixel count is checked by synthesize, the one place for it

    @property
    def source(self) -> Path:
        return Path(self.poses if self.poses is not None else self.model)  # type: ignore[arg-type]


def run_synth(request: SynthRequest) -> SynthResult:
    """Read the leg poses (or walk the VAE's latent space) and :func:`synthesize` them; the output
    folder and the device are checked before any work."""
    r = request
    check_output_folder(r.out, [r.source], overwrite=r.overwrite)
    check_device(r.device)
    if r.poses is not None:
        legs, source = load_leg_poses(r.poses)
        n = r.n_frames or len(legs)
        if n > len(legs):
            raise DataError(
                str(r.poses),
                None,
                f"holds {len(legs)} poses; `n_frames` {n} asks for more (give at most that many, or leave it unset)",
            )
        legs = legs[:n]
    else:
        gen = torch.Generator().manual_seed(r.seed)
        legs, source = legs_from_model(r.source, r.n_frames or 3000, gen, step=r.step)
    return synthesize(
        legs,
        r.out,
        width=r.width,
        height=r.height,
        seed=r.seed,
        scene=r.scene,
        texture=r.texture,
        device=r.device,
        overwrite=r.overwrite,
        source=source,
    )
