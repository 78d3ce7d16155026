"""Exceptions with one-line messages that name the problem and the fix."""

from __future__ import annotations


class DeepsegError(ValueError):
    """Base class for user-facing errors; ``str(err)`` is a complete one-line message."""


class ModelFileError(DeepsegError):
    """A model file is missing, corrupt, from a newer schema or does not fit its architecture."""
