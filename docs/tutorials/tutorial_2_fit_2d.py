"""
Fit SMPL-X poses from 2D keypoints
==================================

A camera sees a person; a keypoint detector gives 2D joints in pixels, and misses the left arm. We
fit the SMPL-X body pose (21 joint rotations), the global orientation and translation to those
keypoints inside a Pyro model whose pose is drawn from a shipped prior, first by MAP, then with a
posterior (the Laplace approximation at the MAP) that says how sure the fit is about each joint.

The people are the bundled CMU motion capture's held-out subjects, posed through the approximate
SMPL-X rest skeleton, so the truth is known and the error can be measured.
"""

# %%
# Observations: keypoints of held-out poses
# -----------------------------------------
import math
import tempfile

import matplotlib.pyplot as plt
import torch

from probpose.data import prepare_data
from probpose.fitting import Keypoints2D, PoseFit, fit_map, fit_posterior, make_body
from probpose.fitting.sheets import fit_sheet
from probpose.kinematics import intrinsics, look_at
from probpose.models import load_model

prior = load_model("cmu/gaussian_full")
body = make_body("smplx", prior.modelled_names)  # forward kinematics: 21 rotations -> 55 points (m)
with tempfile.TemporaryDirectory() as tmp:
    held_out = prepare_data(bundled="cmu", workdir=tmp).test
frames = torch.linspace(0, len(held_out) - 1, 6).round().long()
truth = held_out[frames].double()  # (6, 21, 3) radians

g = torch.Generator().manual_seed(0)
orient = 0.3 * torch.randn(6, 3, generator=g, dtype=torch.float64)  # a random global rotation
transl = torch.zeros(6, 3, dtype=torch.float64)
points = body.points(truth, orient, transl)  # (6, 55, 3) metres

R, t = look_at(torch.tensor([0.0, 0.0, 3.0], dtype=torch.float64), torch.zeros(3, dtype=torch.float64))
K = intrinsics(1000, 1000, 2 * math.degrees(math.atan(500 / 1000)))  # 1000 px focal length
camera = Keypoints2D(torch.zeros(6, 55, 2), torch.ones(6, 55), K, R, t)
pixels = camera.predict(points) + 2.0 * torch.randn(6, 55, 2, generator=g, dtype=torch.float64)

left_arm = [i for i, n in enumerate(body.point_names) if n.startswith("left_") and
            any(k in n for k in ("elbow", "wrist", "index", "middle", "ring", "pinky", "thumb"))]  # fmt: skip
confidence = torch.ones(6, 55, dtype=torch.float64)
confidence[:, left_arm] = 0.0  # the detector missed the left arm
obs = Keypoints2D(
    pixels, confidence, K, R, t, sigma=2.0,  # Student-t noise of 2 px
    init_orient=orient + 0.1 * torch.randn(6, 3, generator=g, dtype=torch.float64),  # a rough root
    init_transl=transl + 0.05 * torch.randn(6, 3, generator=g, dtype=torch.float64),
)  # fmt: skip
print(f"{len(left_arm)} of 55 points unseen in every frame")

# %%
# MAP with and without the prior
# ------------------------------
# ``PoseFit`` is a Pyro model: ``pose ~ prior`` (or a flat prior with ``None``), the root, and the
# keypoints' likelihood in a plate over frames. ``fit_map`` maximises its log joint (L-BFGS per
# frame, each frame stopping on its own).
fits = {}
for name, p in (("no prior", None), ("cmu/gaussian_full", prior)):
    fit = PoseFit(p, body, obs, joint_names=prior.modelled_names)
    fits[name] = (fit, fit_map(fit, steps=150))


def hidden_mm(result) -> float:
    """Mean 3D error of the unseen arm's points, mm (after the fitted root)."""
    pts = body.points(result.pose.double(), result.orient.double(), result.transl.double())
    return 1000 * (pts[:, left_arm] - points[:, left_arm]).norm(dim=-1).mean().item()


for name, (_, res) in fits.items():
    print(f"{name}: unseen arm {hidden_mm(res):.0f} mm, keypoint residual {res.residual.mean():.2f} px")

# %%
# The fit's sheet: the fitted body as sticks over the keypoints it was given (dots), the missed
# ones as red crosses (the same picture ``probpose fit --sheet`` draws).
fit, res = fits["cmu/gaussian_full"]
with tempfile.TemporaryDirectory() as tmp:
    sheet = fit_sheet(body, res, obs, f"{tmp}/fit.png", title="MAP with cmu/gaussian_full")
    image = plt.imread(sheet)
fig, ax = plt.subplots(figsize=(10, 4))
ax.imshow(image)
ax.axis("off")
fig.tight_layout()

# %%
# How sure is the fit? The posterior
# ----------------------------------
# The Laplace approximation at the MAP (a Gaussian from the exact Hessian of the log joint, per
# frame) is cheap and, on these tasks, agrees with NUTS (see the fitting how-to's calibration
# table). Its per-joint spread shows what the keypoints pin down and what only the prior knows.
post_result = fit_posterior(fit, guide="laplace", map_steps=150, samples=200)
post = post_result.posterior
assert post is not None
spread = post.std_deg.mean(0)  # (21,) degrees, mean over frames
names = list(prior.modelled_names)
fig, ax = plt.subplots(figsize=(7, 3.4))
colours = ["C3" if n in ("left_elbow", "left_wrist") else "C0" for n in names]
ax.bar(range(len(names)), spread.numpy(), color=colours)
ax.set_xticks(range(len(names)), names, rotation=70, fontsize=7)
ax.set_ylabel("posterior std (deg)")
ax.set_title("Laplace posterior per joint (red: joints moving unseen points)")
fig.tight_layout()
covered = post.covers(truth.to(post.mean)).double().mean().item()
print(f"90% balls cover the true rotation for {100 * covered:.0f}% of the joints")
