"""The one multilayer perceptron of probpose: conditioners of flow couplings and VAE encoders/decoders."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["MLP"]


class MLP(nn.Sequential):
    """``layers`` hidden layers of width ``hidden`` with ReLU, then a linear output layer.

    ``zero_last``: initialise the output layer to zero (a coupling built on it starts as the
    identity). ``layers = 0`` is a single linear map. Input ``(..., d_in)``, output ``(..., d_out)``."""

    def __init__(self, d_in: int, d_out: int, hidden: int, layers: int, zero_last: bool = False) -> None:
        if min(d_in, d_out) < 1 or layers < 0 or (layers and hidden < 1):
            raise ValueError(
                f"MLP needs d_in, d_out >= 1, layers >= 0 and hidden >= 1; got {d_in}, {d_out}, {layers}, {hidden}"
            )
        mods: list[nn.Module] = []
        d = d_in
        for _ in range(layers):
            mods += [nn.Linear(d, hidden), nn.ReLU()]
            d = hidden
        last = nn.Linear(d, d_out)
        if zero_last:
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        mods.append(last)
        super().__init__(*mods)

    def forward_feature_major(self, v: Tensor) -> Tensor:
        """``(N, d_in) -> (d_out, N)``: the output transposed, computed as ``W h^T`` so no copy is
        made (what a spline wants: its parameters before the elements)."""
        h = v
        for layer in list(self)[:-1]:
            h = layer(h)
        return torch.addmm(self.last.bias[:, None], self.last.weight, h.T)

    @property
    def last(self) -> nn.Linear:
        """The output layer."""
        last = self[-1]
        assert isinstance(last, nn.Linear)  # the Linear made last in __init__
        return last
