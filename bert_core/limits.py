"""Size limits checked before anything is allocated, each with an environment override.

A config or file that declares a model far larger than any BERT (``vocab_size`` 1e12,
``num_hidden_layers`` 1e6) is refused by name instead of exhausting memory or building for
minutes. The defaults sit far above real checkpoints (bert-large: 336M parameters, a 30k-token
vocabulary of ~230 KB), so only a corrupt or hostile file meets them; raise one by setting its
environment variable (``TRIBERT_MAX_PARAMS=50e9``).
"""

from __future__ import annotations

import os
from typing import Any

from .errors import ConfigError

__all__ = ["MAX_PARAMS", "MAX_LAYERS", "MAX_LABELS", "MAX_VOCAB_BYTES", "limit", "implied_parameters"]

#: Parameters a config may imply (``TRIBERT_MAX_PARAMS``): 20 billion, 60x bert-large (80 GB in float32).
MAX_PARAMS = 20_000_000_000
#: Encoder layers (``TRIBERT_MAX_LAYERS``): every layer is a dozen framework modules, so 1e6 layers build
#: for minutes even at tiny widths; the deepest BERTs have 24-48.
MAX_LAYERS = 1024
#: Labels of a classification head (``TRIBERT_MAX_LABELS``): each is a Python dict entry in id2label/label2id.
MAX_LABELS = 1_000_000
#: Bytes of a ``vocab.txt`` / ``tokenizer.json`` (``TRIBERT_MAX_VOCAB_BYTES``): 1 GiB, ~4000x bert-base's vocab.txt.
MAX_VOCAB_BYTES = 2**30

_ENV = {"MAX_PARAMS": "TRIBERT_MAX_PARAMS", "MAX_LAYERS": "TRIBERT_MAX_LAYERS", "MAX_LABELS": "TRIBERT_MAX_LABELS", "MAX_VOCAB_BYTES": "TRIBERT_MAX_VOCAB_BYTES"}
_DEFAULTS = {"MAX_PARAMS": MAX_PARAMS, "MAX_LAYERS": MAX_LAYERS, "MAX_LABELS": MAX_LABELS, "MAX_VOCAB_BYTES": MAX_VOCAB_BYTES}


def limit(name: str) -> int:
    """The current value of limit ``name`` (``"MAX_PARAMS"``...): its environment variable, else the default.

    Raises:
        ConfigError: the environment variable is not a positive number.
    """
    variable = _ENV[name]
    text = os.environ.get(variable)
    if text is None or not text.strip():
        return _DEFAULTS[name]
    try:
        value = int(float(text))  # "50e9" reads as well as "50000000000"
    except (ValueError, OverflowError):
        value = 0
    if value <= 0:
        raise ConfigError(f"{variable}={text!r} must be a positive number")
    return value


def implied_parameters(config: Any) -> int:
    """An upper bound on the parameters of any head built from ``config`` (Python ints: no overflow).

    Embeddings, every layer (with cross-attention and relative positions when configured), the
    pooler, an untied masked-LM head and the largest classifier.
    """
    h, i, v = config.hidden_size, config.intermediate_size, config.vocab_size
    p, t, layers = config.max_position_embeddings, config.type_vocab_size, config.num_hidden_layers
    attention = 4 * (h * h + h) + 2 * h
    if config.position_embedding_type in ("relative_key", "relative_key_query"):
        attention += (2 * p - 1) * (h // config.num_attention_heads)
    if config.add_cross_attention:
        attention *= 2
    layer = attention + 2 * h * i + i + 3 * h
    embeddings = (v + p + t) * h + 2 * h
    heads = (h * h + h) + (h * h + 3 * h + v * h + 2 * v) + max(config.num_labels, 2) * (h + 1)
    return embeddings + layers * layer + heads


def check_parameters(config: Any) -> None:
    """Refuse a config implying more than ``MAX_PARAMS`` parameters or ``MAX_LAYERS`` layers, before any
    framework builds or allocates them.

    Raises:
        ConfigError: naming the count, the limit, the fields that drive it and how to raise the limit.
    """
    if config.num_hidden_layers > limit("MAX_LAYERS"):
        raise ConfigError(f"num_hidden_layers={config.num_hidden_layers} is above the limit of {limit('MAX_LAYERS')} "
                          f"layers; set TRIBERT_MAX_LAYERS to raise it if this model is real")
    count, ceiling = implied_parameters(config), limit("MAX_PARAMS")
    if count > ceiling:
        raise ConfigError(
            f"the config implies {count:,} parameters (vocab_size={config.vocab_size}, hidden_size="
            f"{config.hidden_size}, num_hidden_layers={config.num_hidden_layers}, intermediate_size="
            f"{config.intermediate_size}, max_position_embeddings={config.max_position_embeddings}), above the "
            f"limit of {ceiling:,}; set TRIBERT_MAX_PARAMS to raise it if this model is real"
        )
