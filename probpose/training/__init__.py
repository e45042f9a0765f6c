"""Training: configs, the model registry, the one trainer, and experiment runs."""

from probpose.training.config import ConfigError, ExperimentConfig, TrainingConfig, load_config
from probpose.training.registry import MODELS, ModelSpec, build_model, get_model_spec, register
from probpose.training.trainer import Trainer, TrainingError, TrainResult, load_checkpoint, save_checkpoint

__all__ = [
    "ConfigError",
    "ExperimentConfig",
    "TrainingConfig",
    "load_config",
    "MODELS",
    "ModelSpec",
    "build_model",
    "get_model_spec",
    "register",
    "Trainer",
    "TrainingError",
    "TrainResult",
    "load_checkpoint",
    "save_checkpoint",
]
