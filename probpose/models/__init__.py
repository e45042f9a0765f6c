"""Trainable pose models (modules that build the prior distributions, and the Pyro VAEs), the
registry, and model files."""

from probpose.models.base import LatentPoseModel, PoseModel, PriorModel, TrainerHooks
from probpose.models.flows import GlobalFlowModel, GlobalFlowOptions, JointFlowModel, JointFlowOptions
from probpose.models.gaussian import GaussianOptions, JointGaussianModel
from probpose.models.io import (
    CHECKPOINT_FORMAT,
    load_model,
    model_payload,
    pretrained,
    read_checkpoint,
    resolve_model_path,
    save_model,
)
from probpose.models.mixture import FullGaussianModel, FullGaussianOptions, GMMModel, GMMOptions
from probpose.models.registry import MODELS, ModelSpec, build_model, get_model_spec, model_options, register
from probpose.models.vae import PoseVAE, VAEOptions

__all__ = [
    "TrainerHooks",
    "PoseModel",
    "PriorModel",
    "LatentPoseModel",
    "GaussianOptions",
    "JointGaussianModel",
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
