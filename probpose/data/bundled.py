"""The sample recordings shipped inside the package (see ``bundled/README.md`` for attribution)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["BUNDLED", "bundled", "BUNDLED_IMAGES", "bundled_images"]

BUNDLED: dict[str, tuple[str, ...]] = {
    "cmu": (
        "cmu/cmu_01-03_body_30fps.npz",
        "cmu/cmu_05-16_body_30fps.npz",
        "cmu/cmu_dance_martial_body_30fps.npz",
    ),
    "smplx": (
        "smplx/smplcodec_avatar.smpl",
        "smplx/smplcodec_apose_to_handsFront_smplx.npz",
        "smplx/aistpp_style_sample.pkl",
    ),
    "zebra": (
        "zebra/train_poses.npz",
        "zebra/test_poses.npz",
        "zebra/train_poses_refine.npz",
        "zebra/test_poses_refine.npz",
    ),
}
"""Bundled sets: ``cmu`` (CMU motion capture retargeted to SMPL-X, three files by source),
``smplx`` (three real human recordings: SMPL-X with hands, SMPL-X with hands, SMPL body-only
AIST++ dance) and ``zebra`` (PASyn leg poses; non-commercial use only)."""


def bundled(name: str) -> list[Path]:
    """Paths of a bundled set's files, ready for :func:`probpose.data.import_poses`."""
    if name not in BUNDLED:
        raise KeyError(f"unknown bundled data set {name!r}; available: {', '.join(BUNDLED)}")
    root = Path(str(resources.files("probpose.data").joinpath("bundled")))
    paths = [root / rel for rel in BUNDLED[name]]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"bundled data missing from this installation: {missing}")
    return paths


BUNDLED_IMAGES: tuple[str, ...] = ("images/city.jpg", "images/interior.jpg", "images/studio.jpg", "images/night.jpg")
"""Real CC0 photographs (backgrounds and style images for tests and examples; see probpose/data/bundled/README.md)."""


def bundled_images() -> list[Path]:
    """Paths of the bundled photographs (512x256 JPEGs, CC0; attribution in ``bundled/README.md``)."""
    root = Path(str(resources.files("probpose.data").joinpath("bundled")))
    paths = [root / rel for rel in BUNDLED_IMAGES]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"bundled images missing from this installation: {missing}")
    return paths
