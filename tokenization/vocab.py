"""Reading and writing BERT's ``vocab.txt`` (one token per line, id = line number)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from bert_core.errors import TokenizerError
from bert_core._io import atomic_write_text
from bert_core.limits import limit

__all__ = ["VOCAB_NAME", "REQUIRED_SPECIAL_TOKENS", "check_file_size", "load_vocab", "save_vocab",
           "read_tokenizer_json", "normalizer_options"]

VOCAB_NAME = "vocab.txt"


#: Special tokens every encode uses, with the defaults `transformers` gives them; a vocab.txt must hold each.
REQUIRED_SPECIAL_TOKENS = {"unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]"}


def check_file_size(path: str | os.PathLike) -> None:
    """Refuse a tokenizer file above ``MAX_VOCAB_BYTES`` before reading it.

    Raises:
        TokenizerError: naming the file, its size and ``TRIBERT_MAX_VOCAB_BYTES``.
    """
    try:
        size = os.path.getsize(path)
    except OSError:
        return  # the reader reports a missing file itself
    if size > limit("MAX_VOCAB_BYTES"):
        raise TokenizerError(f"tokenizer file {os.fspath(path)} is {size:,} bytes, above the limit of "
                             f"{limit('MAX_VOCAB_BYTES'):,}; set TRIBERT_MAX_VOCAB_BYTES to raise it")


def load_vocab(path: str | os.PathLike, special_tokens: Mapping[str, Any] | None = None) -> dict[str, int]:
    """Read ``vocab.txt`` into an ordered token -> id dict.

    Args:
        special_tokens: the tokenizer's settings (``unk_token=...``); each of
            :data:`REQUIRED_SPECIAL_TOKENS` (or its default) must be in the file.

    Raises:
        TokenizerError: the file is missing, too large, not UTF-8 text (NUL bytes: a binary file),
            empty, repeats a token (naming it and both lines) or lacks a required special token.
    """
    path = os.fspath(path)
    check_file_size(path)
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
    except FileNotFoundError:
        raise TokenizerError(f"vocabulary file {path} does not exist") from None
    except UnicodeDecodeError as err:
        raise TokenizerError(f"vocabulary file {path} is not UTF-8 text ({err.reason} at byte {err.start})") from None
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise TokenizerError(f"vocabulary file {path} is empty")
    vocab: dict[str, int] = {}
    for index, token in enumerate(lines):
        if "\x00" in token:
            raise TokenizerError(f"vocabulary file {path} holds NUL bytes at line {index + 1}: a binary file, "
                                 f"not a vocab.txt")
        if token in vocab:
            # transformers keeps the last line; the earlier id then maps to no token and ids leave gaps.
            raise TokenizerError(f"vocabulary file {path} repeats the token {token!r} (lines {vocab[token] + 1} "
                                 f"and {index + 1}); each line must hold a distinct token")
        vocab[token] = index
    for role, default in REQUIRED_SPECIAL_TOKENS.items():
        token = (special_tokens or {}).get(role) or default
        if str(token) not in vocab:
            raise TokenizerError(f"vocabulary file {path} lacks the {role} {str(token)!r}, which encoding uses")
    return vocab


def save_vocab(vocab: Mapping[str, int], path: str | os.PathLike) -> str:
    """Write ``vocab`` (token -> id) to ``path`` in id order, atomically.

    Raises:
        TokenizerError: the ids are not the consecutive integers 0..N-1.
    """
    tokens = sorted(vocab, key=vocab.__getitem__)
    for expected, token in enumerate(tokens):
        if vocab[token] != expected:
            raise TokenizerError(
                f"cannot write {os.fspath(path)}: vocabulary ids are not consecutive "
                f"(token {token!r} has id {vocab[token]}, expected {expected})"
            )
    atomic_write_text(path, "".join(token + "\n" for token in tokens))
    return os.fspath(path)


def normalizer_options(data: dict) -> dict[str, object]:
    """The tokenizer options a parsed tokenizer.json's ``BertNormalizer`` sets (``do_lower_case``, ...)."""
    normalizer = data.get("normalizer") or {}
    if normalizer.get("type") != "BertNormalizer":
        return {}
    names = (("lowercase", "do_lower_case"), ("handle_chinese_chars", "tokenize_chinese_chars"), ("strip_accents", "strip_accents"))
    return {name: normalizer[key] for key, name in names if key in normalizer}


def read_tokenizer_json(path: str | os.PathLike) -> tuple[dict[str, int], dict[str, object]]:
    """The WordPiece vocabulary and the normaliser options of a ``tokenizer.json`` (what transformers 5.x saves).

    Returns ``(vocab, options)`` with ``options`` holding ``do_lower_case``,
    ``tokenize_chinese_chars``, ``strip_accents`` and ``max_input_chars_per_word``
    where the file sets them.

    Raises:
        TokenizerError: the file is missing, not JSON, or not a WordPiece tokenizer.
    """
    path = os.fspath(path)
    check_file_size(path)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise TokenizerError(f"tokenizer file {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise TokenizerError(f"{path} is not a valid tokenizer.json: {err}") from None
    model = data.get("model") or {} if isinstance(data, dict) else {}
    if model.get("type") != "WordPiece" or not isinstance(model.get("vocab"), dict):
        raise TokenizerError(f"{path}: model.type must be 'WordPiece' with a vocab, got {model.get('type')!r}")
    options = normalizer_options(data)
    if "max_input_chars_per_word" in model:
        options["max_input_chars_per_word"] = model["max_input_chars_per_word"]
    return {str(k): int(v) for k, v in model["vocab"].items()}, options
