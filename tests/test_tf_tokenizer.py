"""The in-graph ``TFBertTokenizer`` gives exactly what ``tokenization.BertTokenizerFast`` gives.

The reference is the project's fast tokenizer (itself proven equal to
`transformers` in test_tokenization.py), built from the same vocabulary with
the same options. Every corpus string of `tests/tokenizer_corpus.py` is
compared id for id (input_ids, attention_mask, token_type_ids), uncased and
cased, with truncation, padding and pairs; mismatches are collected and
reported by category. It also runs inside a tf.function, a Keras functional
model on symbolic strings, and round-trips through get_config. The core-op
tokenizer (``ops="core"``, no tensorflow-text kernel) is held to the same
reference on the whole corpus plus the 5,000-string fuzz corpus
(tests/tokenizer_fuzz.py) and their pairs in one compiled call (with each
normaliser switch on and off), and
with left truncation and padding; the tensorflow-text path on the fuzz corpus
too. The Rust character tables both use (bert_tf/_unicode_tables.py) are
probed again from the installed `tokenizers` (slow).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import bert_tf
import keras
import tensorflow as tf
from bert_core.errors import TokenizerError
from bert_core.unpad import padding_read
from bert_tf import TFBertTokenizer
from harness import assert_close, tiny_config_dict
from tokenization import BertTokenizerFast
from tokenizer_corpus import CATEGORIES, CORPUS, OPTIONS, PAIRS
from tokenizer_fuzz import fuzz_corpus, fuzz_pairs

ALL_TEXTS = CORPUS + fuzz_corpus(5000)
ALL_PAIRS = PAIRS + fuzz_pairs(ALL_TEXTS[len(CORPUS):])

FIELDS = ("input_ids", "attention_mask", "token_type_ids")


@pytest.fixture(scope="module")
def vocab_files(tmp_path_factory, real_model_dir):
    """The real uncased vocab.txt, and a cased one (plus capitalised words) for the cased options."""
    uncased = tmp_path_factory.mktemp("uncased") / "vocab.txt"
    shutil.copy(real_model_dir / "vocab.txt", uncased)
    words = uncased.read_text(encoding="utf-8").splitlines()
    seen = set(words)
    extra = sorted({w.capitalize() for w in words[1000:12000] if w.isalpha()} - seen)
    cased = tmp_path_factory.mktemp("cased") / "vocab.txt"
    cased.write_text("\n".join(words + extra) + "\n", encoding="utf-8")
    return {"uncased": uncased, "cased": cased}


@pytest.fixture(scope="module")
def tokenizers(vocab_files):
    """{option name: (ours, reference)} from the same vocab.txt and options."""
    built = {}
    for name, options in OPTIONS.items():
        vocab = vocab_files["uncased" if options.get("do_lower_case", True) else "cased"]
        fast = BertTokenizerFast(vocab, **options)
        built[name] = (TFBertTokenizer.from_tokenizer(fast), fast)
    return built


def _rows(encoding, field):
    return [list(map(int, row)) for row in np.asarray(encoding[field])]


def _mismatches(ours, ref, texts, labels):
    """Labels of the rows where any field differs (whole padded rows compared)."""
    bad = set()
    for field in FIELDS:
        ours_rows, ref_rows = _rows(ours, field), _rows(ref, field)
        assert len(ours_rows) == len(ref_rows) and len(ours_rows[0]) == len(ref_rows[0]), (field, np.shape(ours[field]))
        bad |= {labels[i] for i, (a, b) in enumerate(zip(ours_rows, ref_rows)) if a != b}
    return sorted(bad)


LABELS = [f"{category}[{i}] {text[:30]!r}" for category, texts in CATEGORIES.items() for i, text in enumerate(texts)]
CALLS = {
    "longest": {},
    "truncate-16-pad-max": {"max_length": 16, "padding": "max_length"},
    "truncate-24-multiple-8": {"max_length": 24, "pad_to_multiple_of": 8},
}


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("option", OPTIONS)
def test_every_corpus_string_matches_the_fast_tokenizer(tokenizers, option, call):
    ours, ref = tokenizers[option]
    kwargs = CALLS[call]
    assert [t for texts in CATEGORIES.values() for t in texts] == CORPUS
    expected = ref(CORPUS, truncation=True, max_length=kwargs.get("max_length", 512),
                   padding=kwargs.get("padding", "longest"), pad_to_multiple_of=kwargs.get("pad_to_multiple_of"))
    got = ours(CORPUS, **kwargs)
    bad = _mismatches(got, expected, CORPUS, LABELS)
    assert not bad, f"{len(bad)}/{len(CORPUS)} strings differ ({option}, {call}): {bad}"


@pytest.mark.parametrize("max_length", [512, 20, 11, 5])
@pytest.mark.parametrize("option", ["uncased", "cased"])
def test_pairs_match_with_longest_first_truncation(tokenizers, option, max_length):
    ours, ref = tokenizers[option]
    first, second = map(list, zip(*PAIRS))
    expected = ref(first, second, truncation=True, max_length=max_length, padding="longest")
    got = ours(first, second, max_length=max_length)
    labels = [f"pair[{i}]" for i in range(len(PAIRS))]
    assert not _mismatches(got, expected, first, labels)


def test_special_tokens_written_in_the_text_keep_their_ids(tokenizers):
    ours, ref = tokenizers["uncased"]
    ids = ours(["glued[MASK]tokens[SEP]here", "lowercase [mask] is text"])["input_ids"].numpy()
    assert ref.mask_token_id in ids[0] and ref.sep_token_id in ids[0][1:-1]
    assert ref.mask_token_id not in ids[1]


@pytest.mark.parametrize("ops", ["text", "core"])
def test_left_truncation_and_left_padding_match(vocab_files, ops):
    ref = BertTokenizerFast(vocab_files["uncased"], truncation_side="left", padding_side="left")
    ours = TFBertTokenizer.from_tokenizer(ref, ops=ops)
    first, second = map(list, zip(*PAIRS))
    expected = ref(first, second, truncation=True, max_length=14, padding="longest")
    assert not _mismatches(ours(first, second, max_length=14), expected, first, list(range(len(first))))
    expected = ref(CORPUS, truncation=True, max_length=12, padding="longest")
    assert not _mismatches(ours(CORPUS, max_length=12), expected, CORPUS, LABELS)


def _differing(ours, ref, shown) -> list[str]:
    """``ascii`` of the inputs whose rows differ in any field (numpy, for thousands of rows)."""
    bad = np.zeros(len(shown), bool)
    for field in FIELDS:
        got, expected = np.asarray(ours[field]), np.asarray(ref[field])
        assert got.shape == expected.shape, (field, got.shape, expected.shape)
        bad |= (got != expected).any(axis=1)
    return [ascii(shown[i])[:80] for i in np.flatnonzero(bad)]


# Each switch of the normaliser on and off (lower-casing, accent stripping, CJK spacing): the three core sets.
@pytest.mark.parametrize("ops, option", [("core", "uncased"), ("core", "cased"), ("core", "no-chinese-split"),
                                         ("text", "uncased")])
def test_whole_and_fuzz_corpus_match_in_one_compiled_call(tokenizers, ops, option):
    _, ref = tokenizers[option]
    ours = TFBertTokenizer.from_tokenizer(ref, ops=ops)
    first, second = map(list, zip(*ALL_PAIRS))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)] * 3)
    def tokenize(texts, a, b):
        return ours(texts), ours(a, b, max_length=40)

    single, pairs = tokenize(tf.constant(ALL_TEXTS), tf.constant(first), tf.constant(second))
    for got, args, max_length in ((single, (ALL_TEXTS,), 512), (pairs, (first, second), 40)):
        expected = ref(*args, truncation=True, max_length=max_length, padding="longest", return_tensors="np")
        bad = _differing(got, expected, list(zip(*args)))
        assert not bad, f"{len(bad)} of {len(args[0])} inputs differ (max_length={max_length}): {bad[:10]}"


@pytest.mark.slow
def test_the_rust_character_tables_are_those_of_the_installed_tokenizers():
    """Probe every code point through the Rust normaliser and pre-tokenizer, as the tables were made."""
    from tokenizers.normalizers import BertNormalizer
    from tokenizers.pre_tokenizers import BertPreTokenizer

    from bert_tf import _unicode_tables as tables

    def points(ranges):
        return [cp for lo, hi in ranges for cp in range(lo, hi + 1)]

    chars = [chr(cp) for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF and cp not in (0x7C, 0x78)]
    text = "|".join(chars)
    options = dict(handle_chinese_chars=False, lowercase=False)
    clean = BertNormalizer(clean_text=True, strip_accents=False, **options).normalize_str(text).split("|")
    strip = BertNormalizer(clean_text=False, strip_accents=True, **options).normalize_str(text).split("|")
    assert [ord(c) for c, r in zip(chars, clean) if r == ""] == points(tables.DROPPED)
    assert [ord(c) for c, r in zip(chars, clean) if r == " " and c != " "] == points(tables.CLEAN_SPACE)
    assert [ord(c) for c, r in zip(chars, strip) if r == ""] == points(tables.NONSPACING_MARKS)
    isolated = {start for _, (start, end) in BertPreTokenizer().pre_tokenize_str("x".join(chars)) if end - start == 1}
    assert sorted([ord(c) for i, c in enumerate(chars) if 2 * i in isolated] + [0x7C]) == points(tables.PUNCTUATION)


def test_from_pretrained_reads_the_checkpoint_settings(real_model_dir):
    ours = TFBertTokenizer.from_pretrained(real_model_dir)
    ref = BertTokenizerFast.from_pretrained(real_model_dir)
    assert ours.do_lower_case and ours.max_length == ref.model_max_length == 512
    expected = ref(CORPUS[:20], truncation=True, padding="longest")
    assert not _mismatches(ours(CORPUS[:20]), expected, CORPUS[:20], LABELS[:20])


def test_get_config_round_trips_every_setting(tokenizers):
    ours, _ = tokenizers["cased-strip-accents"]
    tuned = TFBertTokenizer.from_config({**ours.get_config(), "max_length": 9, "padding": "max_length",
                                         "output_dtype": "int32"})
    again = TFBertTokenizer.from_config(tuned.get_config())
    assert again.get_config() == tuned.get_config()
    assert again(CORPUS)["input_ids"].dtype == tf.int32
    for field in FIELDS:
        np.testing.assert_array_equal(again(CORPUS)[field], tuned(CORPUS)[field])
    assert tuned(CORPUS)["input_ids"].shape == (len(CORPUS), 9)


def test_a_keras_model_holding_it_round_trips_through_a_keras_file(tokenizers, tmp_path):
    ours, ref = tokenizers["uncased"]
    text = keras.Input(shape=(), dtype="string")
    keras.Model(text, ours(text, max_length=16)).save(tmp_path / "tokenize.keras")
    again = keras.models.load_model(tmp_path / "tokenize.keras")
    expected = ref(CORPUS, truncation=True, max_length=16, padding="longest")
    assert not _mismatches(again(tf.constant(CORPUS)), expected, CORPUS, LABELS)


def test_runs_in_a_tf_function_with_any_batch_size(tokenizers):
    ours, ref = tokenizers["uncased"]
    first, second = map(list, zip(*PAIRS))
    single = tf.function(ours.call, input_signature=[tf.TensorSpec([None], tf.string)])
    pair = tf.function(lambda a, b: ours(a, b, max_length=20), input_signature=[tf.TensorSpec([None], tf.string)] * 2)
    for texts in (CORPUS[:3], CORPUS):
        expected = ref(texts, truncation=True, max_length=512, padding="longest")
        assert not _mismatches(single(tf.constant(texts)), expected, texts, LABELS)
    expected = ref(first, second, truncation=True, max_length=20, padding="longest")
    assert not _mismatches(pair(tf.constant(first), tf.constant(second)), expected, first, list(range(len(first))))


def test_keras_functional_model_on_symbolic_strings(tokenizers):
    ours, ref = tokenizers["uncased"]
    bert = bert_tf.TFBertModel(bert_tf.BertConfig(**tiny_config_dict(vocab_size=len(ref.get_vocab()))))
    text = keras.Input(shape=(), dtype="string", name="text")
    encoded = ours(text)
    hidden = bert(**encoded).last_hidden_state
    model = keras.Model(text, {"hidden": hidden, **encoded})
    texts = CORPUS[:8]
    got = model(tf.constant(texts))
    expected = ref(texts, truncation=True, max_length=512, padding="longest", return_tensors="np")
    for field in FIELDS:
        np.testing.assert_array_equal(got[field], expected[field])
    with padding_read():  # a functional graph traces: it computes masked positions as transformers does
        direct = bert(**{k: tf.constant(v) for k, v in expected.items()}).last_hidden_state
    assert_close(got["hidden"], direct)  # the functional graph and the default (tf.function graph) call


def test_bad_settings_raise_tokenizer_errors(tokenizers):
    ours, _ = tokenizers["uncased"]
    with pytest.raises(TokenizerError, match="padding"):
        ours(["a"], padding="do_not_pad")
    with pytest.raises(TokenizerError, match="max_length=2"):
        ours(["a"], ["b"], max_length=2)
    with pytest.raises(TokenizerError, match="ops must be one of"):
        TFBertTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]"], ops="icu")
    with pytest.raises(TokenizerError, match="not in the vocabulary"):
        TFBertTokenizer(["[PAD]", "[UNK]", "[CLS]"])
    with pytest.raises(TokenizerError, match="BertTokenizerFast"):
        TFBertTokenizer.from_tokenizer(object())
