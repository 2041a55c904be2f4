"""`BertTokenizerFast`: the BERT tokenizer on the Rust `tokenizers` library."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tokenizers import AddedToken, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece

from bert_core._io import atomic_write_text
from bert_core.errors import TokenizerError

from .base import SPECIAL_TOKEN_NAMES, BertTokenizerBase
from .batch_encoding import BatchEncoding
from .files import TOKENIZER_FILE
from .vocab import check_file_size, load_vocab

__all__ = ["BertTokenizerFast"]


def _build_engine(vocab: dict[str, int], unk_token: str, lowercase: bool, chinese: bool, strip_accents: bool | None, max_chars: int) -> Tokenizer:
    """The pipeline `transformers` builds from a ``vocab.txt``."""
    engine = Tokenizer(WordPiece(vocab, unk_token=unk_token, max_input_chars_per_word=max_chars))
    engine.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=chinese, strip_accents=strip_accents, lowercase=lowercase
    )
    engine.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    engine.decoder = decoders.WordPiece(prefix="##")
    return engine


class BertTokenizerFast(BertTokenizerBase):
    """BERT's WordPiece tokenizer backed by `tokenizers` (offsets, word ids, speed).

    Args:
        vocab_file: path of ``vocab.txt``; or
        tokenizer_file: path of a ``tokenizer.json`` (takes precedence), or
        tokenizer_object: a ready ``tokenizers.Tokenizer``.
        do_lower_case, tokenize_chinese_chars, strip_accents: the normaliser's
            settings when building from ``vocab.txt``.
        **kwargs: the shared options of :class:`BertTokenizerBase`.
    """

    is_fast = True

    def __init__(
        self,
        vocab_file: str | os.PathLike | None = None,
        tokenizer_file: str | os.PathLike | None = None,
        do_lower_case: bool = True,
        tokenize_chinese_chars: bool = True,
        strip_accents: bool | None = None,
        *,
        tokenizer_object: Tokenizer | None = None,
        max_input_chars_per_word: int = 100,
        do_basic_tokenize: bool = True,
        never_split: Any = None,
        **kwargs: Any,
    ):
        if tokenizer_object is not None:
            engine = tokenizer_object
        elif tokenizer_file is not None:
            check_file_size(tokenizer_file)
            try:
                engine = Tokenizer.from_file(os.fspath(tokenizer_file))
            except FileNotFoundError:
                raise TokenizerError(f"tokenizer file {os.fspath(tokenizer_file)} does not exist") from None
            except Exception as err:  # the Rust parser raises plain Exception
                raise TokenizerError(f"{os.fspath(tokenizer_file)} is not a valid tokenizer.json: {err}") from None
            normalizer = json.loads(engine.to_str()).get("normalizer") or {}
            if normalizer.get("type") == "BertNormalizer":
                do_lower_case = normalizer.get("lowercase", do_lower_case)
                tokenize_chinese_chars = normalizer.get("handle_chinese_chars", tokenize_chinese_chars)
                strip_accents = normalizer.get("strip_accents", strip_accents)
        elif vocab_file is not None:
            engine = _build_engine(
                load_vocab(vocab_file, special_tokens=kwargs), str(kwargs.get("unk_token", "[UNK]")), do_lower_case,
                tokenize_chinese_chars, strip_accents, max_input_chars_per_word,
            )  # fmt: skip
        else:
            raise TokenizerError("BertTokenizerFast needs vocab_file, tokenizer_file or tokenizer_object")
        # The Rust WordPiece decoder already removes spaces before punctuation.
        kwargs.setdefault("clean_up_tokenization_spaces", False)
        super().__init__(do_lower_case=do_lower_case, tokenize_chinese_chars=tokenize_chinese_chars, strip_accents=strip_accents, **kwargs)
        self.do_basic_tokenize = do_basic_tokenize
        self.never_split = never_split
        # tokenizer.json files often carry a fixed padding/truncation; each call sets its own.
        engine.no_padding()
        engine.no_truncation()
        self._tokenizer = engine
        self._add(self.all_special_tokens, special=True)
        self._set_post_processor()

    @property
    def backend_tokenizer(self) -> Tokenizer:
        """The underlying ``tokenizers.Tokenizer``."""
        return self._tokenizer

    def _set_post_processor(self) -> None:
        cls, sep = self.cls_token, self.sep_token
        self._tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{cls}:0 $A:0 {sep}:0",
            pair=f"{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1",
            special_tokens=[(cls, self.cls_token_id), (sep, self.sep_token_id)],
        )

    # -- vocabulary -----------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        return self._tokenizer.get_vocab_size(with_added_tokens=False)

    def get_vocab(self) -> dict[str, int]:
        return self._tokenizer.get_vocab(with_added_tokens=True)

    def _token_to_id(self, token: str) -> int | None:
        return self._tokenizer.token_to_id(token)

    def _id_to_token(self, index: int) -> str | None:
        return self._tokenizer.id_to_token(index)

    def _base_vocab(self) -> dict[str, int]:
        return self._tokenizer.get_vocab(with_added_tokens=False)

    def _added_tokens(self) -> list[tuple[int, str, bool]]:
        return sorted((i, t.content, t.special) for i, t in self._tokenizer.get_added_tokens_decoder().items())

    def _add(self, tokens: list[str], special: bool) -> int:
        added = [AddedToken(t, special=special, normalized=not special) for t in tokens]
        return self._tokenizer.add_special_tokens(added) if special else self._tokenizer.add_tokens(added)

    def add_tokens(self, new_tokens: str | list[str], special_tokens: bool = False) -> int:
        """Add tokens that are never split; returns how many new ids were created."""
        tokens = [new_tokens] if isinstance(new_tokens, str) else list(new_tokens)
        if not all(isinstance(t, str) and t for t in tokens):
            raise TokenizerError(f"add_tokens expects non-empty strings, got {tokens!r}")
        if special_tokens:
            self.additional_special_tokens += [t for t in tokens if t not in self.all_special_tokens]
        return self._add(tokens, special_tokens)

    def add_special_tokens(self, special_tokens_dict: dict[str, Any]) -> int:
        """Set special-token roles (``{"mask_token": ..., "additional_special_tokens": [...]}``)."""
        added = 0
        for role, value in special_tokens_dict.items():
            if role == "additional_special_tokens":
                added += self.add_tokens(list(value), special_tokens=True)
            elif role in SPECIAL_TOKEN_NAMES:
                setattr(self, role, str(value))
                added += self._add([str(value)], special=True)
            else:
                raise TokenizerError(f"add_special_tokens: unknown role {role!r} (expected one of {', '.join(SPECIAL_TOKEN_NAMES)}, additional_special_tokens)")
        self._set_post_processor()
        return added

    # -- encoding -------------------------------------------------------------------

    def _configure(self, opts: dict[str, Any]) -> None:
        """Set the engine's truncation and padding for one call."""
        if opts["truncation"] == "do_not_truncate":
            self._tokenizer.no_truncation()
        else:
            self._tokenizer.enable_truncation(
                opts["max_length"], stride=opts["stride"], strategy=opts["truncation"], direction=self.truncation_side
            )
        if opts["padding"] == "do_not_pad":
            self._tokenizer.no_padding()
        else:
            self._tokenizer.enable_padding(
                direction=opts["padding_side"], pad_id=self.pad_token_id, pad_type_id=self.pad_token_type_id,
                pad_token=self.pad_token, length=opts["max_length"] if opts["padding"] == "max_length" else None,
                pad_to_multiple_of=opts["pad_to_multiple_of"],
            )  # fmt: skip

    def _encode_rows(self, rows: list[tuple[Any, Any]], batched: bool, **opts: Any) -> BatchEncoding:
        self._configure(opts)
        if not batched and not rows[0][1]:
            rows = [(rows[0][0], None)]  # as transformers: an empty single text_pair means no pair
        inputs = [first if second is None else (first, second) for first, second in rows]
        try:
            encodings = self._tokenizer.encode_batch(inputs, add_special_tokens=opts["add_special_tokens"], is_pretokenized=opts["is_split_into_words"])
        except BaseException as err:  # Rust reports bad truncation settings as Exception or as a panic
            if not isinstance(err, Exception) and type(err).__name__ != "PanicException":
                raise
            raise TokenizerError(f"tokenizers could not encode the input with these truncation settings: {err}") from None
        fields = {"input_ids": "ids"}
        if opts["return_token_type_ids"]:
            fields["token_type_ids"] = "type_ids"
        if opts["return_attention_mask"]:
            fields["attention_mask"] = "attention_mask"
        if opts["return_special_tokens_mask"]:
            fields["special_tokens_mask"] = "special_tokens_mask"
        if opts["return_offsets_mapping"]:
            fields["offset_mapping"] = "offsets"
        data: dict[str, list[Any]] = {key: [] for key in fields}
        if opts["return_length"]:
            data["length"] = []
        flat, sample = [], []
        for index, encoding in enumerate(encodings):
            windows = [encoding, *encoding.overflowing] if opts["return_overflowing_tokens"] else [encoding]
            for window in windows:
                for key, attribute in fields.items():
                    data[key].append(getattr(window, attribute))
                if opts["return_length"]:
                    data["length"].append(len(window.ids))
                flat.append(window)
                sample.append(index)
        if opts["return_overflowing_tokens"]:
            data["overflow_to_sample_mapping"] = sample
        if not batched and opts["return_tensors"] is None and not opts["return_overflowing_tokens"]:
            # As transformers: a single input gives flat lists (a 1-element "length" list stays a list).
            return BatchEncoding({k: v[0] if v and isinstance(v[0], list) else v for k, v in data.items()}, flat)
        return BatchEncoding(data, flat, tensor_type=opts["return_tensors"])

    def _ids_to_text(self, ids: list[int], skip_special_tokens: bool) -> str:
        return self._tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return self._tokenizer.decoder.decode(tokens)

    # -- files ----------------------------------------------------------------------

    @classmethod
    def _from_files(cls, files: dict[str, Path | None], settings: dict[str, Any]):
        return cls(vocab_file=files.get("vocab_file"), tokenizer_file=files.get("tokenizer_file"), **settings)

    def _write_engine_files(self, directory: Path) -> list[str]:
        return [str(atomic_write_text(directory / TOKENIZER_FILE, self._tokenizer.to_str(pretty=True)))]
