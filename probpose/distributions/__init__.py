"""Pose priors as Pyro distributions over ``(J, 3)`` axis-angle poses (one per file)."""

from probpose.distributions.joint_gaussian import JointGaussianPrior

__all__ = ["JointGaussianPrior"]
