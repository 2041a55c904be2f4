"""The API both BERT tokenizers share: arguments, special tokens, padding, decoding.

`BertTokenizer` (pure Python) and `BertTokenizerFast` (the `tokenizers`
library) differ only in how they turn text into ids (``_encode_rows``) and ids
back into text (``_ids_to_text``); everything a user configures through
``__call__`` is parsed and validated here, once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from bert_core.errors import TokenizerError
from bert_core.hub import PushToHubMixin

from .batch_encoding import TENSOR_TYPES, BatchEncoding
from .files import TokenizerFilesMixin

__all__ = ["BertTokenizerBase", "VERY_LARGE_INTEGER", "SPECIAL_TOKEN_NAMES"]

logger = logging.getLogger("tokenization")

# transformers' "no limit" model_max_length; anything above LARGE_INTEGER means unset.
VERY_LARGE_INTEGER = int(1e30)
LARGE_INTEGER = int(1e20)
SPECIAL_TOKEN_NAMES = ("unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
_PADDING = {True: "longest", "longest": "longest", "max_length": "max_length", False: "do_not_pad", "do_not_pad": "do_not_pad"}
_TRUNCATION = {
    True: "longest_first",
    "longest_first": "longest_first",
    "only_first": "only_first",
    "only_second": "only_second",
    False: "do_not_truncate",
    None: "do_not_truncate",
    "do_not_truncate": "do_not_truncate",
}
_CLEANUPS = (
    (" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"),
    (" n't", "n't"), (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"),
)  # fmt: skip


def clean_up_tokenization(text: str) -> str:
    """Remove the spaces decoding puts before punctuation and English contractions."""
    for old, new in _CLEANUPS:
        text = text.replace(old, new)
    return text


def _is_text(value: Any, split: bool) -> bool:
    """One sequence: a string, or a list of word strings when pre-tokenized."""
    if split:
        return isinstance(value, (list, tuple)) and all(isinstance(w, str) for w in value)
    return isinstance(value, str)


class BertTokenizerBase(TokenizerFilesMixin, PushToHubMixin):
    """Shared behaviour of the two BERT tokenizers; not instantiated directly."""

    model_input_names = ["input_ids", "token_type_ids", "attention_mask"]
    pad_token_type_id = 0
    is_fast = False

    def __init__(
        self,
        *,
        do_lower_case: bool = True,
        tokenize_chinese_chars: bool = True,
        strip_accents: bool | None = None,
        unk_token: str = "[UNK]",
        sep_token: str = "[SEP]",
        pad_token: str = "[PAD]",
        cls_token: str = "[CLS]",
        mask_token: str = "[MASK]",
        additional_special_tokens: Sequence[str] | None = None,
        model_max_length: int | None = None,
        padding_side: str = "right",
        truncation_side: str = "right",
        clean_up_tokenization_spaces: bool = True,
        name_or_path: str = "",
    ):
        for name, side in (("padding_side", padding_side), ("truncation_side", truncation_side)):
            if side not in ("right", "left"):
                raise TokenizerError(f"{name} must be 'right' or 'left', got {side!r}")
        self.do_lower_case = do_lower_case
        self.tokenize_chinese_chars = tokenize_chinese_chars
        self.strip_accents = strip_accents
        self.unk_token, self.sep_token, self.pad_token = str(unk_token), str(sep_token), str(pad_token)
        self.cls_token, self.mask_token = str(cls_token), str(mask_token)
        self.additional_special_tokens = [str(t) for t in additional_special_tokens or ()]
        self.model_max_length = VERY_LARGE_INTEGER if model_max_length is None else int(model_max_length)
        self.padding_side = padding_side
        self.truncation_side = truncation_side
        self.clean_up_tokenization_spaces = clean_up_tokenization_spaces
        self.name_or_path = name_or_path
        self._warned_too_long = False

    # -- vocabulary (implemented by each engine) --------------------------------

    def get_vocab(self) -> dict[str, int]:
        """Token -> id, added tokens included."""
        raise NotImplementedError

    @property
    def vocab_size(self) -> int:
        """Size of the base vocabulary (without added tokens)."""
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.get_vocab())

    def _token_to_id(self, token: str) -> int | None:
        raise NotImplementedError

    def _id_to_token(self, index: int) -> str | None:
        raise NotImplementedError

    def convert_tokens_to_ids(self, tokens: str | Sequence[str]) -> int | list[int]:
        """Ids of ``tokens`` (a token or a list); unknown tokens map to ``unk_token_id``."""
        if isinstance(tokens, str):
            index = self._token_to_id(tokens)
            return self._token_to_id(self.unk_token) if index is None else index
        return [self.convert_tokens_to_ids(t) for t in tokens]

    def convert_ids_to_tokens(self, ids: int | Sequence[int], skip_special_tokens: bool = False) -> str | list[str]:
        """Tokens of ``ids`` (an id or a list), optionally without special tokens."""
        if isinstance(ids, int):
            return self._id_to_token(ids)
        skip = set(self.all_special_ids) if skip_special_tokens else set()
        return [self._id_to_token(int(i)) for i in ids if int(i) not in skip]

    def convert_tokens_to_string(self, tokens: Sequence[str]) -> str:
        """Join WordPiece tokens back into text (``##`` continuations glued on)."""
        return " ".join(tokens).replace(" ##", "").strip()

    # -- special tokens ---------------------------------------------------------

    @property
    def special_tokens_map(self) -> dict[str, Any]:
        """Role -> special token, as saved in ``special_tokens_map.json``."""
        out: dict[str, Any] = {name: getattr(self, name) for name in SPECIAL_TOKEN_NAMES}
        if self.additional_special_tokens:
            out["additional_special_tokens"] = list(self.additional_special_tokens)
        return out

    @property
    def all_special_tokens(self) -> list[str]:
        tokens = [getattr(self, name) for name in SPECIAL_TOKEN_NAMES] + self.additional_special_tokens
        return list(dict.fromkeys(tokens))

    @property
    def all_special_ids(self) -> list[int]:
        return self.convert_tokens_to_ids(self.all_special_tokens)

    unk_token_id = property(lambda self: self.convert_tokens_to_ids(self.unk_token))
    sep_token_id = property(lambda self: self.convert_tokens_to_ids(self.sep_token))
    pad_token_id = property(lambda self: self.convert_tokens_to_ids(self.pad_token))
    cls_token_id = property(lambda self: self.convert_tokens_to_ids(self.cls_token))
    mask_token_id = property(lambda self: self.convert_tokens_to_ids(self.mask_token))

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        """2 for ``[CLS] A [SEP]``, 3 for ``[CLS] A [SEP] B [SEP]``."""
        return 3 if pair else 2

    def build_inputs_with_special_tokens(self, token_ids_0: list[int], token_ids_1: list[int] | None = None) -> list[int]:
        """``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]``."""
        if token_ids_1 is None:
            return [self.cls_token_id, *token_ids_0, self.sep_token_id]
        return [self.cls_token_id, *token_ids_0, self.sep_token_id, *token_ids_1, self.sep_token_id]

    def get_special_tokens_mask(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None, already_has_special_tokens: bool = False
    ) -> list[int]:
        """1 where :meth:`build_inputs_with_special_tokens` puts a special token, else 0.

        With ``already_has_special_tokens=True``, ``token_ids_0`` is a full
        sequence and every special-token id in it is marked.
        """
        if already_has_special_tokens:
            if token_ids_1 is not None:
                raise TokenizerError("get_special_tokens_mask: pass one sequence when already_has_special_tokens=True")
            special = set(self.all_special_ids)
            return [1 if t in special else 0 for t in token_ids_0]
        if token_ids_1 is None:
            return [1] + [0] * len(token_ids_0) + [1]
        return [1] + [0] * len(token_ids_0) + [1] + [0] * len(token_ids_1) + [1]

    def create_token_type_ids_from_sequences(self, token_ids_0: list[int], token_ids_1: list[int] | None = None) -> list[int]:
        """Segment ids: 0 for ``[CLS] A [SEP]``, 1 for ``B [SEP]``."""
        first = [0] * (len(token_ids_0) + 2)
        return first if token_ids_1 is None else first + [1] * (len(token_ids_1) + 1)

    # -- encoding ---------------------------------------------------------------

    def __call__(
        self,
        text: str | Sequence[Any],
        text_pair: str | Sequence[Any] | None = None,
        *,
        add_special_tokens: bool = True,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        stride: int = 0,
        is_split_into_words: bool = False,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_tensors: str | None = None,
        return_token_type_ids: bool | None = None,
        return_attention_mask: bool | None = None,
        return_overflowing_tokens: bool = False,
        return_special_tokens_mask: bool = False,
        return_offsets_mapping: bool = False,
        return_length: bool = False,
        verbose: bool = True,
    ) -> BatchEncoding:
        """Tokenize a string, a pair, a batch of either, or pre-tokenized words.

        Args:
            text: a string, a list of strings (a batch), a list of ``(a, b)``
                pairs, or with ``is_split_into_words=True`` a list of words
                (or a batch of such lists).
            text_pair: second segments, matching ``text`` in batch size.
            padding: ``True``/"longest" (to the longest row), "max_length",
                ``False``; ``pad_to_multiple_of`` rounds the length up.
            truncation: ``True``/"longest_first", "only_first", "only_second",
                ``False``; to ``max_length`` (default ``model_max_length``).
            stride: overlap of consecutive windows with ``return_overflowing_tokens``.
            return_tensors: "np", "pt", "tf" or "jax" arrays instead of lists.

        Returns:
            A :class:`BatchEncoding` with ``input_ids``, ``token_type_ids``,
            ``attention_mask`` and the requested extras.

        Raises:
            TokenizerError: an argument has the wrong type or an unknown value.
        """
        rows, batched = self._rows(text, text_pair, is_split_into_words)
        padding, truncation, max_length = self._strategies(padding, truncation, max_length, pad_to_multiple_of, verbose)
        if return_tensors is not None and return_tensors not in TENSOR_TYPES:
            raise TokenizerError(f"return_tensors must be one of {', '.join(map(repr, TENSOR_TYPES))} or None, got {return_tensors!r}")
        if padding_side not in (None, "right", "left"):
            raise TokenizerError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
        if not isinstance(stride, int) or stride < 0:
            raise TokenizerError(f"stride must be a non-negative int, got {stride!r}")
        if return_offsets_mapping and not self.is_fast:
            raise TokenizerError("return_offsets_mapping needs the fast tokenizer (BertTokenizerFast)")
        options = dict(
            add_special_tokens=add_special_tokens, padding=padding, truncation=truncation, max_length=max_length,
            stride=stride, is_split_into_words=is_split_into_words, pad_to_multiple_of=pad_to_multiple_of,
            padding_side=padding_side or self.padding_side, return_tensors=return_tensors,
            return_token_type_ids="token_type_ids" in self.model_input_names if return_token_type_ids is None else return_token_type_ids,
            return_attention_mask="attention_mask" in self.model_input_names if return_attention_mask is None else return_attention_mask,
            return_overflowing_tokens=return_overflowing_tokens, return_special_tokens_mask=return_special_tokens_mask,
            return_offsets_mapping=return_offsets_mapping, return_length=return_length,
        )  # fmt: skip
        encoding = self._encode_rows(rows, batched, **options)
        if verbose and max_length is None:
            ids = encoding["input_ids"]
            if hasattr(ids, "shape"):
                self._warn_if_too_long(int(ids.shape[-1]))
            else:
                for row in ids if ids and isinstance(ids[0], list) else [ids]:
                    self._warn_if_too_long(len(row))
        return encoding

    def encode(self, text: Any, text_pair: Any = None, **kwargs: Any) -> list[int]:
        """The ``input_ids`` of one sequence or pair."""
        return list(self(text, text_pair, **kwargs)["input_ids"])

    def tokenize(self, text: str, pair: str | None = None, add_special_tokens: bool = False) -> list[str]:
        """The token strings of ``text`` (and ``pair``)."""
        ids = self(text, pair, add_special_tokens=add_special_tokens, verbose=False)["input_ids"]
        return self.convert_ids_to_tokens(ids)

    def _warn_if_too_long(self, length: int) -> None:
        if length > self.model_max_length and not self._warned_too_long:
            logger.warning(
                "Token indices sequence length is longer than the specified maximum sequence length for this "
                f"model ({length} > {self.model_max_length}). Running this sequence through the model will "
                "result in indexing errors"
            )
            self._warned_too_long = True

    def _rows(self, text: Any, text_pair: Any, split: bool) -> tuple[list[tuple[Any, Any]], bool]:
        """Normalise the input to a list of ``(first, second_or_None)`` rows."""
        if _is_text(text, split):
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

    def _strategies(self, padding: Any, truncation: Any, max_length: Any, multiple: Any, verbose: bool) -> tuple[str, str, int | None]:
        """Resolve the padding/truncation strategy names and the target length, as transformers does."""
        if not isinstance(padding, (bool, str)) or padding not in _PADDING:
            raise TokenizerError(f"padding must be True, False, 'longest', 'max_length' or 'do_not_pad', got {padding!r}")
        if not (truncation is None or isinstance(truncation, (bool, str))) or truncation not in _TRUNCATION:
            raise TokenizerError(
                f"truncation must be True, False, 'longest_first', 'only_first', 'only_second' or 'do_not_truncate', got {truncation!r}"
            )
        for name, value in (("max_length", max_length), ("pad_to_multiple_of", multiple)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                raise TokenizerError(f"{name} must be a positive int or None, got {value!r}")
        if max_length is not None and padding is False and truncation is None:
            truncation = "longest_first"  # transformers: max_length alone turns truncation on
        pad, trunc = _PADDING[padding], _TRUNCATION[truncation]
        if max_length is None:
            unset = self.model_max_length > LARGE_INTEGER
            if pad == "max_length":
                pad, max_length = ("do_not_pad", None) if unset else (pad, self.model_max_length)
            if trunc != "do_not_truncate":
                trunc, max_length = ("do_not_truncate", max_length) if unset else (trunc, self.model_max_length)
        if trunc != "do_not_truncate" and pad != "do_not_pad" and multiple and max_length and max_length % multiple:
            raise TokenizerError(f"truncation length max_length={max_length} is not a multiple of pad_to_multiple_of={multiple}")
        return pad, trunc, max_length

    def _encode_rows(self, rows: list[tuple[Any, Any]], batched: bool, **options: Any) -> BatchEncoding:
        raise NotImplementedError

    def pad(
        self,
        encoded_inputs: dict[str, Any] | list[dict[str, Any]],
        padding: bool | str = True,
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_attention_mask: bool | None = None,
        return_tensors: str | None = None,
    ) -> BatchEncoding:
        """Pad already-encoded rows (a dict of lists, or a list of dicts, e.g. from a data collator).

        ``input_ids`` are padded with ``pad_token_id``, ``token_type_ids`` with 0,
        ``special_tokens_mask`` with 1, and ``attention_mask`` (built if absent)
        with 0, on ``padding_side``.
        """
        if isinstance(encoded_inputs, (list, tuple)):
            encoded_inputs = {key: [row[key] for row in encoded_inputs] for key in encoded_inputs[0]}
        strategy = _PADDING.get(padding) if isinstance(padding, (bool, str)) else None
        if strategy is None:
            raise TokenizerError(f"padding must be True, False, 'longest', 'max_length' or 'do_not_pad', got {padding!r}")
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names
        side = padding_side or self.padding_side
        ids = encoded_inputs["input_ids"]
        rows = ids if ids and isinstance(ids[0], (list, tuple)) else None
        if rows is None:
            return BatchEncoding(self._pad_row(dict(encoded_inputs), strategy, max_length, pad_to_multiple_of, side, return_attention_mask), tensor_type=return_tensors)
        if strategy == "longest":
            strategy, max_length = "max_length", max(len(r) for r in rows)
        out: dict[str, list[Any]] = {}
        for i in range(len(rows)):
            row = {key: value[i] for key, value in encoded_inputs.items()}
            for key, value in self._pad_row(row, strategy, max_length, pad_to_multiple_of, side, return_attention_mask).items():
                out.setdefault(key, []).append(value)
        return BatchEncoding(out, tensor_type=return_tensors)

    def _pad_row(self, row: dict[str, Any], strategy: str, max_length: int | None, multiple: int | None, side: str, mask: bool) -> dict[str, Any]:
        ids = list(row["input_ids"])
        if strategy == "longest":
            max_length = len(ids)
        if max_length is not None and multiple and max_length % multiple:
            max_length = (max_length // multiple + 1) * multiple
        if mask and "attention_mask" not in row:
            row["attention_mask"] = [1] * len(ids)
        missing = (max_length - len(ids)) if strategy != "do_not_pad" and max_length is not None else 0
        if missing > 0:
            fill = {"input_ids": self.pad_token_id, "attention_mask": 0, "token_type_ids": self.pad_token_type_id, "special_tokens_mask": 1}
            for key, value in fill.items():
                if key in row:
                    row[key] = list(row[key]) + [value] * missing if side == "right" else [value] * missing + list(row[key])
        return row

    # -- decoding ---------------------------------------------------------------

    def decode(self, token_ids: Any, skip_special_tokens: bool = False, clean_up_tokenization_spaces: bool | None = None) -> str:
        """Text of ``token_ids`` (a list, an array, a tensor or one id)."""
        ids = _id_list(token_ids)
        text = self._ids_to_text(ids, skip_special_tokens)
        cleanup = self.clean_up_tokenization_spaces if clean_up_tokenization_spaces is None else clean_up_tokenization_spaces
        return clean_up_tokenization(text) if cleanup else text

    def batch_decode(self, sequences: Any, skip_special_tokens: bool = False, clean_up_tokenization_spaces: bool | None = None) -> list[str]:
        """:meth:`decode` of each row of ``sequences``."""
        return [self.decode(s, skip_special_tokens, clean_up_tokenization_spaces) for s in _rows_of(sequences)]

    def _ids_to_text(self, ids: list[int], skip_special_tokens: bool) -> str:
        return self.convert_tokens_to_string(self.convert_ids_to_tokens(ids, skip_special_tokens=skip_special_tokens))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name_or_path={self.name_or_path!r}, vocab_size={self.vocab_size}, "
            f"model_max_length={self.model_max_length}, do_lower_case={self.do_lower_case}, "
            f"padding_side={self.padding_side!r}, special_tokens={self.special_tokens_map})"
        )


def _id_list(token_ids: Any) -> list[int]:
    if hasattr(token_ids, "tolist"):  # numpy, torch, jax; TensorFlow through .numpy()
        token_ids = token_ids.tolist()
    elif hasattr(token_ids, "numpy"):
        token_ids = token_ids.numpy().tolist()
    if isinstance(token_ids, int):
        return [token_ids]
    if not isinstance(token_ids, (list, tuple)) or not all(isinstance(i, int) for i in token_ids):
        raise TokenizerError(f"token_ids must be an int or a flat sequence of ints, got {type(token_ids).__name__}")
    return list(token_ids)


def _rows_of(sequences: Any) -> list[Any]:
    if hasattr(sequences, "tolist"):
        return sequences.tolist()
    if hasattr(sequences, "numpy"):
        return sequences.numpy().tolist()
    return list(sequences)
