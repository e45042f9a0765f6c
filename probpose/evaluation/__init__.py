"""Evaluation: NLL / BPD / Haar metrics, and synthetic data of known density."""

from probpose.evaluation.metrics import Evaluation, EvaluationError, evaluate, haar_offset

__all__ = ["Evaluation", "EvaluationError", "evaluate", "haar_offset"]
