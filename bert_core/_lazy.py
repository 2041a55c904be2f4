"""Import optional frameworks only when they are used (einops' ``_backends`` idea)."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingBackendError

_EXTRA = {
    "torch": "torch",
    "tensorflow": "tf",
    "tensorflow_text": "tf",
    "keras": "tf",
    "jax": "flax",
    "flax": "flax",
    "optax": "flax",
}


def require(module: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingBackendError` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        root = module.split(".")[0]
        extra = _EXTRA.get(root, "all")
        raise MissingBackendError(
            f"{module!r} is needed here but could not be imported ({exc}); "
            f"install it with `pip install tribert[{extra}]`"
        ) from exc
