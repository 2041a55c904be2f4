"""``hidden_act`` name -> JAX function, with the exact definitions ``transformers`` uses.

``gelu`` is the exact erf GELU; the tanh approximations (``gelu_new``,
``gelu_fast``, ``gelu_pytorch_tanh``) are separate names because mixing them
up is a silent 1e-3 drift.
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp

from bert_core.errors import ConfigError

__all__ = ["ACT2FN", "get_activation"]


def _gelu(x):
    return jax.nn.gelu(x, approximate=False)


def _gelu_tanh(x):
    # transformers' NewGELUActivation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
    return 0.5 * x * (1.0 + jnp.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * jnp.power(x, 3.0))))


def _gelu_fast(x):
    # transformers' FastGELUActivation: the same curve written with x * 0.7978845608.
    return 0.5 * x * (1.0 + jnp.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x)))


def _quick_gelu(x):
    return x * jax.nn.sigmoid(1.702 * x)


def _linear(x):
    return x


ACT2FN: dict[str, Callable] = {
    "gelu": _gelu,
    "gelu_python": _gelu,
    "gelu_new": _gelu_tanh,
    "gelu_pytorch_tanh": _gelu_tanh,
    "gelu_fast": _gelu_fast,
    "quick_gelu": _quick_gelu,
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "linear": _linear,
}


def get_activation(name: str) -> Callable:
    """The activation function named ``name`` (a key of :data:`ACT2FN`).

    Raises:
        ConfigError: the name is unknown; the message lists the valid names.
    """
    try:
        return ACT2FN[name]
    except KeyError:
        raise ConfigError(f"hidden_act={name!r} is not supported; choose one of {sorted(ACT2FN)}") from None
