"""Exceptions a user can act on.

Each is a ``ValueError`` subclass so code that already catches ``ValueError``
keeps working; the message names the file, key or argument at fault and, for
shape problems, both shapes.
"""

from __future__ import annotations

__all__ = ["TriBertError", "ConfigError", "CheckpointError", "ShapeMismatchError", "TokenizerError", "InputError",
           "DeviceError", "MissingBackendError"]


class TriBertError(ValueError):
    """Base class of every error tribert raises on bad input."""


class ConfigError(TriBertError):
    """A configuration file or field is invalid (names the field and the value)."""


class CheckpointError(TriBertError):
    """A checkpoint cannot be read or does not fit the model (names file, key, shapes)."""


class ShapeMismatchError(CheckpointError, RuntimeError):
    """Checkpoint weights whose shapes differ from the model's (names each key and both shapes).

    Also a ``RuntimeError``: what ``transformers`` raises there, so ``except RuntimeError`` code keeps working.
    """


class TokenizerError(TriBertError):
    """A tokenizer file or call argument is invalid (names the file or argument)."""


class InputError(TriBertError):
    """A call input is out of range or malformed (names the argument, the value and the valid range)."""


class DeviceError(TriBertError):
    """A device was asked for that the framework does not see (names the framework and the devices it sees)."""

    @classmethod
    def unavailable(cls, framework: str, wanted: str, available: list[str]) -> "DeviceError":
        """``wanted`` (``"GPU"``, ``"GPU 3"``, ...) is not among ``framework``'s ``available`` devices."""
        return cls(f"no {wanted} visible to {framework}; available devices: {', '.join(available) or 'none'}")


class MissingBackendError(ImportError):
    """An optional framework is not installed; the message says which extra to install."""
