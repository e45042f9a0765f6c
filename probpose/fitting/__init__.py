"""Fitting poses to observations with a prior inside a Pyro model: bodies (forward kinematics to
observed points, :mod:`~probpose.fitting.body`), observation models (3D joints, 2D keypoints,
:mod:`~probpose.fitting.observations`), the Pyro model (:mod:`~probpose.fitting.model`), and one
module per inference method: MAP (:mod:`~probpose.fitting.map`), the Laplace approximation
(:mod:`~probpose.fitting.laplace`), SVI guides (:mod:`~probpose.fitting.guides`) and NUTS
(:mod:`~probpose.fitting.nuts`), with the shared start values and plumbing in
:mod:`~probpose.fitting.values` and the results and SO(3) summaries in
:mod:`~probpose.fitting.results`. :mod:`~probpose.fitting.job` is the whole job as ``probpose fit``
runs it (:class:`FitRequest` -> :func:`run_fit`)."""

from probpose.data.rest import REST_PROVENANCE, SMPLX_REST_JOINTS, load_rest_joints, rest_joints
from probpose.fitting.assemble import assemble_fit, fit_report, write_fit
from probpose.fitting.body import Body, RigBody, SkeletonBody, make_body
from probpose.fitting.guides import AutoFrameMVN, fit_posterior, frame_mvn_guide
from probpose.fitting.job import FitRequest, FitRun, run_fit
from probpose.fitting.laplace import laplace
from probpose.fitting.map import fit_map
from probpose.fitting.model import PoseFit
from probpose.fitting.nuts import fit_nuts
from probpose.fitting.observations import Joints3D, Keypoints2D, load_observations
from probpose.fitting.results import FitResult, Posterior, mean_rotation, summarize
from probpose.fitting.values import initial_values
from probpose.rotations import geodesic_error_deg

__all__ = [
    "FitRequest",
    "FitRun",
    "run_fit",
    "Body",
    "SkeletonBody",
    "RigBody",
    "make_body",
    "PoseFit",
    "assemble_fit",
    "write_fit",
    "fit_report",
    "Joints3D",
    "Keypoints2D",
    "load_observations",
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
    "AutoFrameMVN",
    "SMPLX_REST_JOINTS",
    "REST_PROVENANCE",
    "rest_joints",
    "load_rest_joints",
]
