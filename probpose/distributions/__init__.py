"""Pose priors as Pyro distributions over ``(J, 3)`` axis-angle poses (one per file)."""

from probpose.distributions.flow_layers import ActNorm, AffineCoupling, FlowStack, coupling_stack, spline_coupling
from probpose.distributions.global_flow import GlobalFlowPrior
from probpose.distributions.joint_flow import JointFlowPrior, parent_features
from probpose.distributions.joint_gaussian import JointGaussianPrior
from probpose.distributions.so3 import TangentGaussianSO3

__all__ = [
    "JointGaussianPrior",
    "GlobalFlowPrior",
    "JointFlowPrior",
    "parent_features",
    "ActNorm",
    "AffineCoupling",
    "FlowStack",
    "coupling_stack",
    "spline_coupling",
    "TangentGaussianSO3",
]
