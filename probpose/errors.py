"""The errors a user can cause, and can fix: one hierarchy the command line reports without a traceback.

Everything else (a bug, an internal inconsistency) keeps its traceback. Each message names the
file (or setting) and the field where there is one, then the reason: ``FILE: field: reason``.
"""

from __future__ import annotations

__all__ = [
    "ProbposeError",
    "DataError",
    "ConfigError",
    "CheckpointError",
    "SelectionError",
    "TrainingError",
    "ConstantDimensionError",
    "DistributedError",
    "short_repr",
]


class ProbposeError(Exception):
    """Something the user gave (a file, a setting, an argument) is wrong; the message says what."""


class DataError(ProbposeError, ValueError):
    """Bad input data. The message names the file, the field and the reason."""

    def __init__(self, file: str, field: str | None, reason: str) -> None:
        self.file, self.field, self.reason = str(file), field, reason
        where = f"{self.file}: {field}" if field else self.file
        super().__init__(f"{where}: {reason}")


class CheckpointError(DataError):
    """A checkpoint that cannot be (safely) loaded, or does not hold what was asked for."""


class ConfigError(ProbposeError, ValueError):
    """A config file or override that does not fit the schema."""


class SelectionError(ProbposeError, KeyError):
    """An unknown joint, selection or registry name. Prints without KeyError's quotes."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class TrainingError(ProbposeError, RuntimeError):
    """Training cannot go on (for example the loss became NaN); the message says what to change."""


class DistributedError(ProbposeError, RuntimeError):
    """The processes of a distributed fit cannot go on together: one stopped, was killed, timed out,
    or was started with other arguments or data. The message names this process."""


class ConstantDimensionError(ProbposeError, ValueError):
    """A modelled dimension is (nearly) constant: a density fitted to it diverges."""


def short_repr(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters: error messages never echo a huge value."""
    try:
        text = repr(value)
    except Exception:  # a value whose repr fails still gets a message
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 12] + f"... ({len(text)} chars)"
