"""Evaluation: NLL / BPD / Haar metrics and the benchmark runner."""

from probpose.evaluation.metrics import (
    ConstantDimensionError,
    Evaluation,
    check_not_constant,
    evaluate,
    haar_offset,
)

__all__ = ["ConstantDimensionError", "Evaluation", "check_not_constant", "evaluate", "haar_offset"]
