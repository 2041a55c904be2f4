"""`BatchEncoding`: what a tokenizer call returns.

A dict (``input_ids``, ``token_type_ids``, ``attention_mask``, ...) that also
allows attribute access, converts its values to numpy / torch / TensorFlow /
JAX arrays, moves torch tensors with ``.to(device)`` and, for the fast
tokenizer, maps tokens back to words and characters.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from bert_core._lazy import require
from bert_core.errors import TokenizerError

__all__ = ["BatchEncoding", "CharSpan", "TokenSpan", "TENSOR_TYPES", "to_tensor"]

TENSOR_TYPES = ("np", "pt", "tf", "jax")


class CharSpan(NamedTuple):
    """A character span ``[start, end)`` in the original text."""

    start: int
    end: int


class TokenSpan(NamedTuple):
    """A token span ``[start, end)`` in the encoded sequence."""

    start: int
    end: int


def to_tensor(value: Any, tensor_type: str) -> Any:
    """Convert a (nested) list of ints to an array of ``tensor_type``.

    Raises:
        TokenizerError: the lists are ragged (padding is off) or the type is unknown.
    """
    if tensor_type not in TENSOR_TYPES:
        raise TokenizerError(f"return_tensors must be one of {', '.join(map(repr, TENSOR_TYPES))} or None, got {tensor_type!r}")
    try:
        array = np.asarray(value)
        if array.dtype == object:
            raise ValueError
    except ValueError:
        raise TokenizerError(
            "cannot build a tensor from sequences of different lengths: pass padding=True "
            "(and truncation=True for inputs longer than the model accepts)"
        ) from None
    if array.dtype.kind == "f" and array.size == 0:
        array = array.astype(np.int64)
    if tensor_type == "np":
        return array
    if tensor_type == "pt":
        return require("torch").from_numpy(np.ascontiguousarray(array))
    if tensor_type == "tf":
        return require("tensorflow").constant(array)
    return require("jax.numpy").asarray(array)


class BatchEncoding(dict):
    """The tokenizer's output: a dict with attribute access and tensor conversion.

    Args:
        data: field name -> list (or nested lists) of ints.
        encodings: the ``tokenizers.Encoding`` objects behind each row (fast
            tokenizer only), used by :meth:`word_ids` and friends.
        tensor_type: convert every value with :func:`to_tensor` ("np", "pt",
            "tf", "jax") or keep Python lists (``None``).
        prepend_batch_axis: wrap single-sequence values in a batch of one
            before converting.
    """

    def __init__(
        self,
        data: dict[str, Any] | None = None,
        encodings: list[Any] | None = None,
        tensor_type: str | None = None,
        prepend_batch_axis: bool = False,
    ):
        super().__init__(data or {})
        self._encodings = encodings
        if tensor_type is not None:
            self.convert_to_tensors(tensor_type, prepend_batch_axis=prepend_batch_axis)

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"BatchEncoding has no field {name!r} (fields: {', '.join(self)})") from None

    def __getitem__(self, key: str | int) -> Any:
        if isinstance(key, int):
            # As in transformers: an int selects the fast tokenizer's Encoding of that row.
            if self._encodings is None:
                raise TokenizerError("integer indexing needs the fast tokenizer's encodings; index by field name")
            return self._encodings[key]
        if isinstance(key, slice):  # as transformers: the rows key[...] of every field
            return {name: value[key] for name, value in self.items()}
        return super().__getitem__(key)

    def __getstate__(self) -> dict[str, Any]:
        return {"data": dict(self), "encodings": self._encodings}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.update(state["data"])
        self._encodings = state["encodings"]

    # -- tensors ---------------------------------------------------------------

    def convert_to_tensors(self, tensor_type: str, prepend_batch_axis: bool = False) -> "BatchEncoding":
        """Convert every value in place to ``tensor_type`` arrays; returns ``self``."""
        for key, value in list(self.items()):
            if prepend_batch_axis:
                value = [value]
            try:
                self[key] = to_tensor(value, tensor_type)
            except TokenizerError as err:
                raise TokenizerError(f"field {key!r}: {err}") from None
        return self

    def to(self, device: Any) -> "BatchEncoding":
        """Move every torch tensor to ``device`` (a string, int or ``torch.device``); returns ``self``."""
        torch = require("torch")
        if not isinstance(device, (str, int, torch.device)):
            raise TokenizerError(f"BatchEncoding.to expects a device (str, int or torch.device), got {type(device).__name__}")
        for key, value in self.items():
            if isinstance(value, torch.Tensor):
                self[key] = value.to(device)
        return self

    # -- alignment (fast tokenizer) --------------------------------------------

    @property
    def data(self) -> dict[str, Any]:
        """The fields as a plain dict (transformers' ``BatchEncoding.data``)."""
        return dict(self)

    @property
    def encodings(self) -> list[Any] | None:
        """The ``tokenizers.Encoding`` of each row, or ``None`` for the pure-Python tokenizer."""
        return self._encodings

    @property
    def is_fast(self) -> bool:
        return self._encodings is not None

    @property
    def n_sequences(self) -> int | None:
        """1 for single sequences, 2 for pairs (fast tokenizer only)."""
        return self._encodings[0].n_sequences if self._encodings else None

    def _encoding(self, batch_index: int, method: str) -> Any:
        if self._encodings is None:
            raise TokenizerError(f"{method}() is only available with the fast tokenizer (BertTokenizerFast)")
        if not 0 <= batch_index < len(self._encodings):
            raise TokenizerError(f"{method}(batch_index={batch_index}): the batch has {len(self._encodings)} rows")
        return self._encodings[batch_index]

    def _locate(self, batch_or_index: int, index: int | None, method: str) -> tuple[Any, int]:
        """transformers' convention: ``(index)`` for a single row, ``(batch_index, index)`` for a batch."""
        batch_index, index = (0, batch_or_index) if index is None else (batch_or_index, index)
        if index is None:
            raise TokenizerError(f"{method}() needs an index")
        encoding = self._encoding(batch_index, method)
        if method.startswith("token_") and index < 0:
            index += len(encoding.ids)
        return encoding, index

    def tokens(self, batch_index: int = 0) -> list[str]:
        """The token strings of row ``batch_index``."""
        return self._encoding(batch_index, "tokens").tokens

    def word_ids(self, batch_index: int = 0) -> list[int | None]:
        """For each token of row ``batch_index``, the index of its word (``None`` for special tokens and padding)."""
        return self._encoding(batch_index, "word_ids").word_ids

    words = word_ids

    def sequence_ids(self, batch_index: int = 0) -> list[int | None]:
        """For each token, 0 or 1 for the sequence of a pair it came from (``None`` for special tokens)."""
        return self._encoding(batch_index, "sequence_ids").sequence_ids

    def token_to_sequence(self, batch_or_token_index: int, token_index: int | None = None) -> int | None:
        """0 or 1: which sequence of the pair the token belongs to (``None`` for special tokens)."""
        encoding, index = self._locate(batch_or_token_index, token_index, "token_to_sequence")
        return encoding.token_to_sequence(index)

    def token_to_word(self, batch_or_token_index: int, token_index: int | None = None) -> int | None:
        """The word index of a token: ``(token_index)`` or ``(batch_index, token_index)``."""
        encoding, index = self._locate(batch_or_token_index, token_index, "token_to_word")
        return encoding.token_to_word(index)

    def token_to_chars(self, batch_or_token_index: int, token_index: int | None = None) -> CharSpan | None:
        """The character span of a token in its input text (``None`` for special tokens)."""
        encoding, index = self._locate(batch_or_token_index, token_index, "token_to_chars")
        span = encoding.token_to_chars(index)
        return CharSpan(*span) if span is not None else None

    def char_to_token(self, batch_or_char_index: int, char_index: int | None = None, sequence_index: int = 0) -> int | None:
        """The token covering a character (``None`` for whitespace): ``(char_index)`` or ``(batch_index, char_index)``."""
        encoding, index = self._locate(batch_or_char_index, char_index, "char_to_token")
        return encoding.char_to_token(index, sequence_index)

    def char_to_word(self, batch_or_char_index: int, char_index: int | None = None, sequence_index: int = 0) -> int | None:
        """The word containing a character, in sequence ``sequence_index`` of a pair."""
        encoding, index = self._locate(batch_or_char_index, char_index, "char_to_word")
        return encoding.char_to_word(index, sequence_index)

    def word_to_tokens(self, batch_or_word_index: int, word_index: int | None = None, sequence_index: int = 0) -> TokenSpan | None:
        """The token span ``(start, end)`` of a word: ``(word_index)`` or ``(batch_index, word_index)``."""
        encoding, index = self._locate(batch_or_word_index, word_index, "word_to_tokens")
        span = encoding.word_to_tokens(index, sequence_index)
        return TokenSpan(*span) if span is not None else None

    def word_to_chars(self, batch_or_word_index: int, word_index: int | None = None, sequence_index: int = 0) -> CharSpan | None:
        """The character span ``(start, end)`` of a word in its input text."""
        encoding, index = self._locate(batch_or_word_index, word_index, "word_to_chars")
        span = encoding.word_to_chars(index, sequence_index)
        return CharSpan(*span) if span is not None else None
