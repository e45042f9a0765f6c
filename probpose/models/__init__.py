"""Trainable pose models: modules that build the prior distributions, and the Pyro VAEs."""

from probpose.models.base import PoseModel, PriorModel
from probpose.models.flows import GlobalFlowModel, GlobalFlowOptions, JointFlowModel, JointFlowOptions
from probpose.models.gaussian import GaussianOptions, JointGaussianModel
from probpose.models.vae import PoseVAE, VAEOptions

__all__ = [
    "PoseModel",
    "PriorModel",
    "GaussianOptions",
    "JointGaussianModel",
    "GlobalFlowOptions",
    "GlobalFlowModel",
    "JointFlowOptions",
    "JointFlowModel",
    "VAEOptions",
    "PoseVAE",
]
