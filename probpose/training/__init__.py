"""Training: configs, the one trainer, and experiment runs."""

from probpose.errors import ConfigError, TrainingError
from probpose.training.config import ExperimentConfig, TrainingConfig, config_from_dict, load_config
from probpose.training.run import RunSummary, run_experiment
from probpose.training.trainer import Trainer, TrainResult, save_checkpoint

__all__ = [
    "ConfigError",
    "ExperimentConfig",
    "TrainingConfig",
    "config_from_dict",
    "load_config",
    "RunSummary",
    "run_experiment",
    "Trainer",
    "TrainingError",
    "TrainResult",
    "save_checkpoint",
]
