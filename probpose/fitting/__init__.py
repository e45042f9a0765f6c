"""Fitting poses to observations with a prior inside a Pyro model: bodies (forward kinematics to
observed points), observation models (3D joints, 2D keypoints), MAP, approximate posteriors, NUTS."""

from probpose.data.rest import REST_PROVENANCE, SMPLX_REST_JOINTS, load_rest_joints, rest_joints
from probpose.fitting.body import Body, RigBody, SkeletonBody
from probpose.fitting.infer import (
    FitResult,
    Posterior,
    fit_map,
    fit_nuts,
    fit_posterior,
    frame_mvn_guide,
    geodesic_error_deg,
    initial_values,
    laplace,
    mean_rotation,
    summarize,
)
from probpose.fitting.model import PoseFit
from probpose.fitting.observations import Joints3D, Keypoints2D, load_observations, project

__all__ = [
    "Body",
    "SkeletonBody",
    "RigBody",
    "PoseFit",
    "Joints3D",
    "Keypoints2D",
    "load_observations",
    "project",
    "FitResult",
    "Posterior",
    "fit_map",
    "fit_posterior",
    "fit_nuts",
    "summarize",
    "mean_rotation",
    "geodesic_error_deg",
    "initial_values",
    "laplace",
    "frame_mvn_guide",
    "SMPLX_REST_JOINTS",
    "REST_PROVENANCE",
    "rest_joints",
    "load_rest_joints",
]
