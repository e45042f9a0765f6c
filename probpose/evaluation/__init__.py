"""Evaluation: NLL / BPD / Haar metrics, and synthetic data of known density."""

from probpose.evaluation.job import EvaluateRequest, EvaluationRun, run_evaluation
from probpose.evaluation.metrics import Evaluation, EvaluationError, Scores, evaluate, haar_offset, score
from probpose.evaluation.report import EvaluationReport, evaluate_files, evaluate_poses, evaluate_store

__all__ = [
    "EvaluateRequest",
    "EvaluationRun",
    "run_evaluation",
    "Evaluation",
    "EvaluationError",
    "evaluate",
    "haar_offset",
    "Scores",
    "score",
    "EvaluationReport",
    "evaluate_files",
    "evaluate_poses",
    "evaluate_store",
]
