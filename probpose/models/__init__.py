"""Trainable pose models (modules that build the prior distributions, and the Pyro VAEs), the
registry, and model files.

Every model module registers its names when imported; the built-in ones are imported here in the
order listings and the bench use, then any other module of this package (a new prior's file), so
adding a model never means editing this file."""

import importlib as _importlib
import pkgutil as _pkgutil

from probpose.models.base import LatentPoseModel, PoseModel, PriorModel, TrainerHooks, check_latent_step
from probpose.models.io import (
    CHECKPOINT_FORMAT,
    load_model,
    model_payload,
    pretrained,
    read_checkpoint,
    resolve_model_path,
    save_model,
)
from probpose.models.registry import MODELS, ModelSpec, build_model, get_model_spec, model_options, register
from probpose.models.sampling import SampleRequest, SampleRun, run_sample

# the built-in models, in the order listings and the bench use (each module registers its names)
from probpose.models.per_joint_gaussian import PerJointGaussianModel, PerJointGaussianOptions  # isort: skip
from probpose.models.full_gaussian import FullGaussianModel, FullGaussianOptions  # isort: skip
from probpose.models.mixture import GMMModel, GMMOptions  # isort: skip
from probpose.models.flows import GlobalFlowModel, GlobalFlowOptions, JointFlowModel, JointFlowOptions  # isort: skip
from probpose.models.vae import PoseVAE, VAEOptions  # isort: skip

__all__ = [
    "discover",
    "SampleRequest",
    "SampleRun",
    "run_sample",
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


def discover() -> list[str]:
    """Import every module of this package that is not imported yet (a model module registers its
    names when imported); returns the modules imported. Run when :mod:`probpose.models` is
    imported, so a new model file is found without editing any other file."""
    import sys

    found = []
    for info in _pkgutil.iter_modules(__path__):
        name = f"{__name__}.{info.name}"
        if name not in sys.modules:
            _importlib.import_module(name)
            found.append(name)
    return found


discover()
