"""Helpers shared by several test files."""

import torch


def perturb(module, scale=0.3, seed=0):
    """Add Gaussian noise to every parameter: couplings start as the identity, which would make
    most exactness checks trivial."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return module
