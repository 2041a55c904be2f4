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

from .added_tokens import SPECIAL_TOKEN_NAMES, AddedToken, SpecialTokensMixin
from .batch_encoding import TENSOR_TYPES, BatchEncoding
from .files import TokenizerFilesMixin
from .inputs import id_list, input_rows, rows_of, single_row
from .padding import VERY_LARGE_INTEGER, PaddingMixin

__all__ = ["BertTokenizerBase", "VERY_LARGE_INTEGER", "SPECIAL_TOKEN_NAMES", "init_arguments"]

logger = logging.getLogger("tokenization")

_CLEANUPS = (
    (" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"),
    (" n't", "n't"), (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"),
)  # fmt: skip


def clean_up_tokenization(text: str) -> str:
    """Remove the spaces decoding puts before punctuation and English contractions."""
    for old, new in _CLEANUPS:
        text = text.replace(old, new)
    return text


# __call__'s keyword options and their defaults (transformers 4.x names).
_CALL_DEFAULTS: dict[str, Any] = dict(
    add_special_tokens=True, padding=False, truncation=None, max_length=None, stride=0, is_split_into_words=False,
    pad_to_multiple_of=None, padding_side=None, return_tensors=None, return_token_type_ids=None,
    return_attention_mask=None, return_overflowing_tokens=False, return_special_tokens_mask=False,
    return_offsets_mapping=False, return_length=False, verbose=True, split_special_tokens=None,
)  # fmt: skip
_CALL_OPTIONS = frozenset(_CALL_DEFAULTS)


def init_arguments(values: dict[str, Any]) -> dict[str, Any]:
    """The arguments an ``__init__`` was called with (its ``locals()`` at entry), as transformers' ``init_kwargs``."""
    out = {k: v for k, v in values.items() if k not in ("self", "__class__", "kwargs")}
    out.update(values.get("kwargs") or {})
    return out


class BertTokenizerBase(SpecialTokensMixin, PaddingMixin, TokenizerFilesMixin, PushToHubMixin):
    """Shared behaviour of the two BERT tokenizers; not instantiated directly.

    Keyword arguments transformers accepts but BERT does not use (e.g.
    ``add_prefix_space``, ``verbose``) are kept in ``init_kwargs`` and saved
    with the tokenizer, as transformers does.
    """

    model_input_names = ["input_ids", "token_type_ids", "attention_mask"]
    vocab_files_names = {"vocab_file": "vocab.txt"}
    pad_token_type_id = 0
    is_fast = False
    clean_up_tokenization = staticmethod(clean_up_tokenization)

    def __init__(
        self,
        *,
        do_lower_case: bool = True,
        tokenize_chinese_chars: bool = True,
        strip_accents: bool | None = None,
        bos_token: str | AddedToken | None = None,
        eos_token: str | AddedToken | None = None,
        unk_token: str | AddedToken | None = "[UNK]",
        sep_token: str | AddedToken | None = "[SEP]",
        pad_token: str | AddedToken | None = "[PAD]",
        cls_token: str | AddedToken | None = "[CLS]",
        mask_token: str | AddedToken | None = "[MASK]",
        additional_special_tokens: Sequence[str | AddedToken] | None = None,
        model_max_length: int | None = None,
        padding_side: str = "right",
        truncation_side: str = "right",
        clean_up_tokenization_spaces: bool = True,
        model_input_names: Sequence[str] | None = None,
        split_special_tokens: bool = False,
        name_or_path: str = "",
        init_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        for name, side in (("padding_side", padding_side), ("truncation_side", truncation_side)):
            if side not in ("right", "left"):
                raise TokenizerError(f"{name} must be 'right' or 'left', got {side!r}")
        for key in kwargs:  # as transformers: a keyword named like a method would shadow it once saved and reloaded
            if callable(getattr(type(self), key, None)):
                raise AttributeError(f"{key} conflicts with the method {key} in {type(self).__name__}")
        self.init_kwargs = {**(init_kwargs or {}), **kwargs}
        self.init_inputs = ()
        self.do_lower_case = do_lower_case
        self.tokenize_chinese_chars = tokenize_chinese_chars
        self.strip_accents = strip_accents
        roles = dict(bos_token=bos_token, eos_token=eos_token, unk_token=unk_token, sep_token=sep_token, pad_token=pad_token,
                     cls_token=cls_token, mask_token=mask_token, additional_special_tokens=additional_special_tokens)  # fmt: skip
        for name, value in roles.items():
            if isinstance(value, dict) and "content" in value:  # an AddedToken saved as JSON
                roles[name] = AddedToken(**{k: v for k, v in value.items() if k != "__type"})
        self._init_special_tokens(roles)
        self.model_max_length = VERY_LARGE_INTEGER if model_max_length is None else int(model_max_length)
        self.padding_side = padding_side
        self.truncation_side = truncation_side
        self.clean_up_tokenization_spaces = clean_up_tokenization_spaces
        if model_input_names is not None:
            self.model_input_names = list(model_input_names)
        self.split_special_tokens = split_special_tokens
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

    @property
    def added_tokens_encoder(self) -> dict[str, int]:
        """Added token -> id (the special tokens included), as transformers."""
        return {text: index for index, text in sorted((i, str(t)) for i, t in self.added_tokens_decoder.items())}

    def get_added_vocab(self) -> dict[str, int]:
        """The tokens added on top of the base vocabulary, -> id."""
        return self.added_tokens_encoder

    def convert_tokens_to_ids(self, tokens: str | Sequence[str] | None) -> int | list[int] | None:
        """Ids of ``tokens`` (a token or a list); unknown tokens map to ``unk_token_id``."""
        if tokens is None:
            return None
        if isinstance(tokens, (str, AddedToken)):
            index = self._token_to_id(str(tokens))
            return self._token_to_id(self.unk_token) if index is None and self.unk_token is not None else index
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

    def __call__(self, text: str | Sequence[Any] | None = None, text_pair: str | Sequence[Any] | None = None, **kwargs: Any) -> BatchEncoding:
        """Tokenize a string, a pair, a batch of either, or pre-tokenized words.

        Args:
            text: a string, a list of strings (a batch), a list of ``(a, b)``
                pairs, or with ``is_split_into_words=True`` a list of words
                (or a batch of such lists).
            text_pair: second segments, matching ``text`` in batch size.
            **kwargs: transformers' options: ``add_special_tokens``,
                ``padding`` (True/"longest", "max_length", False),
                ``truncation`` (True/"longest_first", "only_first",
                "only_second", False), ``max_length``, ``stride``,
                ``is_split_into_words``, ``pad_to_multiple_of``,
                ``padding_side``, ``return_tensors`` ("np", "pt", "tf",
                "jax"), ``return_token_type_ids``, ``return_attention_mask``,
                ``return_overflowing_tokens``, ``return_special_tokens_mask``,
                ``return_offsets_mapping``, ``return_length``, ``verbose``.

        Returns:
            A :class:`BatchEncoding` with ``input_ids``, ``token_type_ids``,
            ``attention_mask`` and the requested extras.

        Raises:
            TokenizerError: an argument has the wrong type or an unknown value.
        """
        if text is None:
            raise TokenizerError("the tokenizer needs text (a string, a list of strings or of pairs)")
        rows, batched = input_rows(text, text_pair, kwargs.get("is_split_into_words", False))
        return self._encode(rows, batched, kwargs)

    def encode_plus(self, text: Any, text_pair: Any = None, **kwargs: Any) -> BatchEncoding:
        """One sequence or pair (transformers 4.x); also a list of tokens or of ids, as there.

        Raises:
            TypeError: ``text`` is not a string, a list of words, tokens or ids.
        """
        return self._encode(single_row(text, text_pair, kwargs.get("is_split_into_words", False)), False, kwargs)

    def batch_encode_plus(self, batch_text_or_text_pairs: Sequence[Any], **kwargs: Any) -> BatchEncoding:
        """A batch of sequences or ``(a, b)`` pairs (transformers 4.x); same options as ``__call__``."""
        if not isinstance(batch_text_or_text_pairs, (list, tuple)):
            raise TypeError(f"batch_encode_plus expects a list of texts or pairs, got {type(batch_text_or_text_pairs).__name__}")
        rows, _ = input_rows(list(batch_text_or_text_pairs), None, kwargs.get("is_split_into_words", False), force_batch=True)
        return self._encode(rows, True, kwargs)

    def encode(self, text: Any, text_pair: Any = None, **kwargs: Any) -> list[int]:
        """The ``input_ids`` of one sequence or pair (a string, a list of tokens or of ids)."""
        kwargs.pop("return_tensors", None) if kwargs.get("return_tensors") is None else None
        ids = self.encode_plus(text, text_pair, **kwargs)["input_ids"]
        return ids if hasattr(ids, "shape") else list(ids)

    def tokenize(self, text: str, pair: str | None = None, add_special_tokens: bool = False, **kwargs: Any) -> list[str]:
        """The token strings of ``text`` (and ``pair``)."""
        if not isinstance(text, str):
            raise TypeError(f"tokenize expects a string, got {type(text).__name__}")
        ids = self(text, pair, add_special_tokens=add_special_tokens, verbose=False, **kwargs)["input_ids"]
        return self.convert_ids_to_tokens(ids)

    def _options(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Validate the call options and resolve their defaults, as transformers does."""
        unknown = set(kwargs) - _CALL_OPTIONS
        if unknown:
            raise TokenizerError(f"unknown tokenizer option(s): {', '.join(sorted(unknown))}")
        opts = {**_CALL_DEFAULTS, **kwargs}
        verbose = opts.pop("verbose")
        opts["padding"], opts["truncation"], opts["max_length"] = self._strategies(
            opts["padding"], opts["truncation"], opts["max_length"], opts["pad_to_multiple_of"], verbose
        )
        if opts["return_tensors"] is not None and opts["return_tensors"] not in TENSOR_TYPES:
            raise TokenizerError(f"return_tensors must be one of {', '.join(map(repr, TENSOR_TYPES))} or None, got {opts['return_tensors']!r}")
        if opts["padding_side"] not in (None, "right", "left"):
            raise TokenizerError(f"padding_side must be 'right' or 'left', got {opts['padding_side']!r}")
        if not isinstance(opts["stride"], int) or opts["stride"] < 0:
            raise TokenizerError(f"stride must be a non-negative int, got {opts['stride']!r}")
        if opts["return_offsets_mapping"] and not self.is_fast:
            raise TokenizerError("return_offsets_mapping needs the fast tokenizer (BertTokenizerFast)")
        opts["padding_side"] = opts["padding_side"] or self.padding_side
        for key in ("token_type_ids", "attention_mask"):
            if opts[f"return_{key}"] is None:
                opts[f"return_{key}"] = key in self.model_input_names
        if opts["split_special_tokens"] is None:
            opts["split_special_tokens"] = self.split_special_tokens
        opts["verbose"] = verbose
        return opts

    def _encode(self, rows: list[tuple[Any, Any]], batched: bool, kwargs: dict[str, Any]) -> BatchEncoding:
        opts = self._options(kwargs)
        verbose = opts.pop("verbose")
        unbounded = opts["max_length"] is None
        encoding = self._encode_rows(rows, batched, **opts)
        if verbose and unbounded:
            ids = encoding["input_ids"]
            if hasattr(ids, "shape"):
                self._warn_if_too_long(int(ids.shape[-1]))
            else:
                for row in ids if ids and isinstance(ids[0], list) else [ids]:
                    self._warn_if_too_long(len(row))
        return encoding

    def _warn_if_too_long(self, length: int) -> None:
        if length > self.model_max_length and not self._warned_too_long:
            logger.warning(
                "Token indices sequence length is longer than the specified maximum sequence length for this "
                f"model ({length} > {self.model_max_length}). Running this sequence through the model will "
                "result in indexing errors"
            )
            self._warned_too_long = True

    def _encode_rows(self, rows: list[tuple[Any, Any]], batched: bool, **options: Any) -> BatchEncoding:
        raise NotImplementedError

    # -- decoding ---------------------------------------------------------------

    def decode(self, token_ids: Any, skip_special_tokens: bool = False, clean_up_tokenization_spaces: bool | None = None, **kwargs: Any) -> str:
        """Text of ``token_ids`` (a list, an array, a tensor or one id).

        ``kwargs`` (transformers' ``spaces_between_special_tokens``, ...) are
        accepted; BERT's WordPiece decoding always separates tokens by spaces.
        """
        ids = id_list(token_ids)
        text = self._ids_to_text(ids, skip_special_tokens)
        cleanup = self.clean_up_tokenization_spaces if clean_up_tokenization_spaces is None else clean_up_tokenization_spaces
        return clean_up_tokenization(text) if cleanup else text

    def batch_decode(self, sequences: Any, skip_special_tokens: bool = False, clean_up_tokenization_spaces: bool | None = None, **kwargs: Any) -> list[str]:
        """:meth:`decode` of each row of ``sequences``."""
        return [self.decode(s, skip_special_tokens, clean_up_tokenization_spaces, **kwargs) for s in rows_of(sequences)]

    def _ids_to_text(self, ids: list[int], skip_special_tokens: bool) -> str:
        return self.convert_tokens_to_string(self.convert_ids_to_tokens(ids, skip_special_tokens=skip_special_tokens))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name_or_path={self.name_or_path!r}, vocab_size={self.vocab_size}, "
            f"model_max_length={self.model_max_length}, do_lower_case={self.do_lower_case}, "
            f"padding_side={self.padding_side!r}, special_tokens={self.special_tokens_map})"
        )
