"""Reading and writing BERT's ``vocab.txt`` (one token per line, id = line number)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from bert_core.errors import TokenizerError
from bert_core._io import atomic_write_text

__all__ = ["VOCAB_NAME", "load_vocab", "save_vocab"]

VOCAB_NAME = "vocab.txt"


def load_vocab(path: str | os.PathLike) -> dict[str, int]:
    """Read ``vocab.txt`` into an ordered token -> id dict.

    Raises:
        TokenizerError: the file is missing, not UTF-8, or empty.
    """
    path = os.fspath(path)
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
        # Like transformers, a repeated token keeps its last line number.
        vocab[token.rstrip("\n")] = index
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
