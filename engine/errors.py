"""The engine's exception family: every error it raises on purpose is an EngineError."""

from __future__ import annotations


class EngineError(Exception):
    """Base class for every error the engine raises on purpose.

    ``code`` names the kind of failure for a job record's ``error.type``.
    """

    code = "training_error"


class ConfigError(EngineError):
    """A training specification value is invalid.

    Parameters
    ----------
    field : str
        Dotted path of the offending field, e.g. ``"regularization.dropout"``.
    message : str
        What is wrong with it, for a human.
    """

    code = "invalid_spec"

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class DatasetError(EngineError):
    """A dataset cannot be loaded or does not fit the requested task."""

    code = "invalid_dataset"


class DivergenceError(EngineError):
    """Training produced a non-finite loss or parameter, or a train loss that grew without bound."""

    code = "diverged"

    def __init__(self, epoch: int, message: str) -> None:
        self.epoch = epoch
        super().__init__(f"training diverged at epoch {epoch}: {message}")


class CheckpointError(EngineError):
    """A checkpoint cannot be read or does not belong to this specification."""


class InputError(EngineError):
    """Inputs to a trained model do not fit it (shape, non-finite values)."""

    code = "invalid_inputs"


class TrainingStopped(EngineError):
    """Training was stopped (cancelled, out of time) before its first epoch completed."""

    code = "time_limit"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"training stopped ({reason}) before the first epoch completed")
