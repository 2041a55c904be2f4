"""``TFBertTokenizer``: BERT tokenization inside the TensorFlow graph, as a Keras layer.

It reproduces :class:`tokenization.BertTokenizerFast` (the Rust ``BertNormalizer``
+ ``BertPreTokenizer`` + ``WordPiece`` pipeline) id for id, with tf.strings and
tensorflow-text ops (``ops="text"``) or core TensorFlow ops alone (``ops="core"``,
:mod:`bert_tf.tokenizer_core`), so it runs in a ``tf.function``, a Keras functional
model on symbolic string inputs and a SavedModel. Where tensorflow-text's own
``BertTokenizer`` differs from the Rust pipeline (NFKC case folding, CJK and
control-character handling, special tokens written in the text), the steps are
spelled out here in the Rust order:

1. special tokens (``[MASK]``, ``[SEP]``, ...) are cut out of the *raw* text
   (longest first, as the Rust added-token matcher), never normalised;
2. ``clean_text``: NUL, U+FFFD and Cc/Cf/Co characters removed, whitespace -> " ";
3. CJK ideographs (the Rust ranges, which start the last block at U+2B920) spaced;
4. accents stripped (NFD, then Mn removed) when ``strip_accents`` (default: follows lower-casing);
5. lower-casing, with capital sigma always mapped to "σ" (no final-sigma rule);
6. whitespace split and punctuation (ASCII symbols + Unicode P*) isolated;
7. WordPiece (words above ``max_input_chars_per_word`` characters -> ``[UNK]``).

``ops="core"`` needs nothing but ``tensorflow`` to run or to load a SavedModel
holding it (no ``NormalizeUTF8``, ``RegexSplitWithOffsets``, ``FastWordpieceTokenizeWithOffsets``).

Outputs are ``input_ids``, ``attention_mask``, ``token_type_ids``, int64 by default
(``output_dtype="int32"`` for int32), shaped ``(batch, seq)``.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Sequence

import keras
import tensorflow as tf

from bert_core._lazy import require
from bert_core.errors import TokenizerError

from . import _unicode_tables, tokenizer_core

__all__ = ["TFBertTokenizer"]

# "Chinese characters" exactly as the Rust BertNormalizer tests them (tokenizers' is_chinese_char).
_CJK_CLASS = (r"[\x{3400}-\x{4DBF}\x{4E00}-\x{9FFF}\x{F900}-\x{FAFF}\x{20000}-\x{2A6DF}\x{2A700}-\x{2B73F}"
              r"\x{2B740}-\x{2B81F}\x{2B920}-\x{2CEAF}\x{2F800}-\x{2FA1F}]")


def _class(ranges: Sequence[tuple[int, int]]) -> str:
    """An RE2 character class of code point ranges."""
    return "[" + "".join(f"\\x{{{lo:X}}}" + (f"-\\x{{{hi:X}}}" if hi > lo else "") for lo, hi in ranges) + "]"


# The Rust tables, not RE2's newer \p{..} classes (see _unicode_tables): what clean_text drops (NUL, U+FFFD,
# Cc/Cf/Co but \t\n\r), what it maps to " ", the marks strip_accents removes after NFD, and punctuation.
_DROPPED_CLASS = _class(_unicode_tables.DROPPED)
_CLEAN_SPACE_CLASS = _class(_unicode_tables.CLEAN_SPACE)
_MARKS_CLASS = _class(_unicode_tables.NONSPACING_MARKS)
_PUNCTUATION = _class(_unicode_tables.PUNCTUATION)
# The pre-tokenizer's whitespace (char::is_whitespace).
_WHITESPACE = r"[\t\n\x{0B}\x{0C}\r\x{85}\p{Zs}\x{2028}\x{2029}]"
_PADDING = ("longest", "max_length")
_OPS = ("text", "core")
_TRUNCATION = {True: "longest_first", "longest_first": "longest_first", False: None, "do_not_truncate": None}


def _special_pattern(tokens: Sequence[dict[str, Any]]) -> str:
    """RE2 alternation of the special tokens, longest first (leftmost-longest, as Rust's matcher)."""
    parts = []
    for token in sorted(tokens, key=lambda t: -len(t["content"])):
        parts.append((f"{_WHITESPACE}*" if token.get("lstrip") else "") + re.escape(token["content"])
                     + (f"{_WHITESPACE}*" if token.get("rstrip") else ""))
    return "|".join(parts)


def _text_regex_split(text: tf.Tensor, delim: str, keep: str) -> tf.RaggedTensor:
    """``tensorflow_text.regex_split`` that survives NUL characters (it stops at the first one).

    NUL is escaped as U+FDD0 U+FDD2 (and a literal U+FDD0 as U+FDD0 U+FDD1) around the split.
    """
    text = tf.strings.regex_replace(text, "\ufdd0", "\ufdd0\ufdd1")
    text = tf.strings.regex_replace(text, "\x00", "\ufdd0\ufdd2")
    pieces = require("tensorflow_text").regex_split(text, delim, keep)
    flat = tf.strings.regex_replace(pieces.flat_values, "\ufdd0\ufdd2", "\x00")
    return pieces.with_flat_values(tf.strings.regex_replace(flat, "\ufdd0\ufdd1", "\ufdd0"))


@keras.saving.register_keras_serializable(package="tribert")
class TFBertTokenizer(keras.layers.Layer):
    """BERT WordPiece tokenization as a Keras layer, equal to :class:`tokenization.BertTokenizerFast`.

    Build it with :meth:`from_pretrained` (a directory with ``vocab.txt`` / ``tokenizer.json``)
    or :meth:`from_tokenizer`. Call it on a batch of strings (a Python list, a ``(batch,)``
    string tensor, or a Keras symbolic ``keras.Input(shape=(), dtype="string")``)::

        tok = TFBertTokenizer.from_pretrained(path)
        enc = tok(["Hello world!"])                 # {"input_ids": (1, 5), "attention_mask", "token_type_ids"}
        enc = tok(questions, contexts, max_length=128)

    Args:
        vocab_list: the WordPiece vocabulary, index = id (``vocab.txt`` order).
        do_lower_case: lower-case the text.
        strip_accents: remove accents (NFD + drop Mn); ``None`` follows ``do_lower_case``.
        tokenize_chinese_chars: put spaces around CJK ideographs.
        clean_text: drop control characters and map whitespace to spaces.
        special_tokens: ``[{"content", "id", "lstrip", "rstrip"}]`` (or plain strings, looked up in
            the vocabulary) matched whole in the raw text; default: the five BERT tokens.
        cls_token / sep_token / pad_token / unk_token: the role tokens (strings of the vocabulary).
        max_input_chars_per_word: longer words become ``unk_token``.
        max_length: truncation / ``"max_length"`` padding length (overridable per call).
        padding: ``"longest"`` (the batch's longest row) or ``"max_length"``.
        pad_to_multiple_of: round the padded length up to a multiple of this.
        truncation: ``True`` / ``"longest_first"`` (as ``transformers``) or ``False``.
        padding_side / truncation_side: ``"right"`` or ``"left"``.
        output_dtype: ``"int64"`` (default) or ``"int32"``.
        ops: ``"text"`` (tensorflow-text kernels, the default) or ``"core"`` (core TensorFlow ops only:
            a graph or SavedModel that loads without tensorflow-text; same ids).
    """

    def __init__(
        self,
        vocab_list: Sequence[str],
        *,
        do_lower_case: bool = True,
        strip_accents: bool | None = None,
        tokenize_chinese_chars: bool = True,
        clean_text: bool = True,
        special_tokens: Sequence[Any] | None = None,
        cls_token: str = "[CLS]",
        sep_token: str = "[SEP]",
        pad_token: str = "[PAD]",
        unk_token: str = "[UNK]",
        continuing_subword_prefix: str = "##",
        max_input_chars_per_word: int = 100,
        max_length: int = 512,
        padding: str = "longest",
        pad_to_multiple_of: int | None = None,
        truncation: bool | str = True,
        padding_side: str = "right",
        truncation_side: str = "right",
        output_dtype: str = "int64",
        ops: str = "text",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("dtype", output_dtype)
        super().__init__(**kwargs)
        self._convert_input_args = False  # string inputs must reach call() untouched
        self._allow_non_tensor_positional_args = True
        self.vocab_list = [str(t) for t in vocab_list]
        index = {t: i for i, t in enumerate(self.vocab_list)}
        for role, token in (("cls_token", cls_token), ("sep_token", sep_token), ("pad_token", pad_token),
                            ("unk_token", unk_token)):
            if token not in index:
                raise TokenizerError(f"TFBertTokenizer: {role} {token!r} is not in the vocabulary")
        if special_tokens is None:
            special_tokens = [t for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]") if t in index]
        self.special_tokens = [self._special_entry(t, index) for t in special_tokens]
        self.do_lower_case = bool(do_lower_case)
        self.strip_accents = strip_accents
        self.tokenize_chinese_chars = bool(tokenize_chinese_chars)
        self.clean_text = bool(clean_text)
        self.cls_token, self.sep_token, self.pad_token, self.unk_token = cls_token, sep_token, pad_token, unk_token
        self.cls_token_id, self.sep_token_id = index[cls_token], index[sep_token]
        self.pad_token_id = index[pad_token]
        self.continuing_subword_prefix = continuing_subword_prefix
        self.max_input_chars_per_word = int(max_input_chars_per_word)
        self.max_length = int(max_length)
        self.padding = self._check("padding", padding, _PADDING)
        self.pad_to_multiple_of = pad_to_multiple_of
        self.truncation = truncation
        self._check("truncation", truncation, tuple(_TRUNCATION))
        self.padding_side = self._check("padding_side", padding_side, ("right", "left"))
        self.truncation_side = self._check("truncation_side", truncation_side, ("right", "left"))
        self.output_dtype = self._check("output_dtype", output_dtype, ("int64", "int32"))
        self.ops = self._check("ops", ops, _OPS)
        if ops == "core":
            self._wordpiece = tokenizer_core.WordPiece(self.vocab_list, index[unk_token], continuing_subword_prefix,
                                                       self.max_input_chars_per_word)
            return
        self._wordpiece = require("tensorflow_text").FastWordpieceTokenizer(
            vocab=self.vocab_list, suffix_indicator=continuing_subword_prefix,
            # characters are limited below (the Rust limit counts characters, this one bytes)
            max_bytes_per_word=4 * self.max_input_chars_per_word + 4, token_out_type=tf.int64,
            unknown_token=unk_token, no_pretokenization=True, support_detokenization=False)

    @staticmethod
    def _check(name: str, value: Any, allowed: Sequence[Any]) -> Any:
        if value not in allowed:
            raise TokenizerError(f"TFBertTokenizer: {name} must be one of {list(allowed)}, got {value!r}")
        return value

    @staticmethod
    def _special_entry(token: Any, index: dict[str, int]) -> dict[str, Any]:
        entry = {"content": token} if isinstance(token, str) else dict(token)
        if entry.get("single_word"):
            raise TokenizerError(f"TFBertTokenizer: special token {entry['content']!r} has single_word=True, "
                                 f"which the in-graph tokenizer does not support")
        entry.setdefault("id", index.get(entry["content"]))
        if entry["id"] is None:
            raise TokenizerError(f"TFBertTokenizer: special token {entry['content']!r} has no id in the vocabulary; "
                                 f"pass it as {{'content': ..., 'id': ...}}")
        return {"content": entry["content"], "id": int(entry["id"]), "lstrip": bool(entry.get("lstrip")),
                "rstrip": bool(entry.get("rstrip"))}

    # -- construction --------------------------------------------------------

    @classmethod
    def from_tokenizer(cls, tokenizer: Any, **kwargs: Any) -> "TFBertTokenizer":
        """Build from a :class:`tokenization.BertTokenizerFast`, copying every setting it holds.

        Raises:
            TokenizerError: its pipeline is not BERT's (another normaliser or pre-tokenizer), or it
                holds added tokens that are not special (matched after normalisation in Rust).
        """
        engine = getattr(tokenizer, "backend_tokenizer", None)
        if engine is None:
            raise TokenizerError(f"TFBertTokenizer.from_tokenizer needs a BertTokenizerFast, got {type(tokenizer).__name__}")
        spec = json.loads(engine.to_str())
        model, normalizer = spec.get("model") or {}, spec.get("normalizer") or {}
        pre = spec.get("pre_tokenizer") or {}
        if model.get("type") != "WordPiece" or normalizer.get("type") != "BertNormalizer" \
                or pre.get("type") != "BertPreTokenizer":
            raise TokenizerError(f"TFBertTokenizer reproduces the BERT pipeline only (WordPiece, BertNormalizer, "
                                 f"BertPreTokenizer); this tokenizer has {model.get('type')}, "
                                 f"{normalizer.get('type')}, {pre.get('type')}")
        vocab = model["vocab"]
        ids = sorted(vocab.values())
        if ids != list(range(len(ids))):
            raise TokenizerError("TFBertTokenizer needs a vocabulary with contiguous ids 0..n-1")
        vocab_list = [None] * len(ids)
        for token, i in vocab.items():
            vocab_list[i] = token
        special, plain = [], []
        for added in spec.get("added_tokens") or []:
            (special if added.get("special") and not added.get("normalized") else plain).append(added)
        if plain:
            raise TokenizerError(f"TFBertTokenizer does not support added tokens matched after normalisation: "
                                 f"{[t['content'] for t in plain]}")
        max_length = tokenizer.model_max_length
        settings = dict(
            do_lower_case=normalizer.get("lowercase", True), strip_accents=normalizer.get("strip_accents"),
            tokenize_chinese_chars=normalizer.get("handle_chinese_chars", True),
            clean_text=normalizer.get("clean_text", True),
            special_tokens=[{k: t.get(k) for k in ("content", "id", "lstrip", "rstrip", "single_word")} for t in special],
            cls_token=tokenizer.cls_token, sep_token=tokenizer.sep_token, pad_token=tokenizer.pad_token,
            unk_token=model.get("unk_token", tokenizer.unk_token),
            continuing_subword_prefix=model.get("continuing_subword_prefix", "##"),
            max_input_chars_per_word=model.get("max_input_chars_per_word", 100),
            max_length=max_length if max_length < 1_000_000 else 512,
            padding_side=tokenizer.padding_side, truncation_side=tokenizer.truncation_side,
        )
        return cls(vocab_list, **{**settings, **kwargs})

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, **kwargs: Any) -> "TFBertTokenizer":
        """Load the tokenizer files of a checkpoint (through ``tokenization.BertTokenizerFast``).

        Keyword arguments that are this layer's settings (``max_length``, ``padding``, ...) go to the
        layer; the rest (``revision``, ``local_files_only``, ...) to ``BertTokenizerFast.from_pretrained``.
        """
        from tokenization import BertTokenizerFast

        own = {"max_length", "padding", "pad_to_multiple_of", "truncation", "output_dtype", "ops", "name"}
        layer_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in own}
        return cls.from_tokenizer(BertTokenizerFast.from_pretrained(name_or_path, **kwargs), **layer_kwargs)

    def get_config(self) -> dict[str, Any]:
        """Every setting (the vocabulary included), so ``from_config(get_config())`` is the same tokenizer."""
        config = super().get_config()
        config.pop("dtype", None)
        config.update(
            vocab_list=list(self.vocab_list), do_lower_case=self.do_lower_case, strip_accents=self.strip_accents,
            tokenize_chinese_chars=self.tokenize_chinese_chars, clean_text=self.clean_text,
            special_tokens=[dict(t) for t in self.special_tokens], cls_token=self.cls_token,
            sep_token=self.sep_token, pad_token=self.pad_token, unk_token=self.unk_token,
            continuing_subword_prefix=self.continuing_subword_prefix,
            max_input_chars_per_word=self.max_input_chars_per_word, max_length=self.max_length,
            padding=self.padding, pad_to_multiple_of=self.pad_to_multiple_of, truncation=self.truncation,
            padding_side=self.padding_side, truncation_side=self.truncation_side, output_dtype=self.output_dtype,
            ops=self.ops,
        )
        return config

    # -- the pipeline --------------------------------------------------------

    def _normalize(self, text: tf.Tensor) -> tf.Tensor:
        """The Rust BertNormalizer on a 1-D string tensor, step by step in its order."""
        if self.clean_text:
            text = tf.strings.regex_replace(text, _CLEAN_SPACE_CLASS, " ")
            text = tf.strings.regex_replace(text, _DROPPED_CLASS, "")
        if self.tokenize_chinese_chars:
            text = tf.strings.regex_replace(text, f"({_CJK_CLASS})", r" \1 ")
        strip = self.do_lower_case if self.strip_accents is None else self.strip_accents
        if strip:
            if self.ops == "core":
                text = tokenizer_core.decompose(text)
            else:
                text = require("tensorflow_text").normalize_utf8(text, "NFD")
            text = tf.strings.regex_replace(text, _MARKS_CLASS, "")
        if self.do_lower_case:
            # Rust lower-cases char by char: capital sigma is always "σ" (ICU would give a final "ς").
            text = tf.strings.regex_replace(text, "\u03a3", "\u03c3")
            text = tf.strings.lower(text, encoding="utf-8")
        return text

    def _word_ids(self, text: tf.Tensor) -> tf.RaggedTensor:
        """1-D strings -> ``(n, tokens)`` WordPiece ids (no special-token handling)."""
        if self.ops == "core":
            words = tokenizer_core.split_words(self._normalize(text), _WHITESPACE, _PUNCTUATION)
            return words.with_values(self._wordpiece.tokenize(words.values)).merge_dims(1, 2)  # (n, tokens)
        words = _text_regex_split(self._normalize(text), f"{_WHITESPACE}+|{_PUNCTUATION}", _PUNCTUATION)
        too_long = tf.strings.length(words.flat_values, unit="UTF8_CHAR") > self.max_input_chars_per_word
        # A too-long word becomes the unk token's text, which WordPiece maps (whole) to the unk id.
        words = words.with_flat_values(tf.where(too_long, self.unk_token, words.flat_values))
        return self._wordpiece.tokenize(words).merge_dims(1, 2)  # (n, words, pieces) -> (n, tokens)

    def _segment_ids(self, text: tf.Tensor) -> tf.RaggedTensor:
        """``(batch,)`` raw strings -> ``(batch, tokens)`` ids, special tokens in the text kept whole."""
        if not self.special_tokens:
            return self._word_ids(text)
        pattern = _special_pattern(self.special_tokens)
        if self.ops == "core":
            pieces = tokenizer_core.split_keep(text, pattern)  # (batch, pieces)
        else:
            pieces = _text_regex_split(text, pattern, pattern)
        flat = pieces.flat_values  # (n,)
        contents = tf.constant([t["content"] for t in self.special_tokens])
        ids = tf.constant([t["id"] for t in self.special_tokens], tf.int64)
        # A piece is a special token iff it is one whole (after the whitespace lstrip/rstrip absorbed).
        stripped = tf.strings.regex_replace(flat, f"^{_WHITESPACE}+|{_WHITESPACE}+$", "")
        matches = tf.equal(stripped[:, None], contents[None, :]) & tf.strings.regex_full_match(flat, pattern)[:, None]
        is_special = tf.reduce_any(matches, axis=1)
        special = tf.RaggedTensor.from_row_lengths(
            tf.gather(ids, tf.argmax(tf.cast(matches, tf.int32), axis=1))[is_special], tf.cast(is_special, tf.int64))
        # Special pieces are emptied before normalisation, so each piece yields one part only.
        normal = self._word_ids(tf.where(is_special, "", flat))
        per_piece = tf.concat([special, normal], axis=1)  # (n, tokens)
        return pieces.with_values(per_piece).merge_dims(1, 2)  # (batch, pieces, tokens) -> (batch, tokens)

    @staticmethod
    def _keep(ids: tf.RaggedTensor, keep: tf.Tensor, side: str) -> tf.RaggedTensor:
        """Keep ``keep[i]`` tokens of row ``i`` (from the start, or the end with ``side="left"``)."""
        lengths = ids.row_lengths()
        position = tf.ragged.range(lengths)
        if side == "left":
            mask = position >= (lengths - keep)[:, None]
        else:
            mask = position < keep[:, None]
        return tf.ragged.boolean_mask(ids, mask)

    def _truncate(self, first, second, max_length: int, side: str):
        """Rust's ``longest_first``: trim the longer sequence first, then split what is left evenly."""
        budget = max_length - (2 if second is None else 3)
        if budget < 0:
            raise TokenizerError(f"TFBertTokenizer: max_length={max_length} leaves no room for the special tokens")
        if second is None:
            return self._keep(first, tf.fill(tf.shape(first.row_lengths()), tf.constant(budget, tf.int64)), side), None
        budget = tf.constant(budget, tf.int64)
        n1, n2 = first.row_lengths(), second.row_lengths()
        short = tf.minimum(n1, n2)
        long_keep = tf.where(short > budget, short, tf.maximum(short, budget - short))
        halve = short + long_keep > budget
        short_keep = tf.where(halve, budget // 2, short)
        long_keep = tf.where(halve, budget // 2 + budget % 2, long_keep)
        swapped = n1 > n2  # Rust gives the first sequence the "short" share unless it is the longer one
        keep1, keep2 = tf.where(swapped, long_keep, short_keep), tf.where(swapped, short_keep, long_keep)
        fits = n1 + n2 <= budget
        keep1, keep2 = tf.where(fits, n1, keep1), tf.where(fits, n2, keep2)
        return self._keep(first, keep1, side), self._keep(second, keep2, side)

    @staticmethod
    def _as_batch(text: Any) -> tf.Tensor:
        text = text if isinstance(text, (tf.Tensor, tf.RaggedTensor)) else tf.convert_to_tensor(text, tf.string)
        if text.shape.rank == 0:
            text = text[None]
        elif text.shape.rank == 2:  # keras.Input(shape=(1,), dtype="string")
            text = tf.squeeze(text, axis=1)
        if text.shape.rank != 1:
            raise TokenizerError(f"TFBertTokenizer expects a (batch,) string tensor, got shape {text.shape}")
        return text

    @tf.autograph.experimental.do_not_convert  # plain tensor code: converting it only costs tracing time
    def call(self, text, text_pair=None, *, max_length=None, padding=None, pad_to_multiple_of=None, truncation=None):
        """Tokenize ``(batch,)`` strings, or pairs ``(text, text_pair)``; per-call settings override the layer's.

        Returns:
            ``{"input_ids", "attention_mask", "token_type_ids"}``, each ``(batch, seq)`` of ``output_dtype``:
            ``[CLS] a [SEP]`` or ``[CLS] a [SEP] b [SEP]``, type ids 0 then 1, padded with ``pad_token``.
        """
        max_length = self.max_length if max_length is None else int(max_length)
        padding = self._check("padding", self.padding if padding is None else padding, _PADDING)
        truncation = _TRUNCATION[self._check("truncation", self.truncation if truncation is None else truncation,
                                             tuple(_TRUNCATION))]
        multiple = self.pad_to_multiple_of if pad_to_multiple_of is None else pad_to_multiple_of
        first = self._segment_ids(self._as_batch(text))
        second = None if text_pair is None else self._segment_ids(self._as_batch(text_pair))
        if truncation:
            first, second = self._truncate(first, second, max_length, self.truncation_side)
        batch = tf.shape(first.row_lengths(), out_type=tf.int64)
        cls = tf.fill(tf.concat([batch, [1]], 0), tf.constant(self.cls_token_id, tf.int64))
        sep = tf.fill(tf.concat([batch, [1]], 0), tf.constant(self.sep_token_id, tf.int64))
        ids = tf.concat([cls, first, sep], axis=1)
        types = tf.zeros_like(ids)
        if second is not None:
            tail = tf.concat([second, sep], axis=1)
            ids, types = tf.concat([ids, tail], axis=1), tf.concat([types, tf.ones_like(tail)], axis=1)
        return self._pad(ids, types, max_length if padding == "max_length" else 0, multiple)

    def _pad(self, ids: tf.RaggedTensor, types: tf.RaggedTensor, min_length: int, multiple: int | None):
        lengths = ids.row_lengths()  # (batch,)
        target = tf.maximum(tf.reduce_max(tf.concat([lengths, tf.zeros([1], tf.int64)], 0)), tf.constant(min_length, tf.int64))
        if multiple:
            multiple = tf.constant(multiple, tf.int64)
            target = (target + multiple - 1) // multiple * multiple
        shape = tf.stack([tf.shape(lengths, out_type=tf.int64)[0], target])
        input_ids = ids.to_tensor(default_value=self.pad_token_id, shape=shape)  # (batch, seq)
        token_type_ids = types.to_tensor(default_value=0, shape=shape)
        attention_mask = tf.ones_like(ids).to_tensor(default_value=0, shape=shape)
        if self.padding_side == "left":  # move each row's tokens to the end
            shift = target - lengths  # (batch,)
            source = tf.range(target)[None, :] - shift[:, None]  # (batch, seq)
            def move(x, fill):
                return tf.where(source >= 0, tf.gather(x, tf.maximum(source, 0), batch_dims=1), fill)
            input_ids = move(input_ids, tf.constant(self.pad_token_id, tf.int64))
            token_type_ids, attention_mask = move(token_type_ids, tf.constant(0, tf.int64)), move(attention_mask, tf.constant(0, tf.int64))
        dtype = tf.as_dtype(self.output_dtype)
        outputs = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        # to_tensor with a computed shape loses the rank in a graph; give it back.
        return {k: tf.ensure_shape(tf.cast(v, dtype), [None, None]) for k, v in outputs.items()}

    def compute_output_spec(self, text, text_pair=None, **kwargs):
        batch = text.shape[0] if len(text.shape) else 1
        # One KerasTensor per output: Keras tells a functional model's outputs apart by identity.
        return {name: keras.KerasTensor((batch, None), dtype=self.output_dtype)
                for name in ("input_ids", "attention_mask", "token_type_ids")}
