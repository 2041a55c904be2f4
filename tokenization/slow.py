"""`BertTokenizer`: the pure-Python BERT tokenizer (transformers' slow tokenizer)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from bert_core.errors import TokenizerError

from .base import SPECIAL_TOKEN_NAMES, BertTokenizerBase
from .basic import BasicTokenizer, WordpieceTokenizer
from .batch_encoding import BatchEncoding
from .vocab import load_vocab

__all__ = ["BertTokenizer"]


class BertTokenizer(BertTokenizerBase):
    """BERT's WordPiece tokenizer in pure Python.

    Args:
        vocab_file: path of ``vocab.txt`` (or pass ``vocab=`` a token -> id dict).
        do_lower_case: lower-case (and by default strip accents).
        do_basic_tokenize: run :class:`BasicTokenizer` before WordPiece.
        never_split: words the basic tokenizer leaves whole.
        tokenize_chinese_chars: split CJK ideographs into single characters.
        strip_accents: ``None`` follows ``do_lower_case``.
        max_input_chars_per_word: longer words become ``[UNK]``.
        **kwargs: the shared options of :class:`BertTokenizerBase` (special
            tokens, ``model_max_length``, ``padding_side``, ...).
    """

    def __init__(
        self,
        vocab_file: str | os.PathLike | None = None,
        do_lower_case: bool = True,
        do_basic_tokenize: bool = True,
        never_split: Iterable[str] | None = None,
        tokenize_chinese_chars: bool = True,
        strip_accents: bool | None = None,
        *,
        vocab: dict[str, int] | None = None,
        max_input_chars_per_word: int = 100,
        **kwargs: Any,
    ):
        if vocab is None:
            if vocab_file is None:
                raise TokenizerError("BertTokenizer needs vocab_file (a vocab.txt path) or vocab (a token -> id dict)")
            vocab = load_vocab(vocab_file, special_tokens=kwargs)
        super().__init__(do_lower_case=do_lower_case, tokenize_chinese_chars=tokenize_chinese_chars, strip_accents=strip_accents, **kwargs)
        self.vocab = dict(vocab)
        self.ids_to_tokens = {index: token for token, index in self.vocab.items()}
        self.do_basic_tokenize = do_basic_tokenize
        self.never_split = list(never_split or ())
        self.basic_tokenizer = BasicTokenizer(do_lower_case, self.never_split, tokenize_chinese_chars, strip_accents)
        self.wordpiece_tokenizer = WordpieceTokenizer(self.vocab, self.unk_token, max_input_chars_per_word)
        self._added: dict[str, int] = {}
        self._added_special: set[str] = set()
        self._splitter: re.Pattern[str] | None = None
        self._register(self.all_special_tokens, special=True)

    # -- vocabulary -------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def get_vocab(self) -> dict[str, int]:
        return {**self.vocab, **self._added}

    def _token_to_id(self, token: str) -> int | None:
        return self._added.get(token, self.vocab.get(token))

    def _id_to_token(self, index: int) -> str:
        return self.ids_to_tokens.get(index, self.unk_token)

    def _base_vocab(self) -> dict[str, int]:
        return self.vocab

    def _added_tokens(self) -> list[tuple[int, str, bool]]:
        return sorted((index, token, token in self._added_special) for token, index in self._added.items())

    def _config_extras(self) -> dict[str, Any]:
        return {"do_basic_tokenize": self.do_basic_tokenize, "never_split": self.never_split or None}

    def _register(self, tokens: Sequence[str], special: bool) -> int:
        """Make ``tokens`` unsplittable; returns how many needed a new id.

        As in transformers, a token already in the vocabulary keeps its id but
        still becomes unsplittable, and a non-special token is lower-cased when
        the tokenizer lower-cases.
        """
        new = 0
        for token in tokens:
            if not special and self.do_lower_case:
                token = token.lower()
            if token not in self._added:
                index = self.vocab.get(token)
                if index is None:
                    index = len(self.vocab) + sum(1 for i in self._added.values() if i >= len(self.vocab))
                    self.ids_to_tokens[index] = token
                    new += 1
                self._added[token] = index
            if special:
                self._added_special.add(token)
        protected = sorted(self._added, key=len, reverse=True)
        self._splitter = re.compile("(" + "|".join(map(re.escape, protected)) + ")") if protected else None
        return new

    def add_tokens(self, new_tokens: str | Sequence[str], special_tokens: bool = False) -> int:
        """Add tokens that are never split; returns how many new ids were created."""
        tokens = [new_tokens] if isinstance(new_tokens, str) else list(new_tokens)
        if not all(isinstance(t, str) and t for t in tokens):
            raise TokenizerError(f"add_tokens expects non-empty strings, got {tokens!r}")
        if special_tokens:
            self.additional_special_tokens += [t for t in tokens if t not in self.all_special_tokens]
        return self._register(tokens, special=special_tokens)

    def add_special_tokens(self, special_tokens_dict: dict[str, Any]) -> int:
        """Set special-token roles (``{"mask_token": ..., "additional_special_tokens": [...]}``)."""
        added = 0
        for role, value in special_tokens_dict.items():
            if role == "additional_special_tokens":
                added += self.add_tokens(list(value), special_tokens=True)
            elif role in SPECIAL_TOKEN_NAMES:
                setattr(self, role, str(value))
                added += self._register([str(value)], special=True)
            else:
                raise TokenizerError(f"add_special_tokens: unknown role {role!r} (expected one of {', '.join(SPECIAL_TOKEN_NAMES)}, additional_special_tokens)")
        return added

    # -- text -> tokens -----------------------------------------------------------

    def tokenize(self, text: str, pair: str | None = None, add_special_tokens: bool = False) -> list[str]:
        """Split ``text`` into WordPiece tokens; added and special tokens stay whole."""
        if pair is not None or add_special_tokens:
            return super().tokenize(text, pair, add_special_tokens)
        pieces = self._splitter.split(text) if self._splitter else [text]
        protected = self._added
        tokens: list[str] = []
        for piece in pieces:
            if not piece:
                continue
            if piece in protected:
                tokens.append(piece)
            elif self.do_basic_tokenize:
                for word in self.basic_tokenizer.tokenize(piece, never_split=self.all_special_tokens):
                    if word in self.basic_tokenizer.never_split:
                        tokens.append(word)
                    else:
                        tokens.extend(self.wordpiece_tokenizer.tokenize(word))
            else:
                tokens.extend(self.wordpiece_tokenizer.tokenize(piece))
        return tokens

    def _ids(self, value: Any, split: bool) -> list[int]:
        if split:
            return self.convert_tokens_to_ids([t for word in value for t in self.tokenize(word)])
        return self.convert_tokens_to_ids(self.tokenize(value))

    # -- ids -> model inputs --------------------------------------------------------

    def truncate_sequences(
        self, ids: list[int], pair_ids: list[int] | None = None, num_tokens_to_remove: int = 0,
        truncation_strategy: str = "longest_first", stride: int = 0,
    ) -> tuple[list[int], list[int] | None, list[int]]:  # fmt: skip
        """Remove ``num_tokens_to_remove`` tokens; returns ``(ids, pair_ids, overflowing_tokens)``.

        ``longest_first`` trims the longer sequence first (ties trim the pair);
        the ``only_*`` strategies trim one side and return the cut tokens, with
        ``stride`` tokens of context, as overflow.
        """
        if num_tokens_to_remove <= 0:
            return ids, pair_ids, []
        right = self.truncation_side == "right"
        target = pair_ids if truncation_strategy == "only_second" else ids
        if truncation_strategy == "only_first" or (truncation_strategy == "longest_first" and pair_ids is None) or (
            truncation_strategy == "only_second" and pair_ids
        ):
            window = min(len(target), stride + num_tokens_to_remove)
            overflow = target[-window:] if right else target[:window]
            kept = target[:-num_tokens_to_remove] if right else target[num_tokens_to_remove:]
            return (ids, kept, overflow) if truncation_strategy == "only_second" else (kept, pair_ids, overflow)
        if truncation_strategy != "longest_first":
            return ids, pair_ids, []
        # Equalise the two lengths, then alternate, the pair giving up the odd token.
        first = min(abs(len(pair_ids) - len(ids)), num_tokens_to_remove)
        rest = num_tokens_to_remove - first
        cut_a, cut_b = (first + rest // 2, rest - rest // 2) if len(ids) > len(pair_ids) else (rest // 2, first + rest - rest // 2)
        if right:
            return ids[: len(ids) - cut_a], pair_ids[: len(pair_ids) - cut_b], []
        return ids[cut_a:], pair_ids[cut_b:], []

    def _prepare_row(self, ids: list[int], pair_ids: list[int] | None, opts: dict[str, Any]) -> dict[str, Any]:
        """Truncate one row and add its special tokens, segment ids and masks (no padding)."""
        if opts["return_overflowing_tokens"] and opts["truncation"] == "longest_first" and pair_ids is not None:
            raise TokenizerError(
                "return_overflowing_tokens is not possible for pairs with truncation='longest_first'; "
                "use truncation='only_first' or 'only_second'"
            )
        specials = self.num_special_tokens_to_add(pair_ids is not None) if opts["add_special_tokens"] else 0
        total = len(ids) + len(pair_ids or []) + specials
        max_length, overflow = opts["max_length"], []
        if opts["truncation"] != "do_not_truncate" and max_length and total > max_length:
            ids, pair_ids, overflow = self.truncate_sequences(ids, pair_ids, total - max_length, opts["truncation"], opts["stride"])
        if opts["add_special_tokens"]:
            row = {"input_ids": self.build_inputs_with_special_tokens(ids, pair_ids)}
            types = self.create_token_type_ids_from_sequences(ids, pair_ids)
            special_mask = self.get_special_tokens_mask(ids, pair_ids)
        else:
            row = {"input_ids": ids + (pair_ids or [])}
            types = special_mask = [0] * len(row["input_ids"])
        if opts["return_token_type_ids"]:
            row["token_type_ids"] = types
        if opts["return_special_tokens_mask"]:
            row["special_tokens_mask"] = special_mask
        if opts["return_overflowing_tokens"] and not opts["return_tensors"] and overflow:
            row["overflowing_tokens"] = overflow
            row["num_truncated_tokens"] = total - max_length
        return row

    def _encode_rows(self, rows: list[tuple[Any, Any]], batched: bool, **opts: Any) -> BatchEncoding:
        split = opts["is_split_into_words"]
        encoded = [
            self._prepare_row(self._ids(first, split), None if second is None else self._ids(second, split), opts)
            for first, second in rows
        ]
        pad = dict(max_length=opts["max_length"], pad_to_multiple_of=opts["pad_to_multiple_of"],
                   padding_side=opts["padding_side"], return_attention_mask=opts["return_attention_mask"])  # fmt: skip
        if not batched:
            row = dict(self.pad(encoded[0], padding=opts["padding"], **pad))
            if opts["return_length"]:
                row["length"] = len(row["input_ids"])
            return BatchEncoding(row, tensor_type=opts["return_tensors"], prepend_batch_axis=True)
        if opts["return_length"]:
            for row in encoded:
                row["length"] = len(row["input_ids"])
        columns: dict[str, list[Any]] = {}
        for row in encoded:
            for key, value in row.items():
                columns.setdefault(key, []).append(value)
        if opts["return_overflowing_tokens"] and "overflowing_tokens" in columns:
            # Rows that were not truncated have no overflow: keep the columns aligned.
            columns["overflowing_tokens"] = [row.get("overflowing_tokens", []) for row in encoded]
            columns["num_truncated_tokens"] = [row.get("num_truncated_tokens", 0) for row in encoded]
        padded = self.pad({k: v for k, v in columns.items() if k not in ("overflowing_tokens", "num_truncated_tokens", "length")}, padding=opts["padding"], **pad)
        for key in ("overflowing_tokens", "num_truncated_tokens", "length"):
            if key in columns:
                padded[key] = columns[key]
        return BatchEncoding(dict(padded), tensor_type=opts["return_tensors"])

    @classmethod
    def _from_files(cls, files: dict[str, Path | None], settings: dict[str, Any]):
        if files.get("vocab_file") is None:
            raise TokenizerError(f"BertTokenizer needs vocab.txt; only {files.get('tokenizer_file')} was found (use BertTokenizerFast)")
        return cls(files["vocab_file"], **settings)
