"""Both tokenizers equal `transformers`' on a seeded fuzz corpus, string for string.

References: `transformers.BertTokenizerLegacy` (the 4.x pure-Python
`BertTokenizer`, Google BERT's semantics) for our `BertTokenizer`, and
`transformers.BertTokenizer` (Rust, `tokenizers`) for our `BertTokenizerFast`,
each built from the same vocab.txt with the same options.  The corpus is
`tokenizer_fuzz.fuzz_corpus`: 5,000 strings of the character classes the basic
tokenizer treats specially.  Every test collects all mismatches and names each
string (repr) and option set.

The default run checks the tokens of the whole corpus with the real vocab, and
ids (single and pair, special tokens added) and decode on a slice; the ``slow``
variants check ids and decode on the rest, and a small vocab (most words fall
back to [UNK] or single characters) with both engines.
"""

from __future__ import annotations

import pytest
import transformers

from tokenization import BertTokenizer, BertTokenizerFast
from tokenizer_fuzz import fuzz_corpus, fuzz_pairs

CORPUS = fuzz_corpus(5000)
SLICE = 1000  # strings whose ids and decode the default run checks
NEVER_SPLIT = ["[CUSTOM]", "Don't", "hello", "[mask]", "café"]

# The option sets that change the basic tokenizer's path through the text.
OPTIONS = {
    "lower": {},
    "lower-keep-accents": {"strip_accents": False},
    "lower-strip-accents": {"strip_accents": True},
    "cased": {"do_lower_case": False},
    "cased-strip-accents": {"do_lower_case": False, "strip_accents": True},
    "lower-no-cjk": {"tokenize_chinese_chars": False},
    "cased-no-cjk-keep-accents": {"do_lower_case": False, "tokenize_chinese_chars": False, "strip_accents": False},
    "lower-never-split": {"never_split": NEVER_SPLIT},
    "cased-never-split": {"do_lower_case": False, "never_split": NEVER_SPLIT},
}
SMALL_OPTIONS = ("lower", "cased", "lower-no-cjk", "cased-strip-accents")


def _small_vocab() -> list[str]:
    """A few hundred pieces: most words fall back to single characters or [UNK]."""
    chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'-#$[]éèüßσς中国人日本語"
    words = ["the", "of", "and", "hello", "world", "un", "##able", "##ing", "##s", "face", "hug", "##ging", "##", "[CUSTOM]"]
    pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list(chars) + ["##" + c for c in chars] + words
    return list(dict.fromkeys(pieces))  # one line per token: a repeated line is refused on load


@pytest.fixture(scope="module")
def vocab_files(tmp_path_factory, real_model_dir):
    small = tmp_path_factory.mktemp("small") / "vocab.txt"
    small.write_text("\n".join(_small_vocab()) + "\n", encoding="utf-8")
    return {"real": str(real_model_dir / "vocab.txt"), "small": str(small)}


_BUILT: dict[tuple[str, str, str], tuple[object, object]] = {}


def _pair(vocab_files, vocab: str, option: str, engine: str):
    """(ours, reference) for one vocab, option set and engine, built once per module."""
    key = (vocab, option, engine)
    if key not in _BUILT:
        path, options = vocab_files[vocab], OPTIONS[option]
        if engine == "slow":
            _BUILT[key] = (BertTokenizer(path, **options), transformers.BertTokenizerLegacy(path, **options))
        else:
            _BUILT[key] = (BertTokenizerFast(path, **options), transformers.BertTokenizer(vocab=path, **options))
    return _BUILT[key]


def _report(what: str, option: str, bad: list[tuple]) -> str:
    lines = [f"{len(bad)} {what} mismatches with option set {option!r} ({OPTIONS[option]}); first ones:"]
    for text, mine, theirs in bad[:8]:
        lines.append(f"  input {text!r}\n    ours {mine!r}\n    ref  {theirs!r}")
    return "\n".join(lines)


def _rows(encoding, keys) -> list[dict]:
    return [{k: encoding[k][i] for k in keys} for i in range(len(encoding["input_ids"]))]


def _check_slow(ours, ref, option: str, texts: list[str], encode: bool) -> None:
    """Tokens; with ``encode`` also ids of single texts and pairs (special tokens added) and decode."""
    bad = [(t, a, b) for t in texts if (a := ours.tokenize(t)) != (b := ref.tokenize(t))]
    assert not bad, _report("token", option, bad)
    if not encode:
        return
    keys = ("input_ids", "token_type_ids", "attention_mask")
    batches = [(texts, None), tuple(zip(*fuzz_pairs(texts)))]
    for first, second in batches:
        args = (list(first),) if second is None else (list(first), list(second))
        mine = _rows(ours(*args, return_token_type_ids=True, verbose=False), keys)
        theirs = _rows(ref(*args, return_token_type_ids=True, verbose=False), keys)
        shown = first if second is None else list(zip(first, second))
        bad = [(s, a, b) for s, a, b in zip(shown, mine, theirs) if a != b]
        assert not bad, _report("id (single)" if second is None else "id (pair)", option, bad)
    encoded = [(t, ref.encode(t)) for t in texts]
    for skip in (False, True):
        bad = [(t, a, b) for t, i in encoded if (a := ours.decode(i, skip_special_tokens=skip)) != (b := ref.decode(i, skip_special_tokens=skip))]
        assert not bad, _report(f"decode (skip_special_tokens={skip})", option, bad)


def _check_fast(ours, ref, option: str, texts: list[str], pairs: bool) -> None:
    """Ids, segment ids, masks, offsets, tokens and word ids (single texts, and pairs if asked), and decode."""
    keys = ("input_ids", "token_type_ids", "attention_mask", "offset_mapping")
    batches = [(texts, None)] + ([tuple(zip(*fuzz_pairs(texts)))] if pairs else [])
    for first, second in batches:
        args = (list(first),) if second is None else (list(first), list(second))
        mine = ours(*args, return_offsets_mapping=True, return_token_type_ids=True)
        theirs = ref(*args, return_offsets_mapping=True, return_token_type_ids=True)
        shown = first if second is None else list(zip(first, second))
        bad = []
        for i, (s, a, b) in enumerate(zip(shown, _rows(mine, keys), _rows(theirs, keys))):
            a["offset_mapping"], b["offset_mapping"] = [tuple(o) for o in a["offset_mapping"]], [tuple(o) for o in b["offset_mapping"]]
            a.update(tokens=mine.tokens(i), word_ids=mine.word_ids(i))
            b.update(tokens=theirs.tokens(i), word_ids=theirs.word_ids(i))
            if a != b:
                bad.append((s, a, b))
        assert not bad, _report("fast encoding" + ("" if second is None else " (pair)"), option, bad)
        if second is None:
            single_ids = mine["input_ids"]
    bad = [(t, a, b) for t, i in zip(texts, single_ids) if (a := ours.decode(i)) != (b := ref.decode(i))]
    assert not bad, _report("fast decode", option, bad)


@pytest.mark.parametrize("option", OPTIONS)
def test_slow_tokenizer_equals_transformers_slow(vocab_files, option):
    ours, ref = _pair(vocab_files, "real", option, "slow")
    _check_slow(ours, ref, option, CORPUS[SLICE:], encode=False)
    _check_slow(ours, ref, option, CORPUS[:SLICE], encode=True)


@pytest.mark.parametrize("option", OPTIONS)
def test_fast_tokenizer_equals_transformers_fast(vocab_files, option):
    ours, ref = _pair(vocab_files, "real", option, "fast")
    _check_fast(ours, ref, option, CORPUS, pairs=option == "lower")


@pytest.mark.slow
@pytest.mark.parametrize("option", OPTIONS)
def test_slow_tokenizer_pairs_and_decode_whole_corpus(vocab_files, option):
    ours, ref = _pair(vocab_files, "real", option, "slow")
    _check_slow(ours, ref, option, CORPUS[SLICE:], encode=True)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ("slow", "fast"))
@pytest.mark.parametrize("option", SMALL_OPTIONS)
def test_small_vocab(vocab_files, option, engine):
    ours, ref = _pair(vocab_files, "small", option, engine)
    if engine == "slow":
        _check_slow(ours, ref, option, CORPUS, encode=True)
    else:
        _check_fast(ours, ref, option, CORPUS, pairs=True)
