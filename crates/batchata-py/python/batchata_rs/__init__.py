"""batchata_rs: batchata 0.4.7's Python API on a crash-safe Rust core.

Change ``from batchata import Batch`` to ``from batchata_rs import Batch``
and the rest of the script stays as it is. See README.md for the
differences from 0.4.7.
"""

from ._native import __version__
from .batch import Batch, BatchParams, BatchRun, Job
from .exceptions import (
    BatchataError,
    BatchSubmissionError,
    CostLimitExceededError,
    ModelNotSupportedError,
    ParseError,
    ProviderError,
    ProviderNotFoundError,
    StateError,
    TimeoutError,
    ValidationError,
)
from .job_result import JobResult
from .types import Citation

__all__ = [
    "Batch",
    "BatchRun",
    "Job",
    "JobResult",
    "Citation",
    "BatchataError",
    "CostLimitExceededError",
    "ProviderError",
    "ProviderNotFoundError",
    "ValidationError",
    "emulator",
]


def __getattr__(name):
    # The emulator is for tests: imported when first used, so a script that
    # never touches it does not load it.
    if name == "emulator":
        # import_module, not `from . import`: that would ask this function
        # for the attribute again before importing it.
        import importlib

        return importlib.import_module(".emulator", __name__)
    raise AttributeError(f"module 'batchata_rs' has no attribute {name!r}")
