"""Trainable pose models (modules that build the prior distributions, and the Pyro VAEs), the
registry, and model files."""

from probpose.models.base import LatentPoseModel, PoseModel, PriorModel, TrainerHooks, check_latent_step
from probpose.models.flows import GlobalFlowModel, GlobalFlowOptions, JointFlowModel, JointFlowOptions
from probpose.models.full_gaussian import FullGaussianModel, FullGaussianOptions
from probpose.models.io import (
    CHECKPOINT_FORMAT,
    load_model,
    model_payload,
    pretrained,
    read_checkpoint,
    resolve_model_path,
    save_model,
)
from probpose.models.mixture import GMMModel, GMMOptions
from probpose.models.per_joint_gaussian import PerJointGaussianModel, PerJointGaussianOptions
from probpose.models.registry import MODELS, ModelSpec, build_model, get_model_spec, model_options, register
from probpose.models.vae import PoseVAE, VAEOptions

__all__ = [
    "TrainerHooks",
    "PoseModel",
    "PriorModel",
    "LatentPoseModel",
    "check_latent_step",
    "PerJointGaussianOptions",
    "PerJointGaussianModel",
    "FullGaussianOptions",
    "FullGaussianModel",
    "GMMOptions",
    "GMMModel",
    "GlobalFlowOptions",
    "GlobalFlowModel",
    "JointFlowOptions",
    "JointFlowModel",
    "VAEOptions",
    "PoseVAE",
    "MODELS",
    "ModelSpec",
    "build_model",
    "get_model_spec",
    "model_options",
    "register",
    "CHECKPOINT_FORMAT",
    "load_model",
    "model_payload",
    "read_checkpoint",
    "save_model",
    "pretrained",
    "resolve_model_path",
]
