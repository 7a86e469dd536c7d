"""The kit's exceptions, in one place.

Every error that a user can cause (a bad file, a bad argument, a bad manifest) is raised as one of these, with a
message that names the file or argument, what was seen, what was expected, and what to do.
"""

from __future__ import annotations


class MedadvError(Exception):
    """Base class of every error the kit raises on purpose."""


class DataError(MedadvError, ValueError):
    """Bad input data: an unreadable image, a mask that does not fit, a manifest that does not parse, ..."""


class ConfigError(MedadvError, ValueError):
    """A profile, parameter or command-line option that is missing or out of range."""


class CheckpointError(MedadvError, ValueError):
    """A checkpoint that is missing, not safetensors, or does not fit the model it is loaded into."""


class RunError(MedadvError, RuntimeError):
    """A run folder that is incomplete or inconsistent with what a notebook needs."""
