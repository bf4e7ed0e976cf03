"""Exceptions, under batchata 0.4.7's names and hierarchy.

The native module raises these by name, so ``except batchata.X`` code keeps
working after the import is changed.
"""


class BatchataError(Exception):
    """Base exception for all batchata errors."""


class ValidationError(BatchataError):
    """A job or the configuration is invalid."""


class ProviderError(BatchataError):
    """A provider failed or refused a request."""


class ProviderNotFoundError(ProviderError):
    """No provider serves the model."""


class ModelNotSupportedError(ProviderError):
    """The model is not supported by its provider."""


class BatchSubmissionError(ProviderError):
    """A batch could not be submitted."""


class CostLimitExceededError(BatchataError):
    """The cost limit would be exceeded."""


class StateError(BatchataError):
    """The state file could not be read, written or locked."""


class ParseError(BatchataError):
    """A response could not be parsed."""


class TimeoutError(BatchataError):  # noqa: A001 - batchata's name
    """The run passed its time limit."""


__all__ = [
    "BatchataError",
    "ValidationError",
    "ProviderError",
    "ProviderNotFoundError",
    "ModelNotSupportedError",
    "BatchSubmissionError",
    "CostLimitExceededError",
    "StateError",
    "ParseError",
    "TimeoutError",
]
