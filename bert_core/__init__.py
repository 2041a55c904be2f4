"""Framework-neutral core of tribert: config, outputs, head registry, hub resolution.

Imports no deep-learning framework. ``bert_core.logging`` is the library's one
logging switch; ``__version__`` is the distribution's (bert_core/_version.py).
"""

from . import logging  # configures the package loggers (level from TRIBERT_VERBOSITY) before anything logs
from ._version import __version__

from .config import ACTIVATIONS, POSITION_EMBEDDING_TYPES, BertConfig
from .errors import (CheckpointError, ConfigError, DeviceError, InputError, MissingBackendError, ShapeMismatchError,
                     TokenizerError, TriBertError)
from .heads import HEADS, Head, get_head, head_for_class_name, head_for_config
from .inputs import validate_inputs
from .hub import HubError, resolve_file
from .outputs import *  # noqa: F401,F403  (the output classes; see outputs.__all__)
from .outputs import __all__ as _output_names

# The seed's framework-prefixed names for the pre-training output.
TFBertForPreTrainingOutput = BertForPreTrainingOutput  # noqa: F405
FlaxBertForPreTrainingOutput = BertForPreTrainingOutput  # noqa: F405

__all__ = [
    "__version__",
    "BertConfig",
    "ACTIVATIONS",
    "POSITION_EMBEDDING_TYPES",
    "TriBertError",
    "ConfigError",
    "CheckpointError",
    "ShapeMismatchError",
    "TokenizerError",
    "InputError",
    "DeviceError",
    "validate_inputs",
    "MissingBackendError",
    "HubError",
    "Head",
    "HEADS",
    "get_head",
    "head_for_class_name",
    "head_for_config",
    "resolve_file",
    "TFBertForPreTrainingOutput",
    "FlaxBertForPreTrainingOutput",
    *_output_names,
]
