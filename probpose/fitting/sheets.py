"""Contact sheets of stick figures for poses and fits (:mod:`probpose.plots` draws them).

- :func:`pose_sheet`: poses ``(N, J, 3)`` (samples of a prior, say) through a body's forward
  kinematics at the identity orientation, in a front view.
- :func:`fit_sheet`: fitted poses over their observations: the fitted body as sticks, the
  observed points as dots, the body points no observation saw as red crosses; 3D fits in world
  metres, 2D fits in the image (the body projected through each frame's camera).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from probpose.fitting.body import Body
from probpose.fitting.observations import MIN_DEPTH, Joints3D, Observation
from probpose.fitting.results import FitResult
from probpose.kinematics import project
from probpose.plots import StickFigure, spread_frames, stick_sheet

__all__ = ["pose_sheet", "fit_sheet"]


@torch.no_grad()
def pose_sheet(body: Body, poses: Tensor, path: str | Path, title: str = "", most: int = 24) -> Path:
    """Draw at most ``most`` of ``poses`` ``(N, J, 3)`` (radians, the body's joints) as stick
    figures, front view, no global rotation. Returns ``path``."""
    frames = spread_frames(len(poses), most)
    x = poses[frames].double()
    zeros = torch.zeros(len(frames), 3, dtype=torch.float64)
    pts = body.points(x, zeros, zeros).numpy()
    figs = [StickFigure(pts[k], body.point_edges, label=f"#{i}") for k, i in enumerate(frames)]
    return stick_sheet(figs, path, title=title)


@torch.no_grad()
def fit_sheet(
    body: Body, result: FitResult, obs: Observation, path: str | Path, title: str = "", most: int = 24
) -> Path:
    """Fitted poses over their observations, at most ``most`` frames. Returns ``path``."""
    names = obs.names if obs.names is not None else body.point_names
    index = [body.point_names.index(n) for n in names]
    frames = spread_frames(obs.num_frames, most)
    f = torch.tensor(frames)
    pts = body.points(result.pose[f].double(), result.orient[f].double(), result.transl[f].double())
    if isinstance(obs, Joints3D):
        seen, observed = obs.mask[f], obs.points[f].double()
    else:
        seen, observed = obs.confidence[f] > 0, obs.pixels[f].double()
        pts = project(pts, obs.K[f].double(), obs.R[f].double(), obs.t[f].double(), MIN_DEPTH)[0]
    figs = []
    for k, i in enumerate(frames):
        full = np.full((len(body.point_names), pts.shape[-1]), np.nan)
        mask = np.zeros(len(body.point_names), bool)
        full[index] = observed[k].numpy()
        mask[index] = seen[k].numpy()
        figs.append(StickFigure(pts[k].numpy(), body.point_edges, f"frame {i}", full, mask, ~mask))
    return stick_sheet(figs, path, title=title)
