"""Pose priors as Pyro distributions over ``(J, 3)`` axis-angle poses (one per file)."""

from probpose.distributions.constraints import axis_angle_ball, pose_space, rotation_matrix
from probpose.distributions.correlated_so3 import CorrelatedTangentGaussianSO3
from probpose.distributions.flow import FlowDistribution, FlowTransform
from probpose.distributions.full_gaussian import FullGaussianPrior
from probpose.distributions.global_flow import GlobalFlowPrior, GlobalFlowTransform
from probpose.distributions.joint_flow import JointFlowPrior, JointFlowTransform, parent_features
from probpose.distributions.mixture import GaussianMixturePrior
from probpose.distributions.per_joint_gaussian import PerJointGaussianPrior
from probpose.distributions.so3 import TangentGaussianSO3

__all__ = [
    "FlowDistribution",
    "FlowTransform",
    "GlobalFlowTransform",
    "JointFlowTransform",
    "PerJointGaussianPrior",
    "FullGaussianPrior",
    "GaussianMixturePrior",
    "GlobalFlowPrior",
    "JointFlowPrior",
    "parent_features",
    "TangentGaussianSO3",
    "CorrelatedTangentGaussianSO3",
    "axis_angle_ball",
    "pose_space",
    "rotation_matrix",
]
