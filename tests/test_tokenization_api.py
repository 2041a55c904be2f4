"""The tokenizer API a transformers 4.x codebase calls, against the installed transformers 5.x tokenizers.

5.x dropped ``encode_plus`` / ``batch_encode_plus`` (4.x defined them as
``__call__`` on one input / a batch), so those are compared with the 5.x
``__call__`` on the same input; everything else is compared call for call.
References: ``transformers.BertTokenizer`` (Rust) for our fast tokenizer,
``transformers.BertTokenizerLegacy`` (pure Python) for our slow one.
"""

from __future__ import annotations

import json

import pytest
import transformers

from tokenization import AddedToken, BertTokenizer, BertTokenizerFast
from tokenization.batch_encoding import CharSpan, TokenSpan

QUESTIONS = ["Who wrote it?", "Where is Paris?", "Is BERT useful?"]
CONTEXTS = ["It was written by Jane Austen in 1813.", "Paris is the capital of France.", "Yes, BERT is very useful."]


@pytest.fixture(scope="module")
def vocab(real_model_dir):
    return str(real_model_dir / "vocab.txt")


def _fast(vocab):
    return BertTokenizerFast(vocab), transformers.BertTokenizer(vocab=vocab)


def _slow(vocab):
    return BertTokenizer(vocab), transformers.BertTokenizerLegacy(vocab)


def test_alignment_takes_batch_index_first(vocab):
    """The SQuAD label idiom: ``enc.char_to_token(batch_index, char_index, sequence_index=1)``."""
    ours, ref = _fast(vocab)
    a, b = ours(QUESTIONS, CONTEXTS, padding=True), ref(QUESTIONS, CONTEXTS, padding=True)
    assert a.char_to_token(1, 2, sequence_index=1) == b.char_to_token(1, 2, sequence_index=1) == 6  # row 1, 'r' of 'Paris'
    for i in range(len(QUESTIONS)):
        for c in range(len(CONTEXTS[i])):
            assert a.char_to_token(i, c, sequence_index=1) == b.char_to_token(i, c, sequence_index=1)
            assert a.char_to_word(i, c, sequence_index=1) == b.char_to_word(i, c, sequence_index=1)
        n = len(a["input_ids"][i])
        # a negative index counts from the end, as in 4.x (5.x's BatchEncoding fails on it with a KeyError)
        assert [a.token_to_word(i, t - n) for t in range(n)] == [b.token_to_word(i, t) for t in range(n)]
        for t in range(n):
            assert a.token_to_word(i, t) == b.token_to_word(i, t)
            assert a.token_to_sequence(i, t) == b.token_to_sequence(i, t)
            assert a.token_to_chars(i, t) == b.token_to_chars(i, t)
        for w in range(4):
            assert a.word_to_tokens(i, w, sequence_index=1) == b.word_to_tokens(i, w, sequence_index=1)
            assert a.word_to_chars(i, w, sequence_index=1) == b.word_to_chars(i, w, sequence_index=1)
        assert a.words(i) == b.word_ids(i) and a.sequence_ids(i) == b.sequence_ids(i) and a.tokens(i) == b.tokens(i)
    single, single_ref = ours(CONTEXTS[0]), ref(CONTEXTS[0])
    assert single.char_to_token(5) == single_ref.char_to_token(5) and single.token_to_word(3) == single_ref.token_to_word(3)
    assert isinstance(single.token_to_chars(1), CharSpan) and isinstance(single.word_to_tokens(0), TokenSpan)
    assert tuple(single.token_to_chars(1)) == tuple(single_ref.token_to_chars(1))


@pytest.mark.parametrize("engine", ["slow", "fast"])
def test_encode_plus_and_batch_encode_plus_equal_call(vocab, engine):
    ours, ref = (_slow if engine == "slow" else _fast)(vocab)
    options = dict(truncation=True, max_length=12, padding="max_length", return_token_type_ids=True)
    assert dict(ours.encode_plus(QUESTIONS[0], CONTEXTS[0], **options)) == dict(ref(QUESTIONS[0], CONTEXTS[0], **options))
    pairs = list(zip(QUESTIONS, CONTEXTS))
    assert dict(ours.batch_encode_plus(pairs, padding=True)) == dict(ref(QUESTIONS, CONTEXTS, padding=True, return_token_type_ids=True))
    words = [["Paris", "is", "big"], ["Hello"]]
    assert dict(ours.batch_encode_plus(words, is_split_into_words=True, padding=True)) == dict(
        ref(words, is_split_into_words=True, padding=True, return_token_type_ids=True)
    )
    # 4.x encode/encode_plus also take a list of tokens or of ids: the same ids as the text.
    tokens = ref.tokenize(CONTEXTS[1])
    ids = ref.convert_tokens_to_ids(tokens)
    expected = ref(CONTEXTS[1])["input_ids"]
    assert ours.encode(tokens) == ours.encode(ids) == ours.encode_plus(ids)["input_ids"] == expected


def test_prepare_for_model_equals_the_reference(vocab):
    ours, ref = _slow(vocab)
    a, b = ref.encode(QUESTIONS[1], add_special_tokens=False), ref.encode(CONTEXTS[1], add_special_tokens=False)
    for options in ({}, dict(truncation="only_second", max_length=10, return_overflowing_tokens=True), dict(padding="max_length", max_length=20)):
        expected = ref.prepare_for_model(a, b, return_token_type_ids=True, **options)
        for tokenizer in (ours, BertTokenizerFast(vocab)):
            assert dict(tokenizer.prepare_for_model(a, b, **options)) == dict(expected), options


@pytest.mark.parametrize("engine", ["slow", "fast"])
def test_added_token_options(vocab, engine):
    ours, ref = (_slow if engine == "slow" else _fast)(vocab)
    tokens = [AddedToken("<l>", lstrip=True, rstrip=True), AddedToken("qzx", single_word=True)]
    assert ours.add_tokens(tokens) == ref.add_tokens(tokens)
    special = AddedToken("<ent>", lstrip=True)
    assert ours.add_special_tokens({"additional_special_tokens": [special]}) == ref.add_special_tokens({"additional_special_tokens": [special]})
    # transformers' slow tokenizer splits "aqzxb" into three words around a failed single_word match; ours does not.
    for text in ["hello   <l>   world", "a qzx b", "x  <ent> y", "<l><ent>"] + (["aqzxb"] if engine == "fast" else []):
        assert ours(text)["input_ids"] == ref(text)["input_ids"], text
        assert ours.decode(ours(text)["input_ids"], skip_special_tokens=True) == ref.decode(ref(text)["input_ids"], skip_special_tokens=True)
    if engine == "fast":
        assert ours.tokenize("hello   <l>   world") == ref.tokenize("hello   <l>   world")
    assert {i: str(t) for i, t in ours.added_tokens_decoder.items()} == {i: str(t) for i, t in ref.added_tokens_decoder.items()}


@pytest.mark.parametrize("engine", ["slow", "fast"])
def test_special_token_roles(vocab, engine):
    ours, ref = (_slow if engine == "slow" else _fast)(vocab)
    assert ours.bos_token is ref.bos_token is None and ours.eos_token_id is ref.eos_token_id is None
    for tokenizer in (ours, ref):
        tokenizer.add_special_tokens({"additional_special_tokens": ["<a>", "<b>"]})
        tokenizer.add_special_tokens({"additional_special_tokens": ["<c>"]})  # replaces
        tokenizer.bos_token = "<s>"
        tokenizer.eos_token_id = 102
    assert ours.all_special_tokens == ref.all_special_tokens and "<a>" not in ours.all_special_tokens
    assert ours.bos_token == "<s>" and ours.eos_token == ref.eos_token == "[SEP]"
    # 4.x (and tribert) list additional_special_tokens in special_tokens_map; 5.x moved them out of it.
    assert {k: v for k, v in ours.special_tokens_map.items() if k != "additional_special_tokens"} == ref.special_tokens_map
    assert ours.special_tokens_map["additional_special_tokens"] == ["<c>"]
    kept = (_slow if engine == "slow" else _fast)(vocab)[0]
    kept.add_special_tokens({"additional_special_tokens": ["<a>"]})
    kept.add_special_tokens({"additional_special_tokens": ["<b>"]}, replace_additional_special_tokens=False)
    assert [t for t in kept.all_special_tokens if t.startswith("<")] == ["<a>", "<b>"]
    assert ours.max_len_single_sentence == ref.max_len_single_sentence
    assert ours.max_len_sentences_pair == ref.max_len_sentences_pair
    with pytest.raises(TypeError):
        ours.tokenize(None)
    if engine == "slow":
        with pytest.raises(TypeError):
            ref.tokenize(None)


@pytest.mark.parametrize("engine", ["slow", "fast"])
def test_init_keywords_are_kept(vocab, engine, tmp_path):
    cls, ref_cls = (BertTokenizer, transformers.BertTokenizerLegacy) if engine == "slow" else (BertTokenizerFast, transformers.BertTokenizer)
    ours = cls(vocab, bos_token="<s>", random_argument=True, model_max_length=128)
    ref = ref_cls(vocab, bos_token="<s>", random_argument=True, model_max_length=128) if engine == "slow" else ref_cls(vocab=vocab, bos_token="<s>", random_argument=True, model_max_length=128)
    assert ours.init_kwargs["random_argument"] is ref.init_kwargs["random_argument"] is True
    assert ours.bos_token == ref.bos_token and ours.max_len_single_sentence == ref.max_len_single_sentence == 126
    ours.save_pretrained(tmp_path)
    again = cls.from_pretrained(tmp_path)
    assert again.init_kwargs["random_argument"] is True and again.bos_token == "<s>"


def test_legacy_format_files(vocab, tmp_path):
    tokenizer = BertTokenizerFast(vocab)
    names = {}
    for flag in (None, True, False):
        folder = tmp_path / str(flag)
        names[flag] = {p.rsplit("/", 1)[-1] for p in tokenizer.save_pretrained(folder, legacy_format=flag)}
        reloaded = transformers.BertTokenizer.from_pretrained(folder)
        assert reloaded(CONTEXTS)["input_ids"] == tokenizer(CONTEXTS)["input_ids"]
    configs = {"tokenizer_config.json", "special_tokens_map.json"}
    assert names[None] == configs | {"vocab.txt", "tokenizer.json"}
    assert names[True] == configs | {"vocab.txt"} and names[False] == configs | {"tokenizer.json"}
    with pytest.raises(ValueError):
        BertTokenizer(vocab).save_pretrained(tmp_path / "slow", legacy_format=False)


def test_slow_tokenizer_loads_a_tokenizer_json_only_folder(vocab, tmp_path):
    """transformers 5.x saves tokenizer.json without vocab.txt; the pure-Python tokenizer reads its vocab and options."""
    ref = transformers.BertTokenizer(vocab=vocab, do_lower_case=False, strip_accents=False)
    ref.save_pretrained(tmp_path)
    (tmp_path / "vocab.txt").unlink(missing_ok=True)
    ours = BertTokenizer.from_pretrained(tmp_path)
    texts = ["Héllo WORLD", "Ünïcode Straße 東京"] + CONTEXTS
    assert not ours.do_lower_case and ours.strip_accents is False
    assert [ours(t)["input_ids"] for t in texts] == [ref(t)["input_ids"] for t in texts]


def test_train_new_from_iterator(vocab):
    corpus = ["This is the first sentence.", "This is the second one.", "Another sentence with numbers 12 3."] * 5
    ours, ref = _fast(vocab)
    a, b = ours.train_new_from_iterator(corpus, 60), ref.train_new_from_iterator(corpus, 60)
    # The trained vocabularies match in size; the trainer's tie-breaking may pick different rare pieces.
    assert len(a) == len(b) and len(set(a.get_vocab()) ^ set(b.get_vocab())) <= 4
    assert [a.decode(a(t)["input_ids"], skip_special_tokens=True) for t in corpus[:3]] == [
        b.decode(b(t)["input_ids"], skip_special_tokens=True) for t in corpus[:3]
    ]
    assert a.special_tokens_map == b.special_tokens_map
    renamed = ours.train_new_from_iterator(corpus, 60, special_tokens_map={"[CLS]": "<cls>"})
    assert renamed.cls_token == "<cls>" and renamed("first")["input_ids"][0] == renamed.get_vocab()["<cls>"]
    assert json.loads(renamed.backend_tokenizer.to_str())["model"]["type"] == "WordPiece"


@pytest.mark.parametrize("engine", ["slow", "fast"])
def test_pre_4_34_folder_with_added_tokens_json(vocab, engine, tmp_path):
    """Folders saved before transformers 4.34 list added tokens only in added_tokens.json."""
    (tmp_path / "vocab.txt").write_text(open(vocab, encoding="utf-8").read(), encoding="utf-8")
    size = len(open(vocab, encoding="utf-8").read().splitlines())
    (tmp_path / "added_tokens.json").write_text(json.dumps({"newword": size, "<ent>": size + 1}), encoding="utf-8")
    (tmp_path / "special_tokens_map.json").write_text(json.dumps({"additional_special_tokens": ["<ent>"]}), encoding="utf-8")
    cls, ref_cls = (BertTokenizer, transformers.BertTokenizerLegacy) if engine == "slow" else (BertTokenizerFast, transformers.BertTokenizer)
    ours, ref = cls.from_pretrained(tmp_path), ref_cls.from_pretrained(tmp_path)
    text = "a newword and <ent> here"
    assert ours(text)["input_ids"] == ref(text)["input_ids"]
    # special_tokens_map makes <ent> special, as transformers 4.x reads it (5.x's fast class forgets that here)
    ids = ref(text)["input_ids"]
    assert "<ent>" in ours.all_special_tokens and ours.convert_tokens_to_ids("<ent>") == size + 1
    assert ours.decode(ids, skip_special_tokens=True) == ref.decode([i for i in ids if i != size + 1], skip_special_tokens=True)


def test_batch_encoding_slice(vocab):
    ours, ref = _fast(vocab)
    assert ours(CONTEXTS, padding=True)[:2] == {k: v[:2] for k, v in ref(CONTEXTS, padding=True).items()}


def test_small_helpers_of_the_4x_api(vocab):
    fast, ref_fast = _fast(vocab)
    slow, ref_slow = _slow(vocab)
    text = "a , b . don 't it 's"
    assert fast.clean_up_tokenization(text) == slow.clean_up_tokenization(text) == ref_fast.clean_up_tokenization(text)
    assert fast.vocab_files_names == ref_fast.vocab_files_names and slow.vocab_files_names == ref_slow.vocab_files_names
    assert fast.slow_tokenizer_class is BertTokenizer and fast.can_save_slow_tokenizer == ref_fast.can_save_slow_tokenizer
    tokens = ref_fast.tokenize("unbelievably fine")
    assert fast.decoder.decode(tokens) == ref_fast.decoder.decode(tokens)
    assert slow.prepare_for_tokenization("x", foo=1) == ref_slow.prepare_for_tokenization("x", foo=1)
    assert fast.vocab == ref_fast.vocab
