"""What the tokenizers accept as input: texts, pairs, batches, pre-split words, token ids.

transformers decides from the value's shape whether a call is one sequence,
a pair or a batch; these helpers make that decision once for both engines.
"""

from __future__ import annotations

from typing import Any

from bert_core.errors import TokenizerError

__all__ = ["input_rows", "single_row", "id_list", "rows_of"]


def _is_text(value: Any, split: bool) -> bool:
    """One sequence: a string, or a list of word strings when pre-tokenized."""
    if split:
        return isinstance(value, (list, tuple)) and all(isinstance(w, str) for w in value)
    return isinstance(value, str)



def input_rows(text: Any, text_pair: Any, split: bool, force_batch: bool = False) -> tuple[list[tuple[Any, Any]], bool]:
    """Normalise the input to a list of ``(first, second_or_None)`` rows."""
    if _is_text(text, split) and not force_batch:
        if text_pair is not None and not _is_text(text_pair, split):
            raise TokenizerError(f"text_pair must be {'a list of words' if split else 'a string'} like text, got {type(text_pair).__name__}")
        return [(text, text_pair)], False
    if not isinstance(text, (list, tuple)):
        expected = "a list of words or a batch of such lists" if split else "a string, a list of strings or a list of (text, text_pair) tuples"
        raise TokenizerError(f"text must be {expected}, got {type(text).__name__}")
    if text_pair is not None:
        if not isinstance(text_pair, (list, tuple)) or len(text_pair) != len(text):
            raise TokenizerError(f"text_pair must be a batch of the same length as text ({len(text)})")
        rows = list(zip(text, text_pair))
    else:
        rows = []
        for item in text:
            is_pair = isinstance(item, tuple if split else (tuple, list)) and len(item) == 2 and not _is_text(item, split)
            rows.append(tuple(item) if is_pair else (item, None))
    for index, (first, second) in enumerate(rows):
        for value in (first,) if second is None else (first, second):
            if not _is_text(value, split):
                raise TokenizerError(
                    f"text[{index}] must be {'a list of words' if split else 'a string'}, got {type(value).__name__}"
                    + ("" if split else " (pass is_split_into_words=True for pre-tokenized input)")
                )
    return rows, True


def single_row(text: Any, text_pair: Any, split: bool) -> list[tuple[Any, Any]]:
    """``encode_plus``'s input: one text (or list of words), optionally a pair."""
    for name, value in (("text", text), ("text_pair", text_pair)):
        if value is None and name == "text_pair":
            continue
        ok = _is_text(value, split) or (isinstance(value, (list, tuple)) and all(isinstance(i, (int, str)) for i in value))
        if not ok:
            raise TypeError(f"encode_plus: {name} must be a string, a list of tokens or a list of ids, got {type(value).__name__}")
    return [(text, text_pair)]


def id_list(token_ids: Any) -> list[int]:
    """``decode``'s input (a list, an array, a tensor or one id) as a list of ints."""
    if hasattr(token_ids, "tolist"):  # numpy, torch, jax; TensorFlow through .numpy()
        token_ids = token_ids.tolist()
    elif hasattr(token_ids, "numpy"):
        token_ids = token_ids.numpy().tolist()
    if isinstance(token_ids, int):
        return [token_ids]
    if not isinstance(token_ids, (list, tuple)) or not all(isinstance(i, int) for i in token_ids):
        raise TokenizerError(f"token_ids must be an int or a flat sequence of ints, got {type(token_ids).__name__}")
    return list(token_ids)


def rows_of(sequences: Any) -> list[Any]:
    """``batch_decode``'s input (nested lists, an array or a tensor) as a list of rows."""
    if hasattr(sequences, "tolist"):
        return sequences.tolist()
    if hasattr(sequences, "numpy"):
        return sequences.numpy().tolist()
    return list(sequences)
