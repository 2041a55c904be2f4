"""The input contract: ids, token types and positions are checked once, the same way in every backend.

An id outside its embedding table is a silent bug in every framework: torch
raises a bare ``IndexError`` from deep inside ``F.embedding``, TF wraps
negative ids and clamps on some devices, XLA gathers clamp or return NaN.
Every backend therefore calls :func:`validate_inputs` on the host, eagerly and
before a compiled call, and raises :class:`InputError` naming the argument, the
offending value and the valid range.

Backends pass their own ``extrema`` (``(min, max)`` of an integer tensor as
Python ints) so this module never imports a framework; the default handles
anything ``numpy.asarray`` accepts (numpy arrays, lists, CPU tensors, eager TF
tensors, concrete JAX arrays).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .errors import InputError

__all__ = ["InputError", "validate_inputs", "numpy_extrema", "max_sequence_length"]


def numpy_extrema(values: Any) -> tuple[int, int] | None:
    """``(min, max)`` of an integer array as Python ints, or None when it is empty."""
    array = np.asarray(values)
    if array.size == 0:
        return None
    return int(array.min()), int(array.max())


def max_sequence_length(config) -> int:
    """The longest sequence (cache included) the model can take: ``max_position_embeddings``.

    Absolute positions index the position table; relative positions index the distance
    table of ``2 * max_position_embeddings - 1`` rows, which covers the same lengths.
    """
    return int(config.max_position_embeddings)


def _check(name: str, values: Any, limit: int, what: str, extrema: Callable[[Any], tuple[int, int] | None]) -> None:
    if values is None:
        return
    bounds = extrema(values)
    if bounds is None:
        return
    low, high = bounds
    if low < 0 or high >= limit:
        bad = low if low < 0 else high
        raise InputError(f"{name} holds {bad}, outside [0, {limit}) ({what}); "
                         f"check the tokenizer matches the model, or the config's sizes")


def validate_inputs(
    config,
    *,
    input_ids: Any = None,
    token_type_ids: Any = None,
    position_ids: Any = None,
    seq_length: int | None = None,
    past_key_values_length: int = 0,
    extrema: Callable[[Any], tuple[int, int] | None] = numpy_extrema,
) -> None:
    """Raise :class:`InputError` if an index input would read outside its table.

    Args:
        config: the model's :class:`~bert_core.BertConfig`.
        input_ids: token ids, each in ``[0, vocab_size)``.
        token_type_ids: segment ids, each in ``[0, type_vocab_size)``.
        position_ids: positions, each in ``[0, max_position_embeddings)``.
        seq_length: the sequence length when ``position_ids`` is None (the default
            positions ``past .. past + seq_length - 1`` must fit the table).
        past_key_values_length: tokens already in the cache.
        extrema: ``(min, max)`` of an integer tensor as ints (the backend's own, to avoid copies).
    """
    _check("input_ids", input_ids, config.vocab_size, f"vocab_size={config.vocab_size}", extrema)
    _check("token_type_ids", token_type_ids, config.type_vocab_size,
           f"type_vocab_size={config.type_vocab_size}", extrema)
    limit = max_sequence_length(config)
    if position_ids is not None:
        _check("position_ids", position_ids, limit, f"max_position_embeddings={limit}", extrema)
    elif seq_length is not None and past_key_values_length + seq_length > limit:
        raise InputError(
            f"sequence length {past_key_values_length + seq_length}"
            + (f" ({past_key_values_length} cached + {seq_length} new)" if past_key_values_length else "")
            + f" exceeds max_position_embeddings={limit}; truncate the input (tokenizer truncation=True, "
            f"max_length={limit})")
