"""`BertTokenizer`: the pure-Python BERT tokenizer (transformers' slow tokenizer)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from bert_core.errors import TokenizerError

from .added_tokens import AddedToken, AddedTokenSplitter, as_added_token
from .base import BertTokenizerBase, init_arguments
from .basic import BasicTokenizer, WordpieceTokenizer
from .batch_encoding import BatchEncoding
from .vocab import load_vocab, read_tokenizer_json

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
        unk_token: str | AddedToken = "[UNK]",
        sep_token: str | AddedToken = "[SEP]",
        pad_token: str | AddedToken = "[PAD]",
        cls_token: str | AddedToken = "[CLS]",
        mask_token: str | AddedToken = "[MASK]",
        tokenize_chinese_chars: bool = True,
        strip_accents: bool | None = None,
        clean_up_tokenization_spaces: bool = True,
        *,
        vocab: dict[str, int] | None = None,
        max_input_chars_per_word: int = 100,
        tokenizer_file: str | os.PathLike | None = None,
        **kwargs: Any,
    ):
        init_kwargs = init_arguments(locals())
        if vocab is None:
            if vocab_file is not None:
                vocab = load_vocab(vocab_file, special_tokens=dict(unk_token=unk_token, sep_token=sep_token, pad_token=pad_token, cls_token=cls_token))
            elif tokenizer_file is not None:
                vocab, options = read_tokenizer_json(tokenizer_file)
                do_lower_case = options.get("do_lower_case", do_lower_case)
                tokenize_chinese_chars = options.get("tokenize_chinese_chars", tokenize_chinese_chars)
                strip_accents = options.get("strip_accents", strip_accents)
                max_input_chars_per_word = options.get("max_input_chars_per_word", max_input_chars_per_word)
            else:
                raise TokenizerError("BertTokenizer needs vocab_file (a vocab.txt path), tokenizer_file or vocab (a token -> id dict)")
        super().__init__(
            do_lower_case=do_lower_case, tokenize_chinese_chars=tokenize_chinese_chars, strip_accents=strip_accents,
            unk_token=unk_token, sep_token=sep_token, pad_token=pad_token, cls_token=cls_token, mask_token=mask_token,
            clean_up_tokenization_spaces=clean_up_tokenization_spaces, init_kwargs=init_kwargs, **kwargs,
        )  # fmt: skip
        self.vocab = dict(vocab)
        self.ids_to_tokens = {index: token for token, index in self.vocab.items()}
        self.do_basic_tokenize = do_basic_tokenize
        self.never_split = list(never_split or ())
        self.basic_tokenizer = BasicTokenizer(do_lower_case, self.never_split, tokenize_chinese_chars, strip_accents)
        self.wordpiece_tokenizer = WordpieceTokenizer(self.vocab, self.unk_token, max_input_chars_per_word)
        self._added: dict[str, int] = {}
        self._added_decoder: dict[int, AddedToken] = {}
        self._splitter: AddedTokenSplitter | None = None
        self._add_tokens(self.all_special_tokens_extended, True)

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
        return sorted((index, token.content, token.special) for index, token in self._added_decoder.items())

    @property
    def added_tokens_decoder(self) -> dict[int, AddedToken]:
        """Id -> AddedToken for every added (and special) token."""
        return dict(sorted(self._added_decoder.items()))

    def _config_extras(self) -> dict[str, Any]:
        return {"do_basic_tokenize": self.do_basic_tokenize, "never_split": self.never_split or None}

    def _add_tokens(self, tokens: Sequence[str | AddedToken], special: bool) -> int:
        """Make ``tokens`` unsplittable; returns how many needed a new id.

        As transformers 4.x's slow tokenizer: a token already in the vocabulary
        keeps its id, a normalized non-special token is lower-cased when the
        tokenizer lower-cases, and special ones join ``additional_special_tokens``.
        """
        new = 0
        for item in tokens:
            token = as_added_token(item, special)
            if self.do_lower_case and not token.special and token.normalized:
                token = as_added_token(token, False, content=token.content.lower())
            text = token.content
            if text not in self._added:
                index = self.vocab.get(text)
                if index is None:
                    index = len(self.vocab) + sum(1 for i in self._added.values() if i >= len(self.vocab))
                    self.ids_to_tokens[index] = text
                    new += 1
                self._added[text] = index
            self._added_decoder[self._added[text]] = token
            if special and token.special and text not in self.all_special_tokens:
                self._special["additional_special_tokens"] = [*(self._special["additional_special_tokens"] or ()), token]
        self._special_tokens_changed()
        return new

    def _special_tokens_changed(self) -> None:
        tokens = {t.content: t for t in self._added_decoder.values()}
        self._splitter = AddedTokenSplitter(tokens) if tokens else None
        if hasattr(self, "wordpiece_tokenizer") and self.unk_token is not None:
            self.wordpiece_tokenizer.unk_token = self.unk_token

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

    def prepare_for_tokenization(self, text: str, is_split_into_words: bool = False, **kwargs: Any) -> tuple[str, dict[str, Any]]:
        """transformers' pre-tokenization hook: BERT changes nothing; returns ``(text, kwargs)``."""
        return text, kwargs

    # -- ids -> model inputs --------------------------------------------------------

    def _row_ids(self, value: Any, split: bool) -> list[int]:
        """Ids of one sequence: text, pre-split words, or (as transformers' encode_plus) a list of tokens or ids."""
        if isinstance(value, (list, tuple)) and value and all(isinstance(i, int) for i in value):
            return list(value)
        if isinstance(value, (list, tuple)) and not split:
            return self.convert_tokens_to_ids(list(value))
        return self._ids(value, split)

    def _encode_rows(self, rows: list[tuple[Any, Any]], batched: bool, **opts: Any) -> BatchEncoding:
        split = opts["is_split_into_words"]
        splitter = self._splitter
        if opts["split_special_tokens"] and splitter is not None:
            # Special tokens in the text are split like any other text.
            specials = set(self.all_special_tokens)
            kept = {t: token for t, token in splitter.tokens.items() if t not in specials}
            self._splitter = AddedTokenSplitter(kept) if kept else None
        try:
            encoded = [
                self._prepare_row(self._row_ids(first, split), None if second is None else self._row_ids(second, split), opts)
                for first, second in rows
            ]
        finally:
            self._splitter = splitter
        return self._assemble(encoded, batched, opts)

    @classmethod
    def _from_files(cls, files: dict[str, Path | None], settings: dict[str, Any]):
        if files.get("vocab_file") is None:  # a transformers 5.x folder: the vocabulary lives in tokenizer.json
            return cls(tokenizer_file=files["tokenizer_file"], **settings)
        return cls(files["vocab_file"], **settings)
