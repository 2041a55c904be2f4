"""Checkpoint formats <-> canonical tensors <-> each framework (numpy + safetensors only).

Importing this package imports no deep-learning framework; readers and writers
of framework-specific formats import theirs lazily.
"""

from bert_core._version import __version__  # noqa: F401  (one version for every package)

from .matching import LoadReport, match_state, normalize_key
from .rules import (
    BASE_MODEL_PREFIX,
    FRAMEWORKS,
    LEAF_RULES,
    TIED_KEYS,
    from_framework,
    from_framework_key,
    to_framework,
    to_framework_key,
)
from .checkpoint import PT_WEIGHTS_NAME, ResolvedCheckpoint, read_torch_bin, resolve_checkpoint
from .safetensors_io import (
    SAFE_WEIGHTS_INDEX_NAME,
    SAFE_WEIGHTS_NAME,
    SafetensorsFile,
    ShardedCheckpoint,
    open_checkpoint,
    save_checkpoint,
    save_file,
)

__all__ = [
    "LoadReport",
    "match_state",
    "normalize_key",
    "BASE_MODEL_PREFIX",
    "FRAMEWORKS",
    "LEAF_RULES",
    "TIED_KEYS",
    "to_framework",
    "from_framework",
    "to_framework_key",
    "from_framework_key",
    "SAFE_WEIGHTS_NAME",
    "SAFE_WEIGHTS_INDEX_NAME",
    "SafetensorsFile",
    "ShardedCheckpoint",
    "open_checkpoint",
    "save_file",
    "save_checkpoint",
    "ResolvedCheckpoint",
    "resolve_checkpoint",
    "read_torch_bin",
    "PT_WEIGHTS_NAME",
]
