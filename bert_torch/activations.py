"""``config.hidden_act`` name -> activation function, as ``transformers`` defines each one.

``gelu`` is the exact erf GELU; ``gelu_new`` / ``gelu_fast`` / ``gelu_pytorch_tanh``
are tanh approximations (they differ from ``gelu`` by up to ~1e-3, a silent
drift if confused).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch.nn import functional as F

from bert_core.errors import ConfigError

__all__ = ["ACT2FN", "get_activation"]


def _gelu_new(x: torch.Tensor) -> torch.Tensor:
    # The GPT-2 / Google BERT tanh approximation, written as transformers' NewGELUActivation.
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def _gelu_fast(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1.0 + torch.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x)))


def _gelu_python(x: torch.Tensor) -> torch.Tensor:
    return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


def _quick_gelu(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(1.702 * x)


def _linear(x: torch.Tensor) -> torch.Tensor:
    return x


ACT2FN: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": F.gelu,
    "gelu_python": _gelu_python,
    "gelu_new": _gelu_new,
    "gelu_fast": _gelu_fast,
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "quick_gelu": _quick_gelu,
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "linear": _linear,
}


def get_activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The activation called ``name`` (a ``config.hidden_act`` value).

    Raises:
        ConfigError: unknown name (the message lists the supported ones).
    """
    try:
        return ACT2FN[name]
    except KeyError:
        raise ConfigError(f"hidden_act {name!r} is not supported; choose one of {sorted(ACT2FN)}") from None
