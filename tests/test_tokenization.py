"""Both tokenizers give exactly what `transformers` gives, on a hostile corpus.

References: `transformers.BertTokenizerLegacy` (pure Python) for our
`BertTokenizer`, and `transformers.BertTokenizer` (Rust) for our
`BertTokenizerFast`, each built from the same vocab.txt with the same options.
Every test collects all mismatches and reports them at once.

One deliberate difference: `transformers` 5.x's BertTokenizerLegacy dropped
`token_type_ids` from its default outputs (its `model_input_names` lost them);
ours returns them by default, as 4.x did and as the fast tokenizer does, so the
reference is called with ``return_token_type_ids=True``.
"""

from __future__ import annotations

import shutil

import pytest
import transformers

from tokenization import BertTokenizer, BertTokenizerFast
from tokenizer_corpus import CATEGORIES, CORPUS, OPTIONS, PAIRS, WORDS

ENGINES = ("slow", "fast")


@pytest.fixture(scope="module")
def vocab_dirs(tmp_path_factory, real_model_dir):
    """The real uncased vocab, and a cased one (uncased + capitalised words and pieces)."""
    uncased = tmp_path_factory.mktemp("uncased")
    shutil.copy(real_model_dir / "vocab.txt", uncased / "vocab.txt")
    words = (real_model_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()
    seen = set(words)
    extra = [w.capitalize() for w in words[1000:12000] if w.isalpha() and w.capitalize() not in seen]
    extra += [w.upper() for w in words[1000:3000] if w.isalpha() and w.upper() not in seen and len(w) > 1]
    cased = tmp_path_factory.mktemp("cased")
    (cased / "vocab.txt").write_text("\n".join(words + sorted(set(extra))) + "\n", encoding="utf-8")
    return {"uncased": uncased, "cased": cased}


def _vocab_dir(vocab_dirs, options):
    return vocab_dirs["uncased" if options.get("do_lower_case", True) else "cased"]


@pytest.fixture(scope="module")
def pairs_of_tokenizers(vocab_dirs):
    """(ours, reference) for each engine and option set, built from the same vocab.txt."""
    built = {}
    for name, options in OPTIONS.items():
        vocab = _vocab_dir(vocab_dirs, options) / "vocab.txt"
        built[name, "slow"] = (BertTokenizer(vocab, **options), transformers.BertTokenizerLegacy(str(vocab), **options))
        built[name, "fast"] = (BertTokenizerFast(vocab, **options), transformers.BertTokenizer(vocab=str(vocab), **options))
    return built


def _types(kwargs):
    """The call arguments, asking for token_type_ids unless the case says otherwise."""
    return {"return_token_type_ids": True, **kwargs}


def _mismatches(ours, ref, inputs, **kwargs):
    """Every input whose encoding differs, with both encodings, for one report."""
    kwargs = _types(kwargs)
    bad = []
    for item in inputs:
        args = item if isinstance(item, tuple) else (item,)
        mine, theirs = dict(ours(*args, **kwargs)), dict(ref(*args, **kwargs))
        if mine != theirs:
            bad.append((item, mine, theirs))
    return bad


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("option", OPTIONS)
def test_corpus_ids_match_reference(pairs_of_tokenizers, option, engine):
    ours, ref = pairs_of_tokenizers[option, engine]
    bad = _mismatches(ours, ref, CORPUS + PAIRS, return_special_tokens_mask=True, verbose=False)
    assert not bad, f"{len(bad)}/{len(CORPUS) + len(PAIRS)} differ, first: {bad[:3]}"


@pytest.mark.parametrize("engine", ENGINES)
def test_tokens_and_decode_match_reference(pairs_of_tokenizers, engine):
    ours, ref = pairs_of_tokenizers["uncased", engine]
    bad = []
    for text in CORPUS:
        if ours.tokenize(text) != ref.tokenize(text):
            bad.append(("tokenize", text))
        ids = ref(text, verbose=False)["input_ids"]
        for skip in (False, True):
            for cleanup in (None, False, True):
                kwargs = dict(skip_special_tokens=skip, clean_up_tokenization_spaces=cleanup)
                if ours.decode(ids, **kwargs) != ref.decode(ids, **kwargs):
                    bad.append(("decode", text, kwargs))
    batch = [ref(t, verbose=False)["input_ids"] for t in CORPUS[:10]]
    if ours.batch_decode(batch, skip_special_tokens=True) != ref.batch_decode(batch, skip_special_tokens=True):
        bad.append(("batch_decode",))
    assert not bad, bad[:5]


@pytest.mark.parametrize("engine", ENGINES)
def test_category_coverage_is_real(pairs_of_tokenizers, engine):
    """The corpus exercises each category: its texts produce more than [CLS] [SEP]."""
    ours, _ = pairs_of_tokenizers["uncased", engine]
    for name, texts in CATEGORIES.items():
        assert any(len(ours(t, verbose=False)["input_ids"]) > 2 for t in texts), name


TRUNCATION_CASES = [
    dict(truncation=strategy, max_length=max_length, stride=stride)
    for strategy in (True, "longest_first", "only_first", "only_second")
    for max_length in (8, 13, 24)
    for stride in (0, 2)
]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case", TRUNCATION_CASES, ids=lambda c: f"{c['truncation']}-{c['max_length']}-{c['stride']}")
def test_truncation_strategies_on_pairs(pairs_of_tokenizers, engine, case):
    ours, ref = pairs_of_tokenizers["uncased", engine]
    pairs = [p for p in PAIRS if p[0] and p[1]]
    overflow = case["truncation"] in ("only_first", "only_second") or engine == "fast"
    kwargs = _types(dict(case, return_overflowing_tokens=overflow, return_special_tokens_mask=True))

    def outcome(tokenizer, pair):
        try:
            return dict(tokenizer(*pair, **kwargs))
        except BaseException as err:  # both must refuse the same inputs (Rust panics are BaseException)
            if isinstance(err, KeyboardInterrupt):
                raise
            return "refused"

    bad = [(p, outcome(ours, p), outcome(ref, p)) for p in pairs if outcome(ours, p) != outcome(ref, p)]
    assert not bad, bad[:2]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("stride", [0, 3])
def test_overflowing_windows_of_long_single_texts(pairs_of_tokenizers, engine, stride):
    ours, ref = pairs_of_tokenizers["uncased", engine]
    texts = [CORPUS[2], CORPUS[8], " ".join(CORPUS[:6])]
    kwargs = _types(dict(truncation=True, max_length=10, stride=stride, return_overflowing_tokens=True))
    for text in texts:
        assert dict(ours(text, **kwargs)) == dict(ref(text, **kwargs)), text
    if engine == "fast":  # windows of a batch carry overflow_to_sample_mapping
        assert dict(ours(texts, padding=True, **kwargs)) == dict(ref(texts, padding=True, **kwargs))


PADDING_CASES = [
    dict(padding=True),
    dict(padding="longest", pad_to_multiple_of=8),
    dict(padding="max_length", max_length=40),
    dict(padding="max_length", max_length=16, truncation=True),
    dict(padding="max_length", truncation=True),  # model_max_length
    dict(padding=True, padding_side="left"),
    dict(padding=True, return_length=True, return_special_tokens_mask=True),
    dict(padding=False, return_attention_mask=False, return_token_type_ids=False),
    dict(max_length=12),  # max_length alone turns truncation on
]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case", PADDING_CASES, ids=str)
def test_padding_of_batches_and_pairs(pairs_of_tokenizers, real_model_dir, engine, case):
    ours = (BertTokenizer if engine == "slow" else BertTokenizerFast).from_pretrained(real_model_dir)
    ref = (transformers.BertTokenizerLegacy if engine == "slow" else transformers.BertTokenizer).from_pretrained(real_model_dir)
    case = _types(case)
    for batch in ([CORPUS[0], CORPUS[2], CORPUS[7]], PAIRS[:4], [CORPUS[1]]):
        assert dict(ours(batch, verbose=False, **case)) == dict(ref(batch, verbose=False, **case)), (batch, case)
    assert dict(ours(CORPUS[1], **case)) == dict(ref(CORPUS[1], **case))


@pytest.mark.parametrize("engine", ENGINES)
def test_pretokenized_words(pairs_of_tokenizers, engine):
    ours, ref = pairs_of_tokenizers["cased", engine]
    kwargs = _types(dict(is_split_into_words=True))
    assert dict(ours(WORDS, padding=True, **kwargs)) == dict(ref(WORDS, padding=True, **kwargs))
    for words in WORDS:
        assert dict(ours(words, **kwargs)) == dict(ref(words, **kwargs))


def test_fast_offsets_and_word_ids(pairs_of_tokenizers):
    ours, ref = pairs_of_tokenizers["uncased", "fast"]
    for text in CORPUS + PAIRS:
        args = text if isinstance(text, tuple) else (text,)
        mine, theirs = ours(*args, return_offsets_mapping=True), ref(*args, return_offsets_mapping=True)
        assert mine["offset_mapping"] == [tuple(o) for o in theirs["offset_mapping"]], text
        assert mine.word_ids() == theirs.word_ids() and mine.sequence_ids() == theirs.sequence_ids(), text
        assert mine.tokens() == theirs.tokens(), text
    mine, theirs = ours(WORDS, is_split_into_words=True), ref(WORDS, is_split_into_words=True)
    assert [mine.word_ids(i) for i in range(len(WORDS))] == [theirs.word_ids(i) for i in range(len(WORDS))]
    assert mine.char_to_token(7) == theirs.char_to_token(7) and mine.word_to_tokens(2) == theirs.word_to_tokens(2)


def test_never_split_keeps_words_whole(vocab_dirs):
    vocab = str(vocab_dirs["uncased"] / "vocab.txt")
    options = dict(never_split=["[CUSTOM]", "Don't"])
    ours, ref = BertTokenizer(vocab, **options), transformers.BertTokenizerLegacy(vocab, **options)
    texts = ["Keep [CUSTOM] and Don't whole", "but not [custom] or don't"]
    assert [ours.tokenize(t) for t in texts] == [ref.tokenize(t) for t in texts]
    assert "[CUSTOM]" in ours.tokenize(texts[0]) and "Don't" in ours.tokenize(texts[0])


@pytest.mark.parametrize("engine", ENGINES)
def test_added_tokens_and_special_tokens(vocab_dirs, engine):
    vocab = str(vocab_dirs["uncased"] / "vocab.txt")
    ours = BertTokenizer(vocab) if engine == "slow" else BertTokenizerFast(vocab)
    ref = transformers.BertTokenizerLegacy(vocab) if engine == "slow" else transformers.BertTokenizer(vocab=vocab)
    # "hello" is in the vocab already (the fast engine counts it as added, the slow one does not).
    assert ours.add_tokens(["newword", "hello"]) == ref.add_tokens(["newword", "hello"])
    assert ours.add_special_tokens({"additional_special_tokens": ["<ent>"]}) == ref.add_special_tokens({"additional_special_tokens": ["<ent>"]}) == 1
    texts = ["a newword here", "tag<ent>glued <ent> newwordx", "hello newword", "hellothere", "NewWord up"]
    for text in texts:
        assert ours(text)["input_ids"] == ref(text)["input_ids"], text
        assert ours.decode(ours(text)["input_ids"], skip_special_tokens=True) == ref.decode(ref(text)["input_ids"], skip_special_tokens=True)
    assert len(ours) == len(ref) and ours.vocab_size == ref.vocab_size
    assert ours.get_vocab() == ref.get_vocab()
    assert sorted(ours.all_special_ids) == sorted(ref.all_special_ids)


@pytest.mark.parametrize("engine", ENGINES)
def test_seed_methods(pairs_of_tokenizers, engine, tmp_path):
    """build_inputs_with_special_tokens, get_special_tokens_mask, create_token_type_ids_from_sequences, save_vocabulary.

    `transformers` 5.x's fast BertTokenizer no longer has these methods, so the
    pure-Python reference is the reference for both engines.
    """
    ours, ref = pairs_of_tokenizers["uncased", engine][0], pairs_of_tokenizers["uncased", "slow"][1]
    a, b = [2023, 2003], [1037, 3231, 1012]
    for pair in (None, b):
        assert ours.build_inputs_with_special_tokens(a, pair) == ref.build_inputs_with_special_tokens(a, pair)
        assert ours.get_special_tokens_mask(a, pair) == ref.get_special_tokens_mask(a, pair)
        assert ours.create_token_type_ids_from_sequences(a, pair) == ref.create_token_type_ids_from_sequences(a, pair)
    full = ref.build_inputs_with_special_tokens(a, b)
    assert ours.get_special_tokens_mask(full, already_has_special_tokens=True) == ref.get_special_tokens_mask(full, already_has_special_tokens=True)
    assert ours.convert_ids_to_tokens(full) == ref.convert_ids_to_tokens(full)
    assert ours.convert_tokens_to_ids(["hello", "[MASK]", "notaword"]) == ref.convert_tokens_to_ids(["hello", "[MASK]", "notaword"])
    own_ref = pairs_of_tokenizers["uncased", engine][1]
    tokens = own_ref.tokenize("unbelievably fine, isn't it?")
    assert ours.convert_tokens_to_string(tokens) == own_ref.convert_tokens_to_string(tokens)
    (path,) = ours.save_vocabulary(tmp_path)
    assert open(path, encoding="utf-8").read() == open(ref.save_vocabulary(str(tmp_path), "ref")[0], encoding="utf-8").read()
