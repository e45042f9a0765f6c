"""
A pose prior inside your Pyro model
===================================

A shipped prior is a Pyro distribution over SMPL-X body poses: ``(21, 3)`` axis-angle rotations in
radians, one row per joint, with an exact ``log_prob`` in nats. This tutorial scores real poses
with it, looks at which joints cost the most, and then uses it as the prior of a latent pose in a
model of our own: six noisy joints of a person are observed and the rest is inferred, first by
SVI, then by NUTS, both in the flow's base space through Pyro's ``TransformReparam``.

The poses are the bundled CMU motion capture's held-out subjects (performers no shipped prior was
trained on).
"""

# %%
# The prior and some poses it has never seen
# -------------------------------------------
import tempfile

import matplotlib.pyplot as plt
import pyro
import pyro.distributions as dist
import torch
from pyro.infer import MCMC, NUTS, SVI, Trace_ELBO
from pyro.infer.autoguide import AutoNormal, init_to_value
from pyro.infer.reparam import TransformReparam

from probpose.data import prepare_data
from probpose.models import load_model
from probpose.rotations import axis_angle_to_matrix, geodesic_distance

flow_model = load_model("cmu/global_flow_spline")  # an nn.Module: frozen weights, eval mode
gaussian_model = load_model("cmu/gaussian_full")
names = flow_model.modelled_names  # the 21 SMPL-X body joints, in SMPL-X's order

with tempfile.TemporaryDirectory() as tmp:
    data = prepare_data(bundled="cmu", workdir=tmp)  # whole subjects held out for the test split
held_out = data.test  # (4340, 21, 3) float32 radians
print(f"{len(held_out)} held-out poses of {len(names)} joints")

# %%
# ``flow_model()`` is the distribution: a ``TransformedDistribution`` (standard normal noise pushed
# through one flow transform), so ``log_prob`` is exact. The full-covariance Gaussian is the
# baseline a flow has to beat.
flow = flow_model()
print(type(flow).__mro__[1].__name__, "->", [type(t).__name__ for t in flow.transforms])
with torch.no_grad():
    nll_flow = -flow.log_prob(held_out)
    nll_gauss = -gaussian_model().log_prob(held_out)
print(f"mean NLL: flow {nll_flow.mean():.2f}, full Gaussian {nll_gauss.mean():.2f} nats/pose")

fig, ax = plt.subplots(figsize=(6, 3.2))
bins = torch.linspace(-60, 80, 71)
ax.hist(nll_gauss.numpy(), bins=bins.numpy(), alpha=0.6, label="cmu/gaussian_full")
ax.hist(nll_flow.numpy(), bins=bins.numpy(), alpha=0.6, label="cmu/global_flow_spline")
ax.set_xlabel("negative log-density of a held-out pose (nats)")
ax.set_ylabel("poses")
ax.legend()
fig.tight_layout()

# %%
# Which joints cost the most
# --------------------------
# Priors that factorise over the kinematic tree give each joint its own term
# (``joint_log_prob``: ``(N, J)``, summing to ``log_prob``). The per-joint flow does.
joint_model = load_model("cmu/joint_flow")
with torch.no_grad():
    per_joint = -joint_model.joint_log_prob(held_out).mean(0)  # (21,) nats
    total = -joint_model().log_prob(held_out).mean()
print(f"per-joint terms sum to {per_joint.sum():.3f}; log_prob gives {total:.3f} nats/pose")

fig, ax = plt.subplots(figsize=(7, 3.4))
ax.bar(range(len(names)), per_joint.numpy())
ax.set_xticks(range(len(names)), names, rotation=70, fontsize=7)
ax.set_ylabel("mean NLL (nats)")
ax.set_title("cmu/joint_flow on unseen performers, per joint")
fig.tight_layout()

# %%
# A model with a latent pose
# --------------------------
# Two people; of each we observe six joints (hips, spine and knees) with 0.05 rad of noise, and
# want the rest. ``TransformReparam`` makes the latent the flow's Gaussian noise (``body_base``),
# where the posterior is much closer to a Gaussian than in pose space. Apply it to the whole model,
# outside its plates: entered inside a plate, Pyro's autoguides give the new site no batch
# dimension, and both people would share one body.
torch.manual_seed(0)  # the tutorial's own draws; probpose never seeds torch's global generator
truth = held_out[torch.tensor([100, 2000])]  # (2, 21, 3)
seen = truth[:, :6] + 0.05 * torch.randn(2, 6, 3)


def pose_model(seen: torch.Tensor) -> torch.Tensor:
    with pyro.plate("people", len(seen)):
        body = pyro.sample("body", flow)
        pyro.sample("seen", dist.Normal(body[..., :6, :], 0.05).to_event(2), obs=seen)
    return body


my_model = pyro.poutine.reparam(pose_model, config={"body": TransformReparam()})
pyro.clear_param_store()
guide = AutoNormal(my_model, init_scale=0.05)
svi = SVI(my_model, guide, pyro.optim.Adam({"lr": 0.05}), Trace_ELBO())
losses = [svi.step(seen) for _ in range(200)]

with torch.no_grad():
    base = guide.median(seen)["body_base"]
    fitted = flow.transforms[0](base)  # noise -> pose, (2, 21, 3)


def error_deg(poses: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Mean geodesic error of the unseen joints, degrees: ``(..., 21, 3)`` -> ``(...)``."""
    d = geodesic_distance(axis_angle_to_matrix(poses[..., 6:, :]), axis_angle_to_matrix(truth[..., 6:, :]))
    return torch.rad2deg(d).mean(-1)


print("unseen joints, mean error (deg): SVI", [round(x, 1) for x in error_deg(fitted, truth).tolist()])

fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(losses)
ax.set_xlabel("SVI step")
ax.set_ylabel("-ELBO (nats)")
ax.set_yscale("symlog")
fig.tight_layout()

# %%
# The posterior by NUTS
# ---------------------
# The same model, unchanged, for Pyro's NUTS (one person, few samples: a tutorial budget). The
# spread of the samples is the uncertainty about the unseen joints given six seen ones.
# NUTS starts at the SVI fit, given as a *pose*: under TransformReparam, Pyro 1.9's initialisation
# draws the ``body`` site and inverts it, so a start value for ``body_base`` alone is not used.
start = {"body": fitted[:1]}
kernel = NUTS(my_model, max_tree_depth=6, init_strategy=init_to_value(values=start))
mcmc = MCMC(kernel, num_samples=30, warmup_steps=30, disable_progbar=True)
mcmc.run(seen[:1])
with torch.no_grad():
    base_samples = mcmc.get_samples()["body_base"]
    samples = flow.transforms[0](base_samples.reshape(-1, 21, 3))  # (30, 21, 3)
err = error_deg(samples, truth[0])
print(f"NUTS: unseen-joint error {err.mean():.1f} deg on average over {len(samples)} samples")

joint = names.index("left_elbow")
fig, ax = plt.subplots(figsize=(6, 3))
angle = torch.rad2deg(samples[:, joint].norm(dim=-1))
ax.hist(angle.numpy(), bins=15, alpha=0.7, label="NUTS samples")
ax.axvline(torch.rad2deg(truth[0, joint].norm()).item(), color="k", label="truth")
ax.axvline(torch.rad2deg(fitted[0, joint].norm()).item(), color="C3", ls="--", label="SVI median")
ax.set_xlabel("left elbow rotation angle (deg), unseen")
ax.legend()
fig.tight_layout()
