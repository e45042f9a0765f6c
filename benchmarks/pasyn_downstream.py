"""PASyn's question in miniature: does a keypoint detector trained on synthetic zebras generalise
to new backgrounds better when the frames are stylised?

A small heatmap network (five 3x3 convolutions and an upsampling, 19 heatmaps at a quarter of the
image, about 0.1 M weights, defined here) is trained from scratch on 3000 ``probpose synth``
frames (64x64, the bundled PASyn training leg poses, seed 0, crop framing) in three versions:

- (a) plain renders pasted on a flat background (one random colour per frame);
- (b) renders pasted on random crops of the training photographs (``city``, ``interior``, ``studio``);
- (c) the same frames stylised by the shipped AdaIN decoder (``probpose style apply``, a training
  photograph as the style) and pasted on crops of the training photographs;

and tested on 500 frames of other leg poses (the PASyn test poses), another seed and other cameras
(elevation 5-40 degrees, distance 6-9 m, field of view 30 degrees, 50 cameras), pasted on crops of
the held-out photograph ``night``: once as plain renders, once stylised with ``night`` as the style.
PCK@0.1: a keypoint inside the image counts as found when the prediction is within 0.1 of the larger
side of the animal's bounding box (COCO ``bbox``) of the truth. Predictions: the heatmap's argmax,
refined by a parabola through the log-heat around it. Every network sees the same steps, seeds and
schedule; the spread is over ``--seeds`` training seeds.

    python benchmarks/pasyn_downstream.py --threads 2 --out benchmarks/results/pasyn_downstream_cpu
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn
from torch.nn import functional as F

from probpose.bench import Column, machine_description, markdown_table, set_threads, write_results
from probpose.data import bundled, bundled_images
from probpose.style import apply_style
from probpose.style.images import composite, random_crop, read_rgb, read_rgba, to_uint8
from probpose.style.vgg import load_vgg_weights
from probpose.synthesis import SceneOptions, load_leg_poses, synthesize

SIZE, HEAT = 64, 16
K = 19


def heatmap_net(k: int = K, width: int = 32) -> nn.Sequential:
    """64x64 RGB -> ``k`` heatmaps at 16x16 (stride 4)."""

    def block(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

    return nn.Sequential(
        *block(3, width // 2),
        *block(width // 2, width, 2),
        *block(width, width),
        *block(width, 2 * width, 2),
        *block(2 * width, 2 * width),
        *block(2 * width, 2 * width),
        nn.Conv2d(2 * width, k, 1),
    )


def targets(kp: Tensor, sigma: float = 1.0) -> tuple[Tensor, Tensor]:
    """Gaussian heatmaps ``(N, K, HEAT, HEAT)`` of keypoints ``(N, K, 3)`` (pixels, visibility) and
    their weights ``(N, K)`` (1 where the keypoint is inside the image)."""
    stride = SIZE / HEAT
    centres = (torch.arange(HEAT, dtype=torch.float32) + 0.5) * stride
    dx = (centres.view(1, 1, 1, HEAT) - kp[..., 0, None, None]) / stride
    dy = (centres.view(1, 1, HEAT, 1) - kp[..., 1, None, None]) / stride
    heat = torch.exp(-(dx.square() + dy.square()) / (2 * sigma**2))
    return heat, (kp[..., 2] > 0).float()


def decode(heat: Tensor) -> Tensor:
    """Keypoints ``(N, K, 2)`` in pixels from heatmaps: the argmax, moved along each axis to the
    vertex of the parabola through the log-heat of it and its two neighbours (exact for a Gaussian
    peak; at most one cell; none on the map's border)."""
    n, k, h, w = heat.shape
    idx = heat.reshape(n, k, -1).argmax(-1)
    y, x = idx // w, idx % w
    logh = F.pad(heat.clamp_min(1e-6).log(), (1, 1, 1, 1), value=float("nan"))  # no neighbour: no refinement
    rows = torch.arange(n)[:, None].expand(n, k)
    cols = torch.arange(k)[None].expand(n, k)

    def at(dy: int, dx: int) -> Tensor:
        return logh[rows, cols, y + 1 + dy, x + 1 + dx]

    def vertex(lo: Tensor, mid: Tensor, hi: Tensor) -> Tensor:
        curve = 2 * mid - lo - hi
        ok = (curve > 1e-6) & torch.isfinite(curve)
        return torch.where(ok, 0.5 * (hi - lo) / curve.clamp_min(1e-6), torch.zeros_like(mid)).clamp(-1, 1)

    ox = vertex(at(0, -1), at(0, 0), at(0, 1))
    oy = vertex(at(-1, 0), at(0, 0), at(1, 0))
    stride = SIZE / w
    return torch.stack([(x + 0.5 + ox) * stride, (y + 0.5 + oy) * stride], -1)


def pck(pred: Tensor, kp: Tensor, size: Tensor, threshold: float = 0.1) -> float:
    """The fraction of keypoints inside the image predicted within ``threshold`` x ``size`` ``(N,)``."""
    ok = kp[..., 2] > 0
    dist = (pred - kp[..., :2]).norm(dim=-1)
    return float((dist <= threshold * size[:, None])[ok].float().mean())


def load_frames(folder: Path) -> tuple[Tensor, Tensor]:
    """``(N, 3, H, W)`` premultiplied RGB and ``(N, 1, H, W)`` alpha of a synth (or stylised) folder."""
    pairs = [read_rgba(p) for p in sorted((folder / "frames").iterdir())]
    return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


def ground_truth(folder: Path) -> tuple[Tensor, Tensor]:
    kp = torch.from_numpy(np.load(folder / "keypoints_2d.npy")).float()
    coco = json.loads((folder / "coco.json").read_text())
    size = torch.tensor([max(a["bbox"][2:]) for a in coco["annotations"]], dtype=torch.float32)
    return kp, size


def crops(photos: list[Tensor], n: int, generator: torch.Generator) -> Tensor:
    picks = torch.randint(0, len(photos), (n,), generator=generator).tolist()
    return torch.stack([random_crop(photos[i], SIZE, SIZE, generator) for i in picks])


def train(images: Tensor, kp: Tensor, epochs: int, seed: int, batch: int = 32) -> nn.Module:
    torch.manual_seed(seed)
    net = heatmap_net()
    heat, weight = targets(kp)
    steps = epochs * (-(-len(images) // batch))
    opt = torch.optim.Adam(net.parameters(), 2e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=gen)
        for s in range(0, len(order), batch):
            i = order[s : s + batch]
            loss = ((net(images[i] - 0.5) - heat[i]).square().mean((-2, -1)) * weight[i]).sum() / weight[i].sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return net.eval()


def predict(net: nn.Module, images: Tensor) -> Tensor:
    with torch.no_grad():
        return torch.cat([decode(net(images[s : s + 256] - 0.5)) for s in range(0, len(images), 256)])


def sheet_row(images: Tensor, kp: Tensor | None = None, picks: list[int] | None = None) -> np.ndarray:
    picks = picks or list(range(8))
    tiles = []
    for i in picks:
        tile = to_uint8(images[i]).copy()
        if kp is not None:
            for x, y in kp[i, :, :2].round().long().tolist():
                if 0 <= x < SIZE and 0 <= y < SIZE:
                    tile[y, x] = (0, 255, 0)
        tiles.append(tile)
    return np.concatenate(tiles, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/pasyn_downstream_cpu"))
    ap.add_argument("--train-frames", type=int, default=3000)
    ap.add_argument("--test-frames", type=int, default=500)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--seeds", type=int, default=2, help="training seeds per version")
    ap.add_argument("--model", type=Path, default=None, help="style model (default: the shipped one)")
    ap.add_argument("--vgg", type=Path, default=None)
    args = ap.parse_args()
    threads = set_threads(args.threads)
    weights = load_vgg_weights(args.vgg)
    zebra = {p.name: p for p in bundled("zebra")}
    train_legs, src = load_leg_poses(zebra["train_poses.npz"])
    test_legs, test_src = load_leg_poses(zebra["test_poses.npz"])
    photos = {p.stem: p for p in bundled_images()}
    train_names = ("city", "interior", "studio")
    train_photos = [read_rgb(photos[n]) for n in train_names]
    night = [read_rgb(photos["night"])]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "styles").mkdir()
        for n in train_names:
            shutil.copy(photos[n], tmp / "styles" / photos[n].name)
        synthesize(train_legs[: args.train_frames], tmp / "train", SIZE, SIZE, seed=0, progress=False, source=src)
        other = SceneOptions(
            sequence_frames=10, elevation_min=5, elevation_max=40, distance_min=6, distance_max=9, fov=30
        )
        synthesize(
            test_legs[: args.test_frames],
            tmp / "test",
            SIZE,
            SIZE,
            seed=11,
            scene=other,
            progress=False,
            source=test_src,
        )
        style_args = {"weights": weights, "progress": False}
        apply_style(
            args.model,
            tmp / "train",
            tmp / "styles",
            tmp / "train_styled",
            background=tmp / "styles",
            seed=1,
            **style_args,
        )
        apply_style(
            args.model,
            tmp / "test",
            photos["night"],
            tmp / "test_styled",
            background=photos["night"],
            seed=2,
            **style_args,
        )
        rgb, alpha = load_frames(tmp / "train")
        kp, _ = ground_truth(tmp / "train")
        gen = torch.Generator().manual_seed(3)
        flat = torch.rand(len(rgb), 3, 1, 1, generator=gen).expand(-1, -1, SIZE, SIZE)
        sets = {
            "a": ("plain renders, flat background", composite(rgb, alpha, flat)),
            "b": ("renders on training photographs", composite(rgb, alpha, crops(train_photos, len(rgb), gen))),
            "c": ("stylised, on training photographs", load_frames(tmp / "train_styled")[0]),
        }
        t_rgb, t_alpha = load_frames(tmp / "test")
        t_kp, t_size = ground_truth(tmp / "test")
        tests = {
            "plain": composite(t_rgb, t_alpha, crops(night, len(t_rgb), gen)),
            "styled": load_frames(tmp / "test_styled")[0],
        }
        synth_seconds = time.perf_counter() - start
        rows, train_seconds = [], []
        for key, (label, images) in sets.items():
            scores: dict[str, list[float]] = {t: [] for t in tests}
            for seed in range(args.seeds):
                t0 = time.perf_counter()
                net = train(images, kp, args.epochs, seed)
                train_seconds.append(time.perf_counter() - t0)
                for t, test in tests.items():
                    scores[t].append(pck(predict(net, test), t_kp, t_size))
            rows.append(
                {
                    "version": f"({key}) {label}",
                    **{f"pck_{t}": statistics.mean(v) for t, v in scores.items()},
                    **{f"spread_{t}": (min(v), max(v)) for t, v in scores.items()},
                    "scores": scores,
                }
            )
            print(rows[-1])
        args.out.mkdir(parents=True, exist_ok=True)
        picks = list(range(0, 8 * 25, 25))
        sheet = np.concatenate(
            [sheet_row(sets[k][1], kp, picks) for k in "abc"] + [sheet_row(tests[t], t_kp, picks) for t in tests], 0
        )
        Image.fromarray(sheet).resize((sheet.shape[1] * 2, sheet.shape[0] * 2), Image.NEAREST).save(
            args.out / "pasyn_downstream_frames.png"
        )
    fmt = "{:.3f}"

    def cell(t: str):
        return lambda r: f"{r[f'pck_{t}']:.3f} ({r[f'spread_{t}'][0]:.3f}-{r[f'spread_{t}'][1]:.3f})"

    table = markdown_table([
        Column("version", "training frames (3000)"),
        Column("pck_plain", "PCK@0.1, test renders on the held-out photo", cell("plain")),
        Column("pck_styled", "PCK@0.1, test stylised (held-out photo) on it", cell("styled")),
    ], rows)  # fmt: skip
    del fmt
    intro = (
        f"A {sum(p.numel() for p in heatmap_net().parameters()):,}-weight heatmap network trained from "
        f"scratch for {args.epochs} epochs (batch 32, Adam, one-cycle lr 2e-3) on {args.train_frames} "
        f"64x64 frames; tested on {args.test_frames} frames of the PASyn test leg poses, seed 11, other "
        "cameras (elevation 5-40 degrees, 6-9 m, field of view 30 degrees), on crops of the held-out "
        f"photograph. Mean over {args.seeds} training seeds (min-max in brackets). Style: "
        f"{'the shipped decoder' if args.model is None else args.model.name}; encoder {weights.source}. "
        f"Frames made in {synth_seconds:.0f} s; {statistics.median(train_seconds):.0f} s per network "
        f"(median), {threads} thread(s). Contact sheet pasyn_downstream_frames.png: rows (a), (b), (c) "
        "training frames, then the two test sets, keypoints in green."
    )
    write_results(
        args.out,
        "pasyn_downstream",
        "PASyn downstream: a keypoint network on synthetic frames",
        intro,
        table,
        {"rows": rows, "epochs": args.epochs, "seeds": args.seeds, "threads": threads, "train_seconds": train_seconds},
        machine_description("cpu"),
    )
    print(table)


if __name__ == "__main__":
    main()
