"""The three tokenizer steps that need tensorflow-text, in core TensorFlow ops only.

``TFBertTokenizer(..., ops="core")`` runs these instead of tensorflow-text's
``NormalizeUTF8``, ``RegexSplitWithOffsets`` and ``FastWordpieceTokenizeWithOffsets``,
so its graph (and a SavedModel holding it) loads where only ``tensorflow`` is
installed: stock TF Serving, the TF C API, Triton's TensorFlow backend.

- :func:`decompose`: NFD per character, from a sorted code point table built with
  ``unicodedata`` (``tf.searchsorted`` + ragged gather, no hash-table resource);
- :func:`split_words` / :func:`split_keep`: ``tf.strings.regex_replace`` marks the
  cut points, ``tf.strings.split`` cuts;
- :class:`WordPiece`: greedy longest-match-first. Every candidate piece of every
  word (at most the longest vocabulary entry) is looked up at once (FarmHash
  fingerprints, ``tf.searchsorted``, the string compared; a word found whole skips
  this), then a bounded
  ``tf.while_loop`` walks each word from match to match.
"""

from __future__ import annotations

import functools
import unicodedata
from typing import Sequence

import numpy as np
import tensorflow as tf

from bert_core.errors import TokenizerError

__all__ = ["decompose", "split_words", "split_keep", "WordPiece"]

# Fingerprints are taken modulo this (the largest bucket count StringToHashBucketFast takes).
_BUCKETS = 2**63 - 1
# split_keep's cut mark: U+FDD0 U+FDD2, after every U+FDD0 of the text became U+FDD0 U+FDD1.
_ESCAPE, _ESCAPED, _CUT = "\ufdd0", "\ufdd0\ufdd1", "\ufdd0\ufdd2"


@functools.cache
def _nfd_table() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(code points, starts, lengths, values)``: every character NFD changes and its decomposition."""
    keys, starts, lengths, values = [], [], [], []
    for cp in range(0xC0, 0x2FA20):  # no character outside this range decomposes
        char = chr(cp)
        if 0xD800 <= cp <= 0xDFFF:
            continue
        parts = unicodedata.normalize("NFD", char)
        if parts != char:
            keys.append(cp)
            starts.append(len(values))
            lengths.append(len(parts))
            values.extend(map(ord, parts))
    as_int = functools.partial(np.asarray, dtype=np.int32)
    return as_int(keys), as_int(starts), as_int(lengths), as_int(values)


def decompose(text: tf.Tensor) -> tf.Tensor:
    """Unicode NFD of ``(n,)`` UTF-8 strings, character by character (rows of pure ASCII are skipped)."""
    keys, starts, lengths, values = (tf.constant(a) for a in _nfd_table())
    rows = tf.where(~tf.strings.regex_full_match(text, "[\\x00-\\x7f]*"))  # (m, 1)
    chars = tf.strings.unicode_decode(tf.gather_nd(text, rows), "UTF-8")  # (m, chars)
    flat = chars.flat_values
    slot = tf.minimum(tf.searchsorted(keys, flat), tf.size(keys) - 1)
    hit = tf.gather(keys, slot) == flat
    # Decomposed characters read from `values`; the others are copied from `flat`, appended after it.
    count = tf.where(hit, tf.gather(lengths, slot), 1)
    first = tf.where(hit, tf.gather(starts, slot), tf.size(values) + tf.range(tf.size(flat)))
    source = tf.ragged.range(first, first + count).flat_values
    parts = tf.RaggedTensor.from_row_lengths(tf.gather(tf.concat([values, flat], 0), source), tf.cast(count, tf.int64))
    decomposed = chars.with_flat_values(parts).merge_dims(1, 2)  # (m, chars, parts) -> (m, chars)
    return tf.tensor_scatter_nd_update(text, rows, tf.strings.unicode_encode(decomposed, "UTF-8"))


def split_words(text: tf.Tensor, whitespace: str, punctuation: str) -> tf.RaggedTensor:
    """``(n,)`` strings -> ``(n, words)``: cut at runs of ``whitespace`` (dropped) and around each
    ``punctuation`` character (kept as a word of its own); both are RE2 character classes."""
    text = tf.strings.regex_replace(text, f"({punctuation})", r" \1 ")
    # Every ASCII space tf.strings.split cuts at is in `whitespace`, so only these spaces remain.
    return tf.strings.split(tf.strings.regex_replace(text, f"{whitespace}+", " "))


def split_keep(text: tf.Tensor, pattern: str) -> tf.RaggedTensor:
    """``(n,)`` strings -> ``(n, pieces)``: the matches of RE2 ``pattern`` and the text between them, in
    order (empty pieces included). NUL and any other character pass through unchanged."""
    marked = tf.strings.regex_replace(tf.strings.regex_replace(text, _ESCAPE, _ESCAPED), f"({pattern})",
                                      rf"{_CUT}\1{_CUT}")
    pieces = tf.strings.split(marked, sep=_CUT)
    return pieces.with_flat_values(tf.strings.regex_replace(pieces.flat_values, _ESCAPED, _ESCAPE))


class WordPiece:
    """Greedy longest-match-first WordPiece (the Rust ``WordPiece`` model) over core ops.

    Args:
        vocab_list: the vocabulary, index = id (a repeated token keeps its last id, as a dict would).
        unk_id: the id of a word with no segmentation (or longer than ``max_input_chars_per_word``).
        prefix: the continuing-subword prefix (``"##"``).
        max_input_chars_per_word: longer words become ``unk_id``.
    """

    def __init__(self, vocab_list: Sequence[str], unk_id: int, prefix: str, max_input_chars_per_word: int) -> None:
        index = {token: i for i, token in enumerate(vocab_list)}
        tokens = list(index)
        fingerprints = tf.strings.to_hash_bucket_fast(tokens, _BUCKETS).numpy()
        if len(set(fingerprints.tolist())) != len(tokens):
            raise TokenizerError("TFBertTokenizer(ops='core'): two vocabulary entries share a 63-bit fingerprint; "
                                 "use ops='text'")
        order = np.argsort(fingerprints)
        self._fingerprints = fingerprints[order]
        self._tokens = np.asarray(tokens, dtype=object)[order]
        self._ids = np.asarray([index[t] for t in tokens], dtype=np.int64)[order]
        self.unk_id = int(unk_id)
        self.prefix = prefix
        self.max_chars = int(max_input_chars_per_word)
        # No piece can be longer than the longest entry: the candidates stop there.
        self.longest = max(1, min(max(map(len, tokens), default=1), self.max_chars))

    def _lookup(self, pieces: tf.Tensor) -> tf.Tensor:
        """``(m,)`` strings -> ``(m,)`` ids, -1 where a string is not in the vocabulary."""
        fingerprints = tf.constant(self._fingerprints)
        found = tf.strings.to_hash_bucket_fast(pieces, _BUCKETS)
        slot = tf.minimum(tf.searchsorted(fingerprints, found), tf.size(fingerprints) - 1)
        same = (tf.gather(fingerprints, slot) == found) & (tf.gather(tf.constant(self._tokens), slot) == pieces)
        return tf.where(same, tf.gather(tf.constant(self._ids), slot), -1)

    def tokenize(self, words: tf.Tensor) -> tf.RaggedTensor:
        """``(n,)`` words -> ``(n, pieces)`` int64 ids."""
        too_long = tf.strings.length(words, unit="UTF8_CHAR") > self.max_chars
        # A word in the vocabulary is its own longest match: only the others are cut into candidates.
        whole = tf.where(too_long, tf.constant(-1, tf.int64), self._lookup(words))
        words = tf.where(too_long | (whole >= 0), "", words)
        _, offsets = tf.strings.unicode_decode_with_offsets(words, "UTF-8")  # (n, chars) byte offsets
        chars = offsets.row_lengths()  # (n,)
        total = tf.size(offsets.flat_values, out_type=tf.int64)
        word = offsets.value_rowids()  # (total,) word of each character
        position = tf.range(total) - tf.gather(offsets.row_splits, word)  # (total,) index in its word
        # Byte boundaries: each word's character offsets, then its byte length.
        bounds = tf.concat([offsets, tf.cast(tf.strings.length(words), tf.int64)[:, None]], axis=1)
        # Candidates: every (character, length) pair that stays inside its word, lengths 1..longest.
        widest = tf.reduce_max(tf.concat([chars, tf.ones([1], tf.int64)], 0))
        longest = tf.minimum(tf.constant(self.longest, tf.int64), widest)
        length = tf.range(1, longest + 1)[None, :]  # (1, K)
        end = position[:, None] + length  # (total, K)
        inside = end <= tf.gather(chars, word)[:, None]
        cell = tf.where(inside)  # (m, 2): character, length - 1
        at, size = cell[:, 0], cell[:, 1] + 1
        owner = tf.gather(word, at)
        start_byte = tf.gather(offsets.flat_values, at)
        end_byte = tf.gather(bounds.flat_values, tf.gather(bounds.row_splits, owner) + tf.gather(position, at) + size)
        pieces = tf.strings.substr(tf.gather(words, owner), start_byte, end_byte - start_byte)
        pieces = tf.strings.join([tf.where(tf.gather(position, at) > 0, self.prefix, ""), pieces])
        ids = tf.scatter_nd(cell, self._lookup(pieces) + 1, tf.shape(end, out_type=tf.int64)) - 1  # (total, K)
        # The longest match at each character (0: none) and its id.
        best = tf.reduce_max(tf.where(ids >= 0, length, 0), axis=1)  # (total,)
        best_id = tf.gather(ids, tf.maximum(best - 1, 0), batch_dims=1)
        starts, stops = offsets.row_splits[:-1], offsets.row_splits[1:]

        def step(at, visited, failed):
            walking = (at < stops) & ~failed
            here = tf.minimum(at, total - 1)
            jump = tf.where(walking, tf.gather(best, here), 0)
            failed |= walking & (jump == 0)
            hits = tf.boolean_mask(here, walking & (jump > 0))
            visited = tf.tensor_scatter_nd_update(visited, hits[:, None], tf.ones_like(hits, tf.bool))
            return at + jump, visited, failed

        _, visited, failed = tf.while_loop(
            lambda at, visited, failed: tf.reduce_any((at < stops) & ~failed), step,
            (starts, tf.zeros([total], tf.bool), tf.zeros_like(too_long)), maximum_iterations=self.max_chars)
        unknown = failed | too_long
        keep = visited & ~tf.gather(unknown, word)
        found = tf.ragged.boolean_mask(offsets.with_flat_values(best_id), offsets.with_flat_values(keep))
        unk_ids = tf.fill([tf.reduce_sum(tf.cast(unknown, tf.int32))], tf.constant(self.unk_id, tf.int64))
        unk = tf.RaggedTensor.from_row_lengths(unk_ids, tf.cast(unknown, tf.int64))
        known = whole >= 0
        whole = tf.RaggedTensor.from_row_lengths(tf.boolean_mask(whole, known), tf.cast(known, tf.int64))
        return tf.concat([unk, whole, found], axis=1)  # each word's ids sit in exactly one of the three
