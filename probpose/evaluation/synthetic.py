"""Synthetic poses of exactly known density, for the one benchmark with a known optimum.

:class:`TreeMixtureTeacher` is a tree-structured, non-Gaussian distribution over ``(J, 3)``
vectors: each joint given its parent is a two-component Gaussian mixture whose means move
non-linearly (``tanh``) with the parent's value. Its log-density is exact, so a model's test NLL
minus the teacher's NLL on the same poses estimates the KL divergence from the truth. These are
synthetic data and are labelled so wherever they are used.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from probpose.skeleton import Skeleton

__all__ = ["TreeMixtureTeacher"]


class TreeMixtureTeacher:
    """``p(x) = prod_j sum_k pi_jk N(x_j; m_jk + A_jk tanh(2 x_parent(j)), L_jk L_jk^T)``.

    Parameters are drawn once from ``seed`` (a local generator): component means with standard
    deviation 0.3 rad, standard deviations 0.04-0.2 rad with random correlations, coupling
    matrices ``A`` with entries of standard deviation 0.2 (zero for roots). float64 throughout."""

    def __init__(self, skeleton: Skeleton, components: int = 2, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        j, k = skeleton.num_joints, components
        self.skeleton = skeleton
        self.parents = torch.tensor([max(p, 0) for p in skeleton.parents])
        self.is_root = torch.tensor([p < 0 for p in skeleton.parents])
        self.log_weights = torch.log_softmax(torch.randn(j, k, generator=g, dtype=torch.float64), -1)
        self.means = 0.3 * torch.randn(j, k, 3, generator=g, dtype=torch.float64)
        std = 0.04 + 0.16 * torch.rand(j, k, 3, generator=g, dtype=torch.float64)
        tril = torch.diag_embed(std)
        off = 0.5 * torch.randn(j, k, 3, generator=g, dtype=torch.float64)
        tril[..., 1, 0] = off[..., 0] * std[..., 1]
        tril[..., 2, 0] = off[..., 1] * std[..., 2]
        tril[..., 2, 1] = off[..., 2] * std[..., 2]
        self.scale_tril = tril
        coupling = 0.2 * torch.randn(j, k, 3, 3, generator=g, dtype=torch.float64)
        self.coupling = coupling.masked_fill(self.is_root[:, None, None, None], 0.0)

    def _component_means(self, parent_values: Tensor, joints: Tensor | slice) -> Tensor:
        """``(N, len(joints), 3)`` parent values -> ``(N, len(joints), K, 3)`` component means."""
        feat = torch.tanh(2 * parent_values)
        return self.means[joints] + torch.einsum("jkab,njb->njka", self.coupling[joints], feat)

    def joint_log_prob(self, x: Tensor) -> Tensor:
        """``(N, J, 3) -> (N, J)``: ``log p(x_j | x_parent(j))`` in nats."""
        x = x.double()
        mu = self._component_means(x[:, self.parents], slice(None))
        diff = (x[:, :, None, :] - mu).unsqueeze(-1)
        tril = self.scale_tril.expand(diff.shape[:-2] + (3, 3))
        z = torch.linalg.solve_triangular(tril, diff, upper=False).squeeze(-1)
        log_det = self.scale_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)
        comp = -0.5 * (z * z).sum(-1) - log_det - 1.5 * math.log(2 * math.pi)
        return torch.logsumexp(comp + self.log_weights, dim=-1)

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact log-density ``(N, J, 3) -> (N,)``, nats (Lebesgue on R^(3J))."""
        return self.joint_log_prob(x).sum(-1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``(n, J, 3)`` ancestral samples, level by level down the tree."""
        j = self.skeleton.num_joints
        out = torch.zeros(n, j, 3, dtype=torch.float64)
        for level in self.skeleton.levels:
            idx = torch.tensor(level)
            mu = self._component_means(out[:, self.parents[idx]], idx)  # (n, L, K, 3)
            comp = torch.multinomial(self.log_weights[idx].exp().repeat(n, 1), 1, generator=generator)
            comp = comp.reshape(n, len(level))
            chosen_mu = torch.gather(mu, 2, comp[:, :, None, None].expand(n, len(level), 1, 3)).squeeze(2)
            tril = self.scale_tril[idx][torch.arange(len(level)), comp]  # (n, L, 3, 3)
            eps = torch.randn(n, len(level), 3, 1, generator=generator, dtype=torch.float64)
            out[:, idx] = chosen_mu + (tril @ eps).squeeze(-1)
        return out
