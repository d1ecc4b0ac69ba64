"""Errors that the model CLIs turn into one line on stderr and exit code 2."""

from __future__ import annotations

__all__ = ["CheckpointError", "ModelConfigError", "UsageError"]


class UsageError(ValueError):
    """A command-line flag or input file the user must change."""


class ModelConfigError(UsageError):
    """A model configuration that cannot be built (a size, a bit width, a rate target)."""


class CheckpointError(UsageError):
    """A checkpoint that is missing, unreadable, of the wrong kind or holds non-finite values."""
