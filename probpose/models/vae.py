"""Pose VAEs as Pyro model/guide pairs, trained by SVI through the one trainer.

``z ~ N(0, I)`` (``z_dim``), a decoder to the ``J`` joints of any skeleton (a hand: the hand VAE;
the zebra legs: PASyn's leg VAE), an encoder network as the guide.

- ``type: standard``: a Gaussian likelihood on the axis-angle vector (decoder mean, one learned
  standard deviation per dimension; with ``covariance: full``, one learned full covariance of the
  decoder's residual, ``x = mu(z) + L eps``: the latents carry the non-linear structure, the
  residual the correlations a factorised likelihood leaves to them; issue 35).
- ``type: so3``: the decoder outputs 6D per joint -> a rotation matrix (Gram-Schmidt), and each
  joint's likelihood is :class:`~probpose.distributions.TangentGaussianSO3`, a normalised density
  on SO(3) (an isotropic Gaussian in the tangent space with its exact normaliser; one learned
  angular spread per joint), expressed over axis-angle. With ``covariance: full``: one full
  covariance of every joint's tangent residual together,
  :class:`~probpose.distributions.CorrelatedTangentGaussianSO3` (its truncation
  mass left out: the bounds below stay bounds).

Both likelihoods are densities over the axis-angle pose in nats (docs/architecture.md, "Event
space and metrics"), so the ELBO and the importance-weighted bound (IWAE, ``K`` samples) are upper
bounds on the same NLL the priors report exactly. ``kl_weight`` (PASyn's ``w1``) and
``rec_weight`` (``w2``) scale the two ELBO terms through ``poutine.scale`` during training only --
exactly as named (PASyn-v2's code applies them swapped); ``kl_anneal_steps`` warms the KL weight up
linearly from 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from torch import Tensor, nn
from torch.nn import functional as F

from probpose.distributions import CorrelatedTangentGaussianSO3
from probpose.distributions.so3 import MIN_SCALE, TangentGaussianSO3
from probpose.flows import MLP, GaussianLayer
from probpose.models.base import LatentPoseModel, check_latent_step
from probpose.models.registry import ModelSpec, register
from probpose.options import MAX_DEPTH, MAX_WIDTH, option, validate
from probpose.rotations import (
    geodesic_error_deg,
    matrix_to_axis_angle,
    rotation_6d_to_matrix,
)
from probpose.skeleton import Skeleton

__all__ = ["VAEOptions", "PoseVAE", "MIRROR", "REGISTRY_DEFAULTS"]

MIRROR = torch.tensor([1.0, -1.0, -1.0])
"""Mirroring an axis-angle rotation through the body's sagittal (y-z) plane: (x, y, z) -> (x, -y, -z).
A left-hand pose mirrored this way is a right-hand pose (the MANO/SMPL-X convention)."""


@dataclass
class VAEOptions:
    """``type``: ``standard`` or ``so3`` likelihood; ``covariance`` of the likelihood's residual:
    ``diagonal`` (the seed's: one spread per dimension, or per joint for ``so3``) or ``full`` (one
    ``3J x 3J`` Cholesky factor, started at ``init_scale`` times the identity); ``z_dim`` latent
    size; encoder and decoder MLPs of ``layers`` x ``hidden``; ``kl_weight``/``rec_weight``
    (training only); ``kl_anneal_steps``; ``init_scale`` of the likelihood (radians); ``iwae_k``
    importance samples for the reported bound, ``val_iwae_k`` during training; ``mirror``: mirror
    poses (left hand into the right-hand frame) at the model's boundary (a volume-preserving map:
    densities are unchanged); ``gaussian_layer`` (``standard`` only): the VAE models the residual of
    the training data's full-covariance Gaussian (eigenvalues floored at ``min_variance`` rad^2),
    ``x = mean + A x'``, the encoder reading and the decoder writing ``x'`` (``init_scale`` then in
    those standard units) -- the joint flow's Gaussian layer, an exact change of variables."""

    type: Literal["standard", "so3"] = "standard"
    covariance: Literal["diagonal", "full"] = "diagonal"
    z_dim: int = option(24, ge=1, le=MAX_WIDTH)
    hidden: int = option(256, ge=1, le=MAX_WIDTH)
    layers: int = option(2, ge=0, le=MAX_DEPTH)
    kl_weight: float = option(1.0, gt=0)
    rec_weight: float = option(1.0, gt=0)
    kl_anneal_steps: int = option(0, ge=0)
    init_scale: float = option(0.1, gt=MIN_SCALE)
    iwae_k: int = option(1000, ge=1)
    val_iwae_k: int = option(16, ge=1)
    mirror: bool = False
    gaussian_layer: bool = False
    min_variance: float = option(1e-6, gt=0)

    def __post_init__(self) -> None:
        validate(self)
        if self.gaussian_layer and self.type != "standard":
            raise ValueError(
                "gaussian_layer whitens the axis-angle pose, which the so3 likelihood reads as rotations: "
                "use it with type: standard (for an SO(3) VAE: model vae_so3, or gaussian_layer: false)"
            )


DECODE_ROWS = 4096
"""(sample, pose) pairs :meth:`PoseVAE.log_weights` decodes at once (measured fastest on a 2-core CPU
for both likelihoods, 4,096-8,192 of 2,048-65,536)."""

REGISTRY_DEFAULTS: dict[str, dict] = {
    "vae": {"covariance": "full", "gaussian_layer": True, "init_scale": 0.5},
    "vae_so3": {"covariance": "full"},
}
"""What the registered ``vae`` and ``vae_so3`` start from (a config may change each): the measured
fixes of issue 35 (``benchmarks/results/vae_covariance_cpu/``). :class:`VAEOptions`' own defaults
are the seed's architecture (``covariance: diagonal``, no Gaussian layer, ``init_scale`` 0.1 rad),
which checkpoints written before these options existed also load as. ``init_scale`` 0.5 is in the
Gaussian layer's standard units (half the data's spread)."""


class PoseVAE(LatentPoseModel):
    """A VAE over ``(J, 3)`` axis-angle poses of ``skeleton``. ``log_prob`` is the IWAE lower
    bound (``exact_log_prob = False``): evaluation reports ``-log_prob`` as an upper bound on NLL.

    Example:
        >>> import pyro
        >>> from probpose.models import load_model
        >>> vae = load_model("cmu/vae")  # a shipped PoseVAE
        >>> trace = pyro.poutine.trace(lambda: vae.generate("body")).get_trace()  # inside your model
        >>> [name for name in trace.stochastic_nodes], trace.nodes["body"]["value"].shape
        (['body_z', 'body'], torch.Size([21, 3]))
    """

    options: VAEOptions
    step: Tensor
    mirror_sign: Tensor
    tril_index: Tensor

    def __init__(self, skeleton: Skeleton, options: VAEOptions | None = None) -> None:
        super().__init__(skeleton)
        o = options or VAEOptions()
        self.options = o
        j = skeleton.num_joints
        self.encoder = MLP(3 * j, 2 * o.z_dim, o.hidden, o.layers)
        out = 3 * j if o.type == "standard" else 6 * j
        self.decoder = MLP(o.z_dim, out, o.hidden, o.layers)
        n_scale = 3 * j if o.type == "standard" or o.covariance == "full" else j
        self.log_scale = nn.Parameter(torch.full((n_scale,), math.log(o.init_scale)))
        if o.covariance == "full":  # the strictly lower part of the residual's Cholesky factor (diagonal: log_scale)
            index = torch.tril_indices(n_scale, n_scale, -1)
            self.register_buffer("tril_index", index, persistent=False)
            self.noise_tril = nn.Parameter(torch.zeros(index.shape[1]))
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.register_buffer("mirror_sign", MIRROR.clone() if o.mirror else torch.ones(3), persistent=False)
        self.gaussian = GaussianLayer(3 * j, o.min_variance) if o.gaussian_layer else None

    # ------------------------------------------------------------------ pieces
    def set_step(self, step: int) -> None:
        self.step.fill_(step)

    def _kl_weight(self) -> float:
        w = self.options.kl_weight
        if self.options.kl_anneal_steps > 0:
            w *= min(1.0, (float(self.step) + 1) / self.options.kl_anneal_steps)  # > 0: Pyro needs it
        return w

    def noise_scale_tril(self) -> Tensor:
        """``covariance: full``: the residual's Cholesky factor ``(3J, 3J)`` (radians; joint-major)."""
        scale = self.log_scale.exp()
        rows, cols = self.tril_index
        return torch.diag(scale).index_put((rows, cols), self.noise_tril)

    def initialize(self, train_poses: Tensor) -> None:
        """``gaussian_layer``: the mean and floored covariance of ``train_poses`` ``(N, J, 3)`` (mirrored)."""
        if self.gaussian is not None:
            x = train_poses.to(self.mirror_sign) * self.mirror_sign
            self.gaussian.initialize(x.flatten(-2))

    def model_frame(self, poses: Tensor) -> tuple[Tensor, Tensor]:
        """Data-frame poses ``(N, J, 3)`` -> the frame the encoder reads and the likelihood scores
        (mirrored; whitened by the Gaussian layer) ``(N, J, 3)``, and the log|det| of that map ``(N,)``."""
        x = poses.to(self.mirror_sign.dtype) * self.mirror_sign  # computed in the model's dtype
        if self.gaussian is None:
            return x, x.new_zeros(x.shape[:-2])
        flat, log_det = self.gaussian.inverse(x.flatten(-2))
        return flat.reshape(x.shape), log_det

    def encode(self, poses: Tensor) -> tuple[Tensor, Tensor]:
        """``(N, J, 3)`` -> ``q(z | x)`` location and scale, ``(N, z_dim)`` each."""
        return self._posterior(self.model_frame(poses)[0])

    def _posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.encoder(x.flatten(-2))
        loc, raw = h.chunk(2, dim=-1)
        return loc, F.softplus(raw) + 1e-4

    def likelihood(self, z: Tensor) -> dist.TorchDistribution:
        """``p(x | z)`` over ``(..., J, 3)`` poses in the model frame (:meth:`model_frame`: mirrored if
        ``mirror``, whitened if ``gaussian_layer``)."""
        out = self.decoder(z)
        j = self.skeleton.num_joints
        if self.options.type == "standard" and self.options.covariance == "full":
            # a Cholesky factor by construction; validating it would check the factor broadcast to every
            # (sample, pose) pair: (K, N, 3J, 3J) booleans
            mvn = dist.MultivariateNormal(out, scale_tril=self.noise_scale_tril(), validate_args=False)
            shape = torch.Size((3 * j,)), torch.Size((j, 3))
            return dist.TransformedDistribution(mvn, [dist.transforms.ReshapeTransform(*shape)])
        if self.options.type == "standard":
            mean = out.reshape(z.shape[:-1] + (j, 3))
            scale = self.log_scale.exp().reshape(j, 3).expand_as(mean)
            return dist.Normal(mean, scale).to_event(2)
        rot = rotation_6d_to_matrix(out.reshape(z.shape[:-1] + (j, 6)))
        if self.options.covariance == "full":
            return CorrelatedTangentGaussianSO3(rot, self.noise_scale_tril(), validate_args=False)
        # rotations by construction (Gram-Schmidt); a float32 orthogonality check at 1e-4 failed on
        # near-degenerate 6D outputs during training (benchmarks/known_density.py), so it is skipped
        return TangentGaussianSO3(rot, self.log_scale.exp() + MIN_SCALE, validate_args=False).to_event(1)

    def decode_mean(self, z: Tensor) -> Tensor:
        """The decoder's most likely pose ``(..., J, 3)`` for latents ``(..., z_dim)``, in the data frame."""
        out = self.decoder(z)
        j = self.skeleton.num_joints
        if self.options.type == "standard":
            poses = out.reshape(z.shape[:-1] + (j, 3))
        else:
            poses = matrix_to_axis_angle(rotation_6d_to_matrix(out.reshape(z.shape[:-1] + (j, 6))))
        if self.gaussian is not None:
            flat = out.reshape(-1, 3 * j)
            poses = self.gaussian(flat)[0].reshape(poses.shape)
        return poses * self.mirror_sign

    def _prior(self, shape: torch.Size) -> dist.TorchDistribution:
        p = self.log_scale
        return dist.Normal(torch.zeros((), dtype=p.dtype, device=p.device), 1.0).expand(shape).to_event(1)

    # ------------------------------------------------------------------ Pyro
    def pose_distribution(self, z: Tensor) -> dist.TorchDistribution:
        """``p(x | z)`` over ``(..., J, 3)`` axis-angle poses in the data frame: the likelihood pushed
        through the Gaussian layer (``x = mean + A x'``) and the mirror, when set, as Pyro transforms."""
        lik = self.likelihood(z)
        transforms: list[dist.transforms.Transform] = []
        if self.gaussian is not None:
            shapes = torch.Size((self.skeleton.num_joints, 3)), torch.Size((self.gaussian.dim,))
            affine = dist.transforms.LowerCholeskyAffine(self.gaussian.mean, self.gaussian.scale_tril)
            transforms += [
                dist.transforms.ReshapeTransform(*shapes),
                affine,
                dist.transforms.ReshapeTransform(*shapes[::-1]),
            ]
        if self.options.mirror:
            transforms.append(dist.transforms.AffineTransform(0.0, self.mirror_sign, event_dim=2))
        return dist.TransformedDistribution(lik, transforms) if transforms else lik

    def generate(self, name: str = "pose", obs: Tensor | None = None) -> Tensor:
        """The VAE as a generative Pyro model, to call inside a user's own model: samples
        ``z ~ N(0, I)`` at site ``"{name}_z"`` (``(z_dim,)``) and the pose ``(J, 3)`` (axis-angle
        radians) from ``p(x | z)`` at site ``name`` (observed when ``obs`` is given); returns the
        pose. Enclosing plates set the batch shape. The weights are not registered with Pyro (a
        trained prior stays fixed; wrap with ``pyro.module`` to learn them).

        A VAE has no closed-form marginal density, so it offers this model instead of a
        distribution: ``log_prob`` (the IWAE bound) serves evaluation, this serves inference."""
        p = self.log_scale
        z_prior = dist.Normal(torch.zeros((), dtype=p.dtype, device=p.device), 1.0).expand([self.options.z_dim])
        z = pyro.sample(f"{name}_z", z_prior.to_event(1))
        if obs is not None:
            obs = obs.to(p.dtype)
        return pyro.sample(name, self.pose_distribution(z), obs=obs)

    def forward(self, context: Tensor | None = None) -> dist.TorchDistribution:
        raise TypeError(
            f"{type(self).__name__} has no closed-form density to return as a distribution: inside a Pyro model "
            "call vae.generate(name) (a latent z and a pose drawn from the decoder); vae.log_prob gives the IWAE bound"
        )

    def model(self, poses: Tensor) -> None:
        pyro.module(self.pyro_name, self)
        n = poses.shape[0]
        with pyro.plate("poses", n):
            with poutine.scale(scale=self._kl_weight()):
                z = pyro.sample("z", self._prior(torch.Size((n, self.options.z_dim))))
            x, log_det = self.model_frame(poses)
            with poutine.scale(scale=self.options.rec_weight):
                pyro.sample("pose", self.likelihood(z), obs=x)
            if self.gaussian is not None:  # the Gaussian layer's log|det|: a constant, so the ELBO is the data's
                pyro.factor("gaussian_layer", log_det)

    def guide(self, poses: Tensor) -> None:
        pyro.module(self.pyro_name, self)
        loc, scale = self.encode(poses)
        with pyro.plate("poses", poses.shape[0]), poutine.scale(scale=self._kl_weight()):
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))

    # ------------------------------------------------------------------ bounds
    def log_weights(self, poses: Tensor, k: int) -> Tensor:
        """``(k, N)`` importance log-weights ``log p(x, z_k) - log q(z_k | x)``, z_k ~ q (unscaled).

        The latents are drawn for all ``N`` poses at once; the decoder and likelihood then run on
        blocks of about :data:`DECODE_ROWS` (sample, pose) pairs, which stay in a CPU's cache
        (1.5-2x faster than one block of ``k N`` rows at ``k = 1000``; the same numbers)."""
        x, log_det = self.model_frame(poses)
        q = dist.Normal(*self._posterior(x)).to_event(1)
        z = q.rsample((k,))
        step = max(1, DECODE_ROWS // k)
        lik = [self.likelihood(z[:, i : i + step]).log_prob(x[i : i + step]) for i in range(0, len(x), step)]
        return torch.cat(lik, dim=1) + log_det + self._prior(z.shape).log_prob(z) - q.log_prob(z)

    def iwae(self, poses: Tensor, k: int, chunk: int = 64) -> Tensor:
        """Importance-weighted lower bound on log p(x), ``(N,)`` nats; ``k = 1`` is the ELBO.
        Latents are drawn ``chunk`` poses at a time (the seeded draws behind the shipped cards)."""
        out = []
        for block in poses.split(max(1, chunk)):
            lw = self.log_weights(block, k)
            out.append(torch.logsumexp(lw, 0) - math.log(k))
        return torch.cat(out)

    def elbo(self, poses: Tensor, samples: int = 100) -> Tensor:
        """Per-pose ELBO ``(N,)`` (unscaled), averaged over ``samples`` draws of z."""
        return self.log_weights(poses, samples).mean(0)

    def log_prob(self, poses: Tensor) -> Tensor:
        """The IWAE bound with ``options.iwae_k`` samples: a lower bound on log p(x)."""
        return self.iwae(poses, self.options.iwae_k)

    def validation_log_prob(self, poses: Tensor) -> Tensor:
        return self.iwae(poses, self.options.val_iwae_k)

    @torch.no_grad()
    def reconstruction_error(self, poses: Tensor) -> Tensor:
        """Mean geodesic angle in degrees between each pose ``(N, J, 3)`` and the decoder mean of
        its encoder mean, averaged over joints: ``(N,)``."""
        loc, _ = self.encode(poses)
        return geodesic_error_deg(self.decode_mean(loc), poses).mean(-1)

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        """``(n, J, 3)``: decoder means of ``z ~ N(0, I)``."""
        p = self.log_scale
        return self.decode_mean(torch.randn(n, self.options.z_dim, dtype=p.dtype, device=p.device))

    @torch.no_grad()
    def sequence(
        self,
        n_frames: int,
        step: float = 0.05,
        mode: Literal["walk", "slerp"] = "walk",
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """A smooth pose sequence ``(n_frames, J, 3)`` by moving slowly through latent space.

        ``walk``: z_t = sqrt(1 - step^2) z_{t-1} + step eps_t (keeps z ~ N(0, I) at every frame);
        ``slerp``: spherical interpolation between successive random latents, ``1/step`` frames apart."""
        check_latent_step(step)
        if n_frames < 1:
            raise ValueError(f"n_frames must be >= 1, got {n_frames}")
        p = self.log_scale
        d = self.options.z_dim

        def randn(*shape: int) -> Tensor:
            return torch.randn(*shape, generator=generator, dtype=p.dtype).to(p.device)

        if mode == "walk":
            zs = [randn(d)]
            for _ in range(n_frames - 1):
                zs.append(math.sqrt(1 - step**2) * zs[-1] + step * randn(d))
            z = torch.stack(zs)
        elif mode == "slerp":
            per = max(2, int(round(1 / step)))
            keys = randn(n_frames // per + 2, d)
            frames = []
            for t in range(n_frames):
                a, b, u = keys[t // per], keys[t // per + 1], (t % per) / per
                omega = torch.arccos(torch.clamp((F.normalize(a, dim=0) * F.normalize(b, dim=0)).sum(), -1, 1))
                so = torch.sin(omega).clamp_min(1e-8)
                frames.append((torch.sin((1 - u) * omega) * a + torch.sin(u * omega) * b) / so)
            z = torch.stack(frames)
        else:
            raise ValueError(f"mode must be 'walk' or 'slerp', got {mode!r}")
        return self.decode_mean(z)


register(
    ModelSpec(
        "vae",
        VAEOptions,
        PoseVAE,
        "VAE, Gaussian likelihood on axis-angle behind the data's Gaussian layer, full residual covariance "
        "(NLL reported as the IWAE upper bound)",
        defaults=REGISTRY_DEFAULTS["vae"],
    )
)
register(
    ModelSpec(
        "vae_so3",
        VAEOptions,
        PoseVAE,
        "VAE, 6D decoder and correlated tangent-Gaussian residuals on SO(3) (NLL: IWAE upper bound)",
        fixed={"type": "so3"},
        defaults=REGISTRY_DEFAULTS["vae_so3"],
    )
)
