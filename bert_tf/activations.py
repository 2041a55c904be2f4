"""``hidden_act`` name -> TensorFlow function, the same formulas as ``transformers``."""

from __future__ import annotations

import math
from typing import Callable

import tensorflow as tf

from bert_core.errors import ConfigError

__all__ = ["ACT2FN", "get_activation"]


def gelu(x: tf.Tensor) -> tf.Tensor:
    """Exact GELU, ``0.5 x (1 + erf(x / sqrt 2))`` (BERT's ``"gelu"``; a tanh GELU would drift by 1e-3)."""
    return 0.5 * x * (1.0 + tf.math.erf(x / tf.cast(math.sqrt(2.0), x.dtype)))


def gelu_new(x: tf.Tensor) -> tf.Tensor:
    """The tanh approximation of GELU (``gelu_new``, ``gelu_fast``, ``gelu_pytorch_tanh``)."""
    c = tf.cast(math.sqrt(2.0 / math.pi), x.dtype)
    return 0.5 * x * (1.0 + tf.tanh(c * (x + 0.044715 * tf.pow(x, 3))))


def gelu_fast(x: tf.Tensor) -> tf.Tensor:
    """``transformers``' FastGELU: ``0.5 x (1 + tanh(x * 0.7978845608 * (1 + 0.044715 x^2)))``."""
    return 0.5 * x * (1.0 + tf.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x)))


def quick_gelu(x: tf.Tensor) -> tf.Tensor:
    """``x * sigmoid(1.702 x)``."""
    return x * tf.sigmoid(1.702 * x)


def linear(x: tf.Tensor) -> tf.Tensor:
    """The identity."""
    return x


ACT2FN: dict[str, Callable[[tf.Tensor], tf.Tensor]] = {
    "gelu": gelu,
    "gelu_python": gelu,
    "gelu_new": gelu_new,
    "gelu_fast": gelu_fast,
    "gelu_pytorch_tanh": gelu_new,
    "quick_gelu": quick_gelu,
    "relu": tf.nn.relu,
    "silu": tf.nn.silu,
    "swish": tf.nn.silu,
    "tanh": tf.tanh,
    "sigmoid": tf.sigmoid,
    "linear": linear,
}


def get_activation(name: str) -> Callable[[tf.Tensor], tf.Tensor]:
    """The function for ``config.hidden_act``; :class:`ConfigError` lists the valid names."""
    try:
        return ACT2FN[name]
    except KeyError:
        raise ConfigError(f"hidden_act {name!r} is not supported; choose one of {sorted(ACT2FN)}") from None
