"""A seeded fuzz corpus for the BERT tokenizers: plain data, no test code.

`fuzz_corpus(n, seed)` returns ``n`` strings built from the character classes
BERT's basic tokenizer treats specially (controls, format, private-use and
unassigned characters, combining marks, CJK and its extension blocks,
full-width forms, math alphanumerics, every kind of whitespace, Unicode and
ASCII punctuation), mixed with ASCII words, digits, emoji, accented Latin in
NFC and NFD, special tokens inside text, over-long words, and empty or
whitespace-only strings.  The same ``(n, seed)`` always gives the same list.
No lone surrogates: every string must be encodable as UTF-8.
"""

from __future__ import annotations

import random
import sys
import unicodedata

__all__ = ["POOLS", "fuzz_corpus", "fuzz_pairs"]


def _chars(*ranges: tuple[int, int]) -> str:
    return "".join(chr(cp) for lo, hi in ranges for cp in range(lo, hi + 1) if not 0xD800 <= cp <= 0xDFFF)


def _by_category(prefix: str, limit: int = 0x30000) -> str:
    """Every code point below ``limit`` whose category starts with ``prefix``."""
    return "".join(
        chr(cp) for cp in range(limit) if not 0xD800 <= cp <= 0xDFFF and unicodedata.category(chr(cp)).startswith(prefix)
    )


WORDS = (
    "the a of and to in is it that was for on are with as his they at be this from have or by one had not but "
    "what all were when we there can an your which their said if do will each about how up out them then she "
    "many some so these would other into has more her two like him see time could no make than first been its "
    "who now people my made over did down only way find use may water long little very after words called just "
    "where most know unbelievable tokenization running jumped happiness international hugging face paris london "
    "Hello World BERT Transformer PyTorch TensorFlow JAX Flax McDonald iPhone eBay NASA camelCase snake_case"
).split()
ACCENTED = (
    "café déjà vu naïve façade coöperate résumé crème brûlée Ångström Øresund Straße Æsir Œuvre İstanbul ılık "
    "ĞÜŞÖÇ Ελληνικά Καλημέρα Привет Ёлка Tiếng Việt São Paulo Zürich Ærøskøbing ǅemal ﬁnance ΣΊΣΥΦΟΣ ὈΔΥΣΣΕΎΣ"
).split()
SPECIALS = ["[MASK]", "[SEP]", "[CUSTOM]", "Don't", "hello", "Café", "[CLS]", "[UNK]", "[PAD]", "[mask]", "[Mask]", "[ MASK ]", "##", "##ing", "###", "[MASK]]", "[[SEP]"]
EMOJI = "😀😃😄🍕🎉👍🏽❤️✨★♥☃🇫🇷👨‍👩‍👧‍👦🤖🧠🫠"

POOLS: dict[str, str] = {
    "ascii_punct": "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
    "unicode_punct": _by_category("P"),
    "symbols": _by_category("S", 0x20000),
    "digits": "0123456789" + _by_category("Nd", 0x20000)[:400] + _by_category("No", 0x20000)[:200],
    "control": _chars((0x00, 0x1F), (0x7F, 0x9F)),
    "format": _by_category("Cf", 0xF0000),
    "private_use": _chars((0xE000, 0xE0FF), (0xF8F0, 0xF8FF), (0xF0000, 0xF00FF), (0x100000, 0x1000FF)),
    "unassigned": "".join(chr(cp) for cp in (0x0378, 0x0379, 0x05FF, 0x2FFF, 0xFDD0, 0xFFFE, 0xFFFF, 0x1FFFE, 0x2FFFF, 0xE0080)),
    "combining": _by_category("M", 0x20000),
    "cjk": _chars((0x4E00, 0x4E80), (0x9F00, 0x9FFF), (0x3400, 0x3440), (0x4DB0, 0x4DBF), (0x20000, 0x20040),
                  (0x2A6C0, 0x2A6DF), (0x2A700, 0x2A720), (0x2B730, 0x2B73F), (0x2B740, 0x2B760), (0x2B820, 0x2B840),
                  (0x2CEA0, 0x2CEAF), (0x2CEB0, 0x2CEC0), (0x30000, 0x30010), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F),
                  (0x2E80, 0x2EFF), (0x2F00, 0x2FDF), (0x3040, 0x30FF), (0xAC00, 0xAC40), (0x1100, 0x1112),
                  (0x1161, 0x1175), (0x3000, 0x303F)),  # fmt: skip
    "full_width": _chars((0xFF01, 0xFF5E), (0xFF61, 0xFFEE)),
    "math_alnum": _chars((0x1D400, 0x1D7FF)),
    "whitespace": " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u180e\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u200b\u2028\u2029\u202f\u205f\u3000\ufeff",
    "case_tricks": "İıßẞǅǈǋǲΣσςﬀﬁﬂﬃﬄﬆ\u2126\u212a\u212b\u0130\u1e9e\u00b5\u0345ΐΰ",
    "letters": _chars((0x41, 0x5A), (0x61, 0x7A), (0xC0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x5FF),
                      (0x600, 0x6FF), (0x900, 0x97F), (0xE00, 0xE7F), (0x10A0, 0x10FF)),  # fmt: skip
    "replacement": "\ufffd\x00",
}


def _word(rng: random.Random) -> str:
    """One ASCII word, maybe capitalised or upper-cased."""
    word = rng.choice(WORDS)
    shape = rng.random()
    return word.upper() if shape < 0.1 else word.capitalize() if shape < 0.3 else word


def _accented(rng: random.Random) -> str:
    word = rng.choice(ACCENTED)
    return unicodedata.normalize(rng.choice(("NFC", "NFD", "NFKD")), word)


def _run(rng: random.Random, pool: str, most: int = 4) -> str:
    return "".join(rng.choice(pool) for _ in range(rng.randint(1, most)))


def _piece(rng: random.Random) -> str:
    """One fragment: a word, a special token, or a run of one character class."""
    kind = rng.random()
    if kind < 0.30:
        return _word(rng)
    if kind < 0.40:
        return _accented(rng)
    if kind < 0.47:
        return rng.choice(SPECIALS)
    if kind < 0.50:
        return rng.choice(EMOJI)
    if kind < 0.52:
        # A word longer than max_input_chars_per_word (100), sometimes glued to punctuation.
        return "".join(rng.choice("abcdefghij") for _ in range(rng.randint(95, 130))) + rng.choice(("", ".", "##"))
    return _run(rng, POOLS[rng.choice(list(POOLS))])


def _joiner(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.55:
        return " "
    if roll < 0.75:
        return ""
    return rng.choice(POOLS["whitespace"]) * rng.randint(1, 2)


def _text(rng: random.Random) -> str:
    pieces = [_piece(rng) for _ in range(rng.randint(1, 12))]
    text = pieces[0]
    for piece in pieces[1:]:
        text += _joiner(rng) + piece
    if rng.random() < 0.1:
        text = _joiner(rng) + text + _joiner(rng)
    return text


def fuzz_corpus(n: int = 5000, seed: int = 1234) -> list[str]:
    """``n`` fuzz strings, the same for the same ``(n, seed)``.

    The first strings are the edge cases every run needs (empty, whitespace
    only, each pool on its own); the rest are random mixtures.
    """
    rng = random.Random(seed)
    fixed = ["", " ", "\t\n", "\u3000", "\u00a0\u2028\ufeff", "\x00", "\ufffd", "##", "[MASK]", "[MASK][SEP]"]
    fixed += ["x" * 100, "x" * 101, "é" * 101, "e\u0301" * 60, "[MASK]" + "y" * 101]
    fixed += [rng.choice(POOLS[name]) * 3 for name in POOLS]
    out = fixed[:n]
    while len(out) < n:
        out.append(_text(rng))
    for text in out:  # no lone surrogates, ever
        text.encode("utf-8")
    return out


def fuzz_pairs(texts: list[str]) -> list[tuple[str, str]]:
    """Pair each text with the next one (the last with the first)."""
    return [(texts[i], texts[(i + 1) % len(texts)]) for i in range(len(texts))]


if __name__ == "__main__":  # print a sample: python tests/tokenizer_fuzz.py 20
    for line in fuzz_corpus(int(sys.argv[1]) if len(sys.argv) > 1 else 20):
        print(ascii(line))
